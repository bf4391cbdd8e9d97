"""SignHiera video encoder and SONAR ASL sentence encoder: full-size and tiny configs, strict checkpoint loading.

The SONAR encoder's names are imported on first use (PEP 562): the encoder is built on transformers' T5, ~2 s to
import, and what only needs SignHiera (preprocessing fits its crops to it) should not wait for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slt.models.checkpoint import save_model_checkpoint
from slt.models.loading import load_signhiera, load_sonar_sign_encoder
from slt.models.signhiera import SignHiera, SignHieraConfig

if TYPE_CHECKING:
    from slt.models.sonar_encoder import SonarSignEncoder, SonarSignEncoderConfig

__all__ = [
    "SignHiera",
    "SignHieraConfig",
    "SonarSignEncoder",
    "SonarSignEncoderConfig",
    "load_signhiera",
    "load_sonar_sign_encoder",
    "save_model_checkpoint",
]


def __getattr__(name: str):
    if name in ("SonarSignEncoder", "SonarSignEncoderConfig"):
        from slt.models import sonar_encoder

        return getattr(sonar_encoder, name)
    raise AttributeError(f"module 'slt.models' has no attribute {name!r}")
