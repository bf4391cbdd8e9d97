"""Resumable, atomic downloads into the model cache.

A download streams into ``<dest>.part`` (resumed with an HTTP Range request if a previous attempt was cut off),
is checked against a known size/sha256 when one is recorded, and only then renamed to ``dest``. The size and
sha256 of every completed file are recorded in ``<cache>/downloads.json`` so later runs can verify them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slt.errors import ModelUnavailableError
from slt.utils.io import atomic_write_json

ProgressCallback = Callable[[int, int | None], None]  # (bytes_done, bytes_total or None)
_RECORD_LOCK = threading.Lock()
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file that lives at `url` and is cached as `filename`."""

    filename: str
    url: str
    description: str = ""
    sha256: str | None = None  # not published for the SONAR ASL files; recorded after the first download


def default_cache_dir() -> Path:
    """Where downloaded official weights live: `$SLT_CACHE_DIR`, default `checkpoints/official` in the repo."""
    return Path(os.environ.get("SLT_CACHE_DIR", Path(__file__).resolve().parent.parent / "checkpoints" / "official"))


def offline_requested() -> bool:
    return any(os.environ.get(var, "").lower() in {"1", "true", "yes"} for var in ("SLT_OFFLINE", "HF_HUB_OFFLINE"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _records_path(cache_dir: Path) -> Path:
    return cache_dir / "downloads.json"


def read_records(cache_dir: Path) -> dict[str, dict]:
    path = _records_path(cache_dir)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _record(cache_dir: Path, remote: RemoteFile, path: Path, sha: str) -> None:
    with _RECORD_LOCK:
        records = read_records(cache_dir)
        records[remote.filename] = {"url": remote.url, "size": path.stat().st_size, "sha256": sha}
        atomic_write_json(_records_path(cache_dir), records)


def console_progress(name: str) -> ProgressCallback:
    """A progress printer for the terminal (stderr), at most one line per 5 %."""
    last = [-1]

    def report(done: int, total: int | None) -> None:
        if total:
            percent = int(100 * done / total)
            if percent // 5 != last[0] // 5 or done == total:
                last[0] = percent
                print(f"\rdownloading {name}: {percent:3d}% of {total / 1e6:,.1f} MB", end="", file=sys.stderr)
                if done == total:
                    print(file=sys.stderr)
        elif done // (50 * CHUNK) != last[0]:
            last[0] = done // (50 * CHUNK)
            print(f"\rdownloading {name}: {done / 1e6:,.0f} MB", end="", file=sys.stderr)

    return report


def unavailable_message(remote: RemoteFile, dest: Path, reason: str) -> str:
    return (
        f"{remote.filename} ({remote.description or 'model file'}) is not cached and could not be downloaded: "
        f"{reason}. "
        f"Download it on a machine with internet from {remote.url} and put it at {dest} "
        "(or set SLT_CACHE_DIR to the folder that holds it)."
    )


def ensure_file(
    remote: RemoteFile,
    cache_dir: Path,
    progress: ProgressCallback | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Return the cached path of `remote`, downloading it first if needed (resumable, atomic)."""
    cache_dir = Path(cache_dir)
    dest = cache_dir / remote.filename
    if dest.exists():
        return dest
    if offline_requested():
        raise ModelUnavailableError(
            unavailable_message(remote, dest, "offline mode (SLT_OFFLINE/HF_HUB_OFFLINE) is set"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _download_to_part(remote.url, part, progress, timeout_s)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", None) or error
        raise ModelUnavailableError(unavailable_message(remote, dest, str(reason))) from error
    sha = sha256_of(part)
    if remote.sha256 and sha != remote.sha256:
        part.unlink()
        raise ModelUnavailableError(
            f"{remote.filename}: downloaded file has sha256 {sha}, expected {remote.sha256}; the partial file was "
            "removed, try again."
        )
    os.replace(part, dest)
    _record(cache_dir, remote, dest, sha)
    return dest


def _download_to_part(url: str, part: Path, progress: ProgressCallback | None, timeout_s: float) -> None:
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "slt-studio"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if done and response.status != 206:  # server ignored Range: start over
            done = 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(part, "ab" if done else "wb") as handle:
            while block := response.read(CHUNK):
                handle.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes (run again to resume)")
