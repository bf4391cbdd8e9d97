"""Whole-split evaluation for the Compare tab: run an encoder of the engine over a split's pre-extracted features.

The demo model set ships its corpora's SignHiera features (demo.json "features"), so a split is translated
without decoding any video: features are streamed from disk in batches, embedded by the encoder and decoded in
one batched call per batch. Results are cached per (model set, split file, encoder, language).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from slt.data.features import FeaturesDataset
from slt.errors import ModelUnavailableError
from slt.modelset import read_demo_bundle

_DOMAINS = {"A": "studio (domain A)", "B": "instructional (domain B, the fine-tuning target)"}


def evaluation_splits(model_set_name: str, demo_root: Path) -> dict[str, Path]:
    """Label -> features manifest of the model set's evaluation splits (test first, then validation)."""
    if model_set_name != "demo":
        return {}
    try:
        bundle = read_demo_bundle(Path(demo_root))
    except ModelUnavailableError:
        return {}
    splits: dict[str, Path] = {}
    for split in ("test", "val"):
        for domain in ("B", "A"):
            path = bundle.features.get(domain, {}).get(split)
            if path and path.is_file():
                splits[f"{split} · {_DOMAINS[domain]}"] = path
    return splits


class SplitPredictor:
    """Translates whole feature splits with the engine's encoders and keeps the results."""

    def __init__(self, batch_size: int = 16):
        self.batch_size = batch_size
        self._cache: dict[tuple, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def predict(self, engine, manifest: Path, encoder: str, language: str = "eng_Latn",
                progress: Callable[[float, str], None] | None = None) -> pd.DataFrame:
        """A predictions table (id, reference, prediction) of `encoder` on the split; cached."""
        manifest = Path(manifest)
        key = (engine.model_set.name, str(manifest.resolve()), manifest.stat().st_mtime_ns, encoder, language)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        dataset = FeaturesDataset(manifest)
        ids, refs, preds = [], [], []
        for first in range(0, len(dataset), self.batch_size):
            if progress:
                progress(first / len(dataset), f"{encoder}: {first}/{len(dataset)} samples")
            items = [dataset[i] for i in range(first, min(first + self.batch_size, len(dataset)))]
            embeddings = engine.embed([item.features for item in items], encoder)
            texts = engine.decode(embeddings, [language])[language]
            ids += [item.id for item in items]
            refs += [item.text for item in items]
            preds += texts
        table = pd.DataFrame({"id": ids, "reference": refs, "prediction": preds})
        with self._lock:
            self._cache[key] = table
        return table
