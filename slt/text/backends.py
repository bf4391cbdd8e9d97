"""Which library runs the SONAR text decoder: fairseq2 (sonar-space, the reference) or transformers.

`auto` picks fairseq2 when it imports (sonar-space with fairseq2 and its native fairseq2n library), else
transformers. Both load the same asset cards and checkpoint files and give the same token ids (see
tests/test_hf_decoder.py); the transformers backend frees an install from fairseq2's torch/CUDA/Python pins.
"""

from __future__ import annotations

import functools

import torch

from slt.errors import InvalidArgumentError, ModelUnavailableError

DECODER_BACKENDS = ("auto", "fairseq2", "transformers")


@functools.cache
def fairseq2_available() -> bool:
    """True when sonar-space's decoding stack imports (fairseq2 can be installed yet unusable, e.g. without
    libsndfile for fairseq2n, so this imports rather than only looking the packages up)."""
    try:
        import fairseq2.generation  # noqa: F401
        import sonar.inference_pipelines.text  # noqa: F401
    except Exception:  # ImportError, OSError from native libraries, version clashes: all mean "not usable"
        return False
    return True


def check_backend_name(backend: str) -> str:
    """`backend` if it names a backend (imports nothing), else a clear error."""
    if backend not in DECODER_BACKENDS:
        raise InvalidArgumentError(f"unknown decoder backend '{backend}'; choose one of {', '.join(DECODER_BACKENDS)}")
    return backend


def resolve_backend(backend: str = "auto") -> str:
    """`fairseq2` or `transformers` for a requested backend name; a clear error if it cannot run here."""
    check_backend_name(backend)
    if backend == "auto":
        return "fairseq2" if fairseq2_available() else "transformers"
    if backend == "fairseq2" and not fairseq2_available():
        raise ModelUnavailableError(
            "the fairseq2 decoder backend needs sonar-space and fairseq2, which do not import in this environment; "
            "use --decoder-backend transformers (or auto)"
        )
    return backend


def load_text_decoder(
    decoder: str = "text_sonar_basic_decoder",
    tokenizer: str = "text_sonar_basic_encoder",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
):
    """A frozen SONAR text decoder (`decode`, `generate_ids`, `tokenize`, `teacher_forced_loss`) on `backend`."""
    # Imported here for start-up time: only the chosen backend's library (fairseq2/sonar or transformers) loads.
    if resolve_backend(backend) == "fairseq2":
        from slt.text.decoder import SonarTextDecoder

        return SonarTextDecoder(decoder, tokenizer, device=device, dtype=dtype)
    from slt.text.hf_decoder import HFTextDecoder

    return HFTextDecoder(decoder, tokenizer, device=device, dtype=dtype)
