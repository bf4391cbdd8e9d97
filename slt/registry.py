"""Model sets by name: which set `auto`, `official` and `demo` mean on this machine, and what `models` lists.

- ``official``: Meta's DailyMoth-70h release (files downloaded on first use, see :mod:`slt.modelset`).
- ``demo``: the offline demo set built by ``python -m slt demo build`` into ``checkpoints/demo`` (``$SLT_DEMO_DIR``).
- ``auto``: official when its files are cached or can be fetched, else the demo set.

Resolving a name never builds anything: a front end that wants the demo set built on first use (the translate
command, the app, the benchmarks) asks :func:`pick_model_set` which set a name means, calls
:func:`build_demo_set` itself when :func:`demo_set_built` says so (showing its own progress), then resolves.
Any fine-tuned encoder checkpoint can be added to a set by path (``ModelSet.with_encoders``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from slt.download import default_cache_dir, offline_requested
from slt.errors import ModelUnavailableError
from slt.modelset import (
    BUNDLE_FILE,
    OFFICIAL_ENCODER,
    REPO_ROOT,
    ModelSet,
    demo_bundle_exists,
    demo_dir,
    official_files_cached,
    official_model_set,
    read_demo_bundle,
)
from slt.text.assets import OFFICIAL_TEXT_CARDS, text_cache_dir

__all__ = ["MODEL_SETS", "REPO_ROOT", "build_demo_set", "demo_dir", "demo_set_built", "describe_model_sets",
           "official_reachable", "pick_model_set", "resolve_model_set"]

MODEL_SETS = ("auto", "official", "demo")


def official_reachable(timeout_s: float = 3.0) -> bool:
    if offline_requested():
        return False
    host = urlparse(OFFICIAL_ENCODER.url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def pick_model_set(name: str = "auto") -> str:
    """"official" or "demo": what `name` means here (`auto`: official when cached or reachable, else demo)."""
    if name in ("official", "demo"):
        return name
    if name == "auto":
        return "official" if official_files_cached() or official_reachable() else "demo"
    raise ModelUnavailableError(f"unknown model set '{name}'; choose one of {', '.join(MODEL_SETS)}")


def resolve_model_set(name: str = "auto") -> ModelSet:
    """The model set `name` means; the demo set must be built already (the error names the command)."""
    if pick_model_set(name) == "official":
        return official_model_set()
    return read_demo_bundle(demo_dir()).model_set()


def demo_set_built() -> bool:
    return demo_bundle_exists(demo_dir())


def build_demo_set() -> Path:
    """Build the full offline demo set into :func:`demo_dir` (minutes on a CPU; prints its steps)."""
    # Imported here for start-up time: the build pulls in the data and training code (and torch).
    from slt.demo.build import build

    return build(demo_dir())


def describe_model_sets() -> list[dict]:
    """What `python -m slt models` prints: every file of every set, cached or not."""
    rows = []
    official = official_model_set()
    for role, source in official.files().items():
        path = default_cache_dir() / source.filename
        rows.append({"set": "official", "role": role, "file": source.filename, "cached": path.exists(),
                     "path": str(path), "url": source.url,
                     "size_bytes": path.stat().st_size if path.exists() else None})
    # The text decoder: fairseq2 fetches it into its own asset cache (FAIRSEQ2_CACHE_DIR) by sonar-space's card;
    # the transformers backend downloads the same files into the SLT cache. Listed here is the latter.
    card = OFFICIAL_TEXT_CARDS[official.decoder]
    for role, field in (("decoder", "checkpoint"), ("tokenizer", "tokenizer")):
        url = str(card[field])
        path = text_cache_dir() / Path(urlparse(url).path).name
        rows.append({"set": "official", "role": role, "file": path.name, "cached": path.exists(), "path": str(path),
                     "url": url, "size_bytes": path.stat().st_size if path.exists() else None,
                     "note": "transformers backend; fairseq2 keeps its own copy (FAIRSEQ2_CACHE_DIR)"})
    root = demo_dir()
    built_locally = "built locally (python -m slt demo build)"
    if demo_bundle_exists(root):
        bundle = read_demo_bundle(root)
        for role, path in bundle.files.items():
            rows.append({"set": "demo", "role": role, "file": str(path.relative_to(root)), "cached": path.exists(),
                         "path": str(path), "url": built_locally,
                         "size_bytes": path.stat().st_size if path.exists() else None})
    else:
        rows.append({"set": "demo", "role": "all", "file": BUNDLE_FILE, "cached": False,
                     "path": str(root / BUNDLE_FILE), "url": built_locally, "size_bytes": None})
    return rows
