"""The repository root and the environment for tests that run the project as a user does (`python -m slt ...`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # torchrun, sacrebleu: the console scripts next to this interpreter
VENV_LIB = VENV_BIN.parent / "lib"  # fairseq2n finds libsndfile here (scripts/dev.sh links it)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment plus the repository on PYTHONPATH (so `-m slt` works from any cwd) and `extra`."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), **extra}
