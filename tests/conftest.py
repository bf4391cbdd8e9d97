"""Shared test set-up: everything offline, on CPU, with caches in temporary folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# Tests never reach the network; model sets resolve to local files only.
os.environ.setdefault("SLT_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Tiny models run far faster on one thread, and on a busy 2-core machine extra threads only spin and wait.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty official-weights cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SLT_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def demo_bundle_dir() -> Path:
    """The quick offline demo model set, built once (kept in .pytest_cache between local runs; CI builds it fresh).

    It is built by the real `python -m slt demo build --quick` code path (synthetic corpus -> features -> training).
    """
    import dataclasses
    import json

    from slt.demo.build import DemoRecipe, build
    from slt.demo.bundle import BUNDLE_FILE

    root = REPO_ROOT / ".pytest_cache" / "slt-demo-quick"
    recipe = DemoRecipe.quick()
    built_with = root / "work" / "recipe.json"
    current = (root / BUNDLE_FILE).exists() and built_with.exists() and \
        json.loads(built_with.read_text()) == json.loads(json.dumps(dataclasses.asdict(recipe)))
    if not current:
        build(root, recipe, force=True)
    os.environ["SLT_DEMO_DIR"] = str(root)
    return root
