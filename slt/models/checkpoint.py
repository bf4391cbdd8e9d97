"""Reading, checking and writing model checkpoints (generic over the two architectures).

Reading never unpickles arbitrary objects (``weights_only=True``) and memory-maps zip checkpoints, so a 3 GB
encoder is not held twice in RAM. Matching is strict: every key the model needs must be there with the right
shape, and nothing unknown may be left over; the error names the keys and the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slt.errors import CheckpointError
from slt.utils.io import atomic_save

StateDict = dict[str, torch.Tensor]
_RESERVED = ("model", "config", "kind")
_SHOW = 5  # keys named per problem in an error message


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load the file safely (tensors and plain containers only), memory-mapped when the format allows."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path} (no such file)")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint path {path} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):  # legacy (non-zip) torch.save format cannot be memory-mapped
            raise _unreadable(path, error) from error
    except Exception as error:  # pickle, zip and weights_only failures all mean "not a usable checkpoint"
        raise _unreadable(path, error) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise _unreadable(path, error) from error


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    # torch's weights_only message suggests weights_only=False; we never do that, so keep only the cause.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next((line for line in reversed(lines) if "operand" in line or "global" in line.lower()),
                 lines[0] if lines else "")
    return CheckpointError(
        f"Cannot read checkpoint {path}: not a PyTorch checkpoint of tensors and plain containers "
        f"({type(error).__name__}: {cause[:200]})")


def select_state_dict(obj: Any, path: str | os.PathLike, top_level_keys: Iterable[str]) -> StateDict:
    """The state dict stored under the first of ``top_level_keys`` present in the checkpoint dict."""
    top_level_keys = list(top_level_keys)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict with one of {top_level_keys}, found {type(obj).__name__}")
    for key in top_level_keys:
        if key in obj:
            state = obj[key]
            break
    else:
        found = sorted(map(str, obj))[:10]
        bare = bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
        hint = f" (it looks like a bare state dict; save it as {{'{top_level_keys[0]}': state_dict}})" if bare else ""
        raise CheckpointError(f"{path}: no state dict under any of {top_level_keys}; top-level keys are {found}{hint}")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: '{key}' is not a state dict of tensors ({type(state).__name__})")
    return dict(state)


def _name_some(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                     optional: Iterable[str] = (), hint: str = "") -> None:
    """Raise CheckpointError naming every missing, unexpected and wrongly shaped key (optional keys may be absent)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = set(expected) - set(state) - set(optional)
    unexpected = set(state) - set(expected)
    wrong = {k: (tuple(state[k].shape), expected[k]) for k in set(state) & set(expected)
             if tuple(state[k].shape) != expected[k]}
    # Weights must be floating point; an integer tensor cannot become a trainable parameter.
    not_float = sorted(k for k in set(state) & set(expected) if not state[k].is_floating_point())
    if not (missing or unexpected or wrong or not_float):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_name_some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_name_some(unexpected)}")
    if wrong:
        shown = sorted(wrong)[:_SHOW]
        more = f", ... ({len(wrong) - _SHOW} more)" if len(wrong) > _SHOW else ""
        problems.append(f"{len(wrong)} shape mismatches: "
                        + ", ".join(f"{k} file {list(wrong[k][0])} vs model {list(wrong[k][1])}" for k in shown) + more)
    if not_float:
        problems.append(f"{len(not_float)} non-float tensors: "
                        + ", ".join(f"{k} ({state[k].dtype})" for k in not_float[:_SHOW]))
    raise CheckpointError(f"{path} does not match {type(model).__name__}: " + "; ".join(problems) + hint)


def assign_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a checked state dict into a model built on the meta device, adopting the (mmapped) tensors as they are.

    Parameters the file may omit (optional keys) are materialised with their module's own initialisation.
    """
    model.load_state_dict(state, strict=False, assign=True)
    for module in model.modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if any(t.is_meta for t in own):
            if not hasattr(module, "reset_parameters"):
                names = [n for n, t in module.named_parameters(recurse=False) if t.is_meta]
                raise CheckpointError(f"{type(model).__name__}: no values for {names} and no way to initialise them")
            module.to_empty(device="cpu", recurse=False)
            module.reset_parameters()
    return model


def save_model_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``{"model": state_dict, "config": asdict(cfg), "kind": model.kind, **extra}`` atomically.

    ``extra`` values should be tensors or plain Python data so the file stays loadable with weights_only.
    """
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module  # save the bare model so its keys have no "module." prefix
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"save_model_checkpoint: extra keys {clash} are reserved")
    config = getattr(model, "config", None)
    kind = getattr(model, "kind", None)
    if not dataclasses.is_dataclass(config) or not isinstance(kind, str):
        raise TypeError(f"{type(model).__name__} has no dataclass `config` and `kind`; cannot save it with a config")
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return atomic_save({"model": state, "config": dataclasses.asdict(config), "kind": kind, **extra}, path)
