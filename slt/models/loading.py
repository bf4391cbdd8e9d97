"""Strict loaders for SignHiera and the SONAR ASL encoder: released checkpoints and this project's own files.

Released files (``{'model': sd}`` / ``{'student': sd}``) carry no config and are full size unless ``config=`` says
otherwise; files written by :func:`save_model_checkpoint` carry their config and kind. Known leftovers are handled
by name (tests/data/released_layouts/README.md lists them); anything else that does not match is a CheckpointError.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from slt.errors import CheckpointError, ModelInputError
from slt.models.checkpoint import StateDict, assign_state_dict, check_state_dict, read_checkpoint, select_state_dict
from slt.models.signhiera import SignHiera, SignHieraConfig

if TYPE_CHECKING:
    from slt.models.sonar_encoder import SonarSignEncoder, SonarSignEncoderConfig

M = TypeVar("M", bound=nn.Module)

# Modules of the MAE pre-training model and the classification head: in released files, never used here.
SIGNHIERA_IGNORED_PREFIXES = ("decoder_blocks.", "decoder_embed.", "decoder_norm.", "decoder_pos_embed",
                              "decoder_pred.", "encoder_norm.", "mask_token", "multi_scale_fusion_heads.", "head.")
SIGNHIERA_OPTIONAL_KEYS = ("norm.weight", "norm.bias")
SONAR_TIED_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def _signhiera_keys(state: StateDict, path: str | os.PathLike) -> StateDict:
    return {k: v for k, v in state.items() if not k.startswith(SIGNHIERA_IGNORED_PREFIXES)}


def _sonar_keys(state: StateDict, path: str | os.PathLike) -> StateDict:
    # Older checkpoints name the input projection encoder.feature_proj.* (one module level up).
    state = {(k.replace("feature_proj", "feature_projection.feature_proj")
              if "feature_proj" in k and "feature_projection" not in k else k): v for k, v in state.items()}
    shared = state.get("shared.weight")
    for alias in SONAR_TIED_ALIASES:
        # The model holds one embedding; copies under its other names must agree with it.
        if alias in state and shared is not None:
            copy = state.pop(alias)
            if copy.shape != shared.shape or not torch.equal(copy, shared):
                raise CheckpointError(f"{path}: '{alias}' differs from 'shared.weight', but they are one tied tensor")
    return state


def _load(path: str | os.PathLike, model_cls: type[M], config_cls: Any, top_level_keys: tuple[str, ...],
          fix_keys: Callable[[StateDict, str | os.PathLike], StateDict], optional: tuple[str, ...],
          device: str | torch.device, dtype: torch.dtype | None, config: Any) -> M:
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, Mapping) and "kind" in checkpoint and checkpoint["kind"] != model_cls.kind:
        raise CheckpointError(f"{path} holds a '{checkpoint['kind']}' checkpoint, not '{model_cls.kind}'")
    state = select_state_dict(checkpoint, path, top_level_keys)
    hint = ""
    if config is None:
        config = _stored_config(checkpoint, config_cls, path)
        if config is None:
            hint = " (the file has no config, so the full-size layout was expected; pass config= for other sizes)"
    with torch.device("meta"):  # no weights are allocated until the file's tensors are adopted
        model = model_cls(config or config_cls())
    state = fix_keys(state, path)
    check_state_dict(model, state, path, optional, hint)
    assign_state_dict(model, state)
    try:
        model = model.to(device=torch.device(device), dtype=dtype or torch.float32)
    except (RuntimeError, AssertionError) as error:
        raise ModelInputError(f"Cannot move {model_cls.__name__} to device {device!r}: {error}") from error
    return model.eval()


def _stored_config(checkpoint: Any, config_cls: Any, path: str | os.PathLike) -> Any:
    """The config a checkpoint of ours stores (None for released files, which are full size)."""
    if not isinstance(checkpoint, Mapping) or checkpoint.get("config") is None:
        return None
    try:
        return config_cls.from_dict(checkpoint["config"])
    except (ModelInputError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid stored config: {error}") from error


def read_signhiera_config(path: str | os.PathLike) -> SignHieraConfig:
    """The config :func:`load_signhiera` would build for this file (its stored one, else the released full size),
    without building the model: all that preprocessing needs (clip length and image size). The file is
    memory-mapped, so its weights are not read."""
    return _stored_config(read_checkpoint(path), SignHieraConfig, path) or SignHieraConfig()


def load_signhiera(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                   config: SignHieraConfig | None = None) -> SignHiera:
    """Load SignHiera strictly from a released file (state dict under 'model', else 'model_state') or one of ours.

    ``config`` overrides the stored config (released files have none and default to full size). MAE-decoder and
    head weights are ignored by name; ``norm.*`` may be absent. ``dtype`` defaults to float32. Eval mode.
    """
    return _load(path, SignHiera, SignHieraConfig, ("model", "model_state"), _signhiera_keys,
                 SIGNHIERA_OPTIONAL_KEYS, device, dtype, config)


def load_sonar_sign_encoder(path: str | os.PathLike, device: str | torch.device = "cpu",
                            dtype: torch.dtype | None = None,
                            config: SonarSignEncoderConfig | None = None) -> SonarSignEncoder:
    """Load the SONAR ASL encoder strictly (state dict under 'student', else 'model'/'model_state').

    Accepts the legacy ``encoder.feature_proj*`` names; the tied embedding may be stored under one or all of its
    three names (they must be equal). ``dtype`` defaults to float32. Eval mode.
    """
    # Imported here for start-up time: the encoder is built on transformers' T5 (~2 s to import), which loading a
    # SignHiera (what preprocessing waits for) does not need.
    from slt.models.sonar_encoder import SonarSignEncoder, SonarSignEncoderConfig

    return _load(path, SonarSignEncoder, SonarSignEncoderConfig, ("student", "model", "model_state"), _sonar_keys,
                 SONAR_TIED_ALIASES, device, dtype, config)
