"""Crash-safe file writes: a killed process never leaves a half-written checkpoint, manifest or JSON file.

The project's one atomic writer (training, extraction, the demo build, the app and the analysis reports use it):
write a temp file next to the target, fsync, then rename over the target. Temp files are named `.<name>.*.tmp`,
so a folder can be swept of a killed run's leftovers by that pattern.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file next to `path`, then rename it over `path`; returns the path."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a device or pipe (/dev/stdout): write through, never replace it
        with open(path, "wb") as handle:
            write(handle)
        return path
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
    except BaseException as error:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(error, OSError) and error.filename in (None, tmp_name):
            # A failed write (full disk) names no file or the temp file: name the target; it is unchanged.
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    write_boundary(path)
    return path


# Test hook for crash-consistency tests: the process counts its completed writes (atomic replaces, appended log
# lines) and, with SLT_TEST_KILL_AFTER_WRITES=N set, SIGKILLs itself right after the N-th one, so a test can kill a
# real training run at every write boundary. SLT_TEST_WRITE_LOG=FILE appends each written path to FILE (to count
# them). Unset in normal use, where this costs one environment lookup per file written.
_write_count = {"pid": 0, "n": 0}


def write_boundary(path: str | os.PathLike) -> None:
    """Mark a completed crash-safe write of `path` (see the test hook above)."""
    kill_after = os.environ.get("SLT_TEST_KILL_AFTER_WRITES")
    log_file = os.environ.get("SLT_TEST_WRITE_LOG")
    if not kill_after and not log_file:
        return
    if _write_count["pid"] != os.getpid():  # a forked child counts its own writes
        _write_count.update(pid=os.getpid(), n=0)
    _write_count["n"] += 1
    if log_file:
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{_write_count['n']}\t{path}\n")
    if kill_after and _write_count["n"] == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temp file, then rename over `path`."""
    import torch  # imported here for start-up time: the analysis reports write text without loading torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
