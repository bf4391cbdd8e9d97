"""Text side of SLT Studio: FLORES-200 languages, SONAR text decoding (sonar-space/fairseq2 or transformers),
teacher-forced loss, local asset cards, and tiny trained stand-ins of the SONAR decoder for offline use and tests.

Heavy imports (fairseq2, sonar) happen on first use of the names that need them, so `import slt.text` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slt.text.languages import FLORES200_LANGUAGES, validate_languages
from slt.text.options import DecodingOptions

_LAZY = {
    "SonarTextDecoder": "slt.text.decoder",
    "HFTextDecoder": "slt.text.hf_decoder",
    "load_text_decoder": "slt.text.backends",
    "resolve_backend": "slt.text.backends",
    "DECODER_BACKENDS": "slt.text.backends",
    "register_local_text_assets": "slt.text.assets",
    "register_asset_file": "slt.text.assets",
    "ensure_fairseq2": "slt.text.assets",
    "train_sentencepiece": "slt.text.tiny",
    "build_tiny_text_decoder": "slt.text.tiny",
    "tiny_decoder_config": "slt.text.tiny",
    "pretrain_text_decoder": "slt.text.pretrain",
    "TinySentenceEncoder": "slt.text.pretrain",
}

__all__ = ["FLORES200_LANGUAGES", "validate_languages", "DecodingOptions", *_LAZY]

if TYPE_CHECKING:  # for type checkers and IDEs: the names __getattr__ provides (F401: they are in __all__ via _LAZY)
    from slt.text.assets import ensure_fairseq2, register_asset_file, register_local_text_assets  # noqa: F401
    from slt.text.backends import DECODER_BACKENDS, load_text_decoder, resolve_backend  # noqa: F401
    from slt.text.decoder import SonarTextDecoder  # noqa: F401
    from slt.text.hf_decoder import HFTextDecoder  # noqa: F401
    from slt.text.pretrain import TinySentenceEncoder, pretrain_text_decoder  # noqa: F401
    from slt.text.tiny import build_tiny_text_decoder, tiny_decoder_config, train_sentencepiece  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slt.text' has no attribute {name!r}")
