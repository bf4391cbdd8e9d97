"""Pre-extracted features on disk: a TSV manifest `id, path, n_steps, translation` + one `[N, D]` tensor per clip.

The manifest is checked up front (so a typo fails in a second, not after an hour of training); the tensors are
loaded lazily, one per item, so a large corpus is streamed from disk instead of held in RAM.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from slt.errors import ManifestError

FEATURES_HEADER = ("id", "path", "n_steps", "translation")


@dataclass
class FeatureRow:
    id: str
    path: Path
    n_steps: int
    translation: str
    line: int  # 1-based line in the manifest, for error messages


@dataclass
class FeatureItem:
    id: str
    features: Tensor  # [N, D] float32
    text: str


@dataclass
class FeatureBatch:
    """A padded batch. `padding_mask` is True at padding positions."""

    ids: list[str]
    features: Tensor  # [B, N, D]
    padding_mask: Tensor  # [B, N] bool
    texts: list[str]

    def to(self, device: torch.device | str) -> FeatureBatch:
        return FeatureBatch(self.ids, self.features.to(device), self.padding_mask.to(device), self.texts)

    def __len__(self) -> int:
        return len(self.ids)


def read_features_manifest(manifest_path: str | Path) -> list[FeatureRow]:
    """Parse and check a features manifest; raise ManifestError naming the file and line of the first problem."""
    try:
        return _read_features_manifest(Path(manifest_path))
    except UnicodeDecodeError as error:
        raise ManifestError(f"{manifest_path}: not UTF-8 text ({error.reason} at byte {error.start}); "
                            "save it as UTF-8") from error


def _read_features_manifest(manifest_path: Path) -> list[FeatureRow]:
    if not manifest_path.is_file():
        raise ManifestError(f"Features manifest not found: {manifest_path}")
    root = manifest_path.parent
    rows: list[FeatureRow] = []
    seen: dict[str, int] = {}
    with manifest_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != FEATURES_HEADER:
            raise ManifestError(
                f"{manifest_path}:1: header must be the tab-separated columns {list(FEATURES_HEADER)}, got {header!r}"
            )
        for line_no, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            where = f"{manifest_path}:{line_no}"
            if len(fields) != 4:
                raise ManifestError(f"{where}: expected 4 tab-separated fields (id, path, n_steps, translation), "
                                    f"got {len(fields)}")
            clip_id, rel_path, n_steps_text, translation = (f.strip() for f in fields)
            if not clip_id:
                raise ManifestError(f"{where}: empty id")
            if clip_id in seen:
                raise ManifestError(f"{where}: duplicate id {clip_id!r} (first on line {seen[clip_id]})")
            try:
                n_steps = int(n_steps_text)
            except ValueError:
                raise ManifestError(f"{where}: n_steps must be an integer, got {n_steps_text!r}") from None
            if n_steps < 1:
                raise ManifestError(f"{where}: n_steps must be >= 1, got {n_steps}")
            if not translation:
                raise ManifestError(f"{where}: empty translation for id {clip_id!r}")
            path = Path(rel_path)
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise ManifestError(f"{where}: features file for id {clip_id!r} not found: {path}")
            seen[clip_id] = line_no
            rows.append(FeatureRow(clip_id, path, n_steps, translation, line_no))
    if not rows:
        raise ManifestError(f"{manifest_path}: no samples (only a header)")
    return rows


class FeaturesDataset(Dataset):
    """Map-style dataset over a features manifest; each item loads its own tensor from disk."""

    def __init__(self, manifest_path: str | Path, max_samples: int | None = None):
        self.manifest_path = Path(manifest_path)
        rows = read_features_manifest(self.manifest_path)
        self.rows = rows[:max_samples] if max_samples else rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def texts(self) -> list[str]:
        return [row.translation for row in self.rows]

    def feature_dim(self) -> int:
        """D of the first item (all items must share it)."""
        return int(self[0].features.shape[1])

    def __getitem__(self, index: int) -> FeatureItem:
        row = self.rows[index]
        where = f"{self.manifest_path}:{row.line}"
        try:
            tensor = torch.load(row.path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling / zip errors: the file is not a torch tensor file
            raise ManifestError(f"{where}: cannot load features file {row.path}: {error}") from error
        if not isinstance(tensor, Tensor):
            raise ManifestError(f"{where}: {row.path} holds {type(tensor).__name__}, expected a tensor [N, D]")
        if tensor.ndim != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
            raise ManifestError(f"{where}: {row.path} has shape {tuple(tensor.shape)}, expected [N, D]")
        if not tensor.is_floating_point():
            raise ManifestError(f"{where}: {row.path} has dtype {tensor.dtype}, expected a float tensor")
        if tensor.shape[0] != row.n_steps:
            raise ManifestError(f"{where}: n_steps says {row.n_steps} but {row.path} has {tensor.shape[0]} steps")
        finite = torch.isfinite(tensor).all(dim=1)  # [N]
        if not bool(finite.all()):
            steps = (~finite).nonzero().flatten().tolist()
            raise ManifestError(f"{where}: the features of id {row.id!r} ({row.path}) hold NaN or inf at step(s) "
                                f"{steps[:10]}{' ...' if len(steps) > 10 else ''}; extract that clip again or "
                                "remove its line from the manifest")
        return FeatureItem(row.id, tensor.float(), row.translation)

    def check_all(self, limit: int = 10) -> None:
        """Load every item once; raise one ManifestError naming every bad sample (up to `limit` of them).

        For splits read whole at every evaluation: a bad validation file then fails at start-up, not after an
        epoch of training.
        """
        problems = []
        for index in range(len(self)):
            try:
                self[index]
            except ManifestError as error:
                problems.append(str(error))
                if len(problems) == limit:
                    problems.append("(stopped looking after that many)")
                    break
        if problems:
            raise ManifestError(f"{len(problems)} unusable sample(s) in {self.manifest_path}:\n" + "\n".join(problems))


def collate_features(items: list[FeatureItem]) -> FeatureBatch:
    """Zero-pad `[N_i, D]` tensors to `[B, max N, D]`; `padding_mask` marks the padded steps."""
    if not items:
        raise ValueError("collate_features needs at least one item")
    dims = {item.features.shape[1] for item in items}
    if len(dims) != 1:
        raise ManifestError(f"feature dimensions differ within a batch: {sorted(dims)} "
                            f"(ids {[item.id for item in items]})")
    lengths = [item.features.shape[0] for item in items]
    features = torch.zeros(len(items), max(lengths), dims.pop())
    padding_mask = torch.ones(len(items), max(lengths), dtype=torch.bool)
    for i, item in enumerate(items):
        features[i, : lengths[i]] = item.features
        padding_mask[i, : lengths[i]] = False
    return FeatureBatch([i.id for i in items], features, padding_mask, [i.text for i in items])
