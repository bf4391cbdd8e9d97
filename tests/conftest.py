"""Shared test set-up: everything offline, on CPU, with caches in temporary folders.

Shared fixtures live in tests/fixtures/ (registered below, so each is defined once and a session fixture is built
once); plain helpers in tests/helpers/. The repository root is on the import path through pyproject.toml's
`pythonpath`, so tests import `slt`, `analysis` and `tests.helpers.*` by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

pytest_plugins = ["tests.fixtures.demo", "tests.fixtures.text"]

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


def pytest_collection_modifyitems(config, items):
    """Tests marked `fairseq2` are skipped, with the reason, only where sonar-space/fairseq2 cannot be imported
    (the requirements-nofs2.txt install); everywhere else they run."""
    if not any(item.get_closest_marker("fairseq2") for item in items):
        return
    from slt.text.backends import fairseq2_available

    if fairseq2_available():
        return
    skip = pytest.mark.skip(reason="needs sonar-space/fairseq2, not installed here (requirements-nofs2.txt profile)")
    for item in items:
        if item.get_closest_marker("fairseq2"):
            item.add_marker(skip)
