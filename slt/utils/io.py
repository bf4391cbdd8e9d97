"""Crash-safe file writes: a killed process never leaves a half-written checkpoint, manifest or JSON file.

The project's one atomic writer (training, extraction, the demo build, the app and the analysis reports use it):
write a temp file next to the target, fsync, then rename over the target. Temp files are named `.<name>.*.tmp`,
so a folder can be swept of a killed run's leftovers by that pattern.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file next to `path`, then rename it over `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file lives next to the target so os.replace stays an atomic rename on one filesystem.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applies).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temp file, then rename over `path`."""
    import torch  # imported here for start-up time: the analysis reports write text without loading torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
