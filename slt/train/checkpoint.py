"""Training checkpoints (`last.pt`, `best.pt`): everything needed to resume a run exactly, written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slt.errors import CheckpointError
from slt.utils.io import atomic_save


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, **state: Any) -> Path:
    """Atomic torch.save of the training state (model, optimizer, scheduler, scaler, rng, progress...)."""
    return atomic_save({"kind": "slt_training_state", "rng": rng_state(), **state}, path)


def load_training_state(path: Path) -> dict[str, Any]:
    """Load a state written by `save_training_state`; CheckpointError if missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No training checkpoint to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(
            f"Cannot resume: the training checkpoint {path} is damaged ({error}). Nothing in its run folder was "
            "changed. Restore the file from a copy, or start a new run (best.pt, if there, holds the best "
            "epoch's weights).") from error
    if not isinstance(state, dict) or state.get("kind") != "slt_training_state":
        raise CheckpointError(f"Cannot resume: {path} is not a training checkpoint written by `python -m slt train`; "
                              "nothing in its run folder was changed")
    return state
