"""What an extract-features output folder holds, and how a resumed run checks it.

Layout of DIR: ``extract_config.json`` (model checkpoint fingerprint + preprocessing settings), ``feats/<id>.pt``
(+ ``.npy``), per-rank shard lists under ``shards/`` and, once every rank is done, ``features.tsv`` and
``failures.jsonl``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slt.errors import FeatureExtractionError
from slt.utils.io import atomic_save, atomic_write, atomic_write_json, atomic_write_text

CONFIG_NAME = "extract_config.json"
FEATURES_NAME = "features.tsv"
FAILURES_NAME = "failures.jsonl"
FEATURES_HEADER = ("id", "path", "n_steps", "translation")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Done:
    """A clip whose features are on disk."""

    index: int  # position in the manifest (the merged manifest keeps this order)
    id: str
    path: str  # relative to DIR
    n_steps: int
    translation: str


@dataclass(frozen=True)
class Failure:
    index: int
    id: str
    error_type: str
    message: str

    def record(self) -> dict[str, str]:
        return {"id": self.id, "error_type": self.error_type, "message": self.message}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (checkpoints are GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def extraction_config(checkpoint: Path, preprocess: Any, feature_dim: int) -> dict[str, Any]:
    """The settings a features folder was made with; a resume must match them exactly."""
    return {
        "format_version": FORMAT_VERSION,
        "signhiera": {"path": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint),
                      "size": checkpoint.stat().st_size},
        "feature_dim": feature_dim,
        "preprocess": preprocess.output_settings(),
    }


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    # The checkpoint may move between runs; its content (sha256, size) is what matters.
    signhiera = {k: v for k, v in config.get("signhiera", {}).items() if k != "path"}
    return {**config, "signhiera": signhiera}


def check_config(out_dir: Path, config: dict[str, Any], name: str = CONFIG_NAME, what: str = "features",
                 error_type: type[FeatureExtractionError] = FeatureExtractionError) -> bool:
    """True when DIR already has this config, False when it has none; raise when it differs (refuse to mix).

    ``name`` is the settings file in DIR, ``what`` the kind of data it guards and ``error_type`` what is raised
    (the crop cache shares this check).
    """
    path = out_dir / name
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise error_type(f"{path} is unreadable ({error}); delete it only if {out_dir} holds no "
                         f"{what} you want to keep") from error
    old_c, new_c = _comparable(old), _comparable(config)
    if old_c != new_c:
        diffs = _differences(old_c, new_c)
        raise error_type(
            f"{out_dir} holds {what} made with a different configuration ({'; '.join(diffs)}). "
            "Resume with the same checkpoint and preprocessing options, or choose another --out folder."
        )
    return True


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: was {old!r}, now {new!r}"]


def write_config(out_dir: Path, config: dict[str, Any], name: str = CONFIG_NAME) -> None:
    atomic_write_json(out_dir / name, config)


def finished_steps(pt_path: Path, feature_dim: int) -> int | None:
    """n_steps of a finished feature file, or None when it is missing, partial or of the wrong shape/dtype."""
    if not pt_path.is_file():
        return None
    try:
        # mmap: only the header is read to check the shape; a truncated zip fails to open here.
        features = torch.load(pt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file is simply redone
        return None
    ok = (isinstance(features, torch.Tensor) and features.dim() == 2 and features.shape[0] > 0
          and features.shape[1] == feature_dim and features.dtype == torch.float32)
    return int(features.shape[0]) if ok else None


def npy_matches(npy_path: Path, n_steps: int, feature_dim: int) -> bool:
    try:
        array = np.load(npy_path, mmap_mode="r")
    except Exception:
        return False
    return array.shape == (n_steps, feature_dim) and array.dtype == np.float32


def save_features(features: torch.Tensor, pt_path: Path, npy: bool) -> None:
    """Atomically write [N, D] float32 features as .pt (and .npy): a killed run never leaves a file that looks done."""
    # clone(): a view would make torch.save write its whole parent storage.
    features = features.detach().to("cpu", torch.float32).contiguous().clone()
    if npy:
        save_npy(features, pt_path.with_suffix(".npy"))
    atomic_save(features, pt_path)  # written last: its presence marks the clip as finished


def save_npy(features: torch.Tensor, npy_path: Path) -> None:
    atomic_write(npy_path, lambda handle: np.save(handle, features.numpy()))


def remove_stale_temp_files(feats_dir: Path) -> int:
    """Delete temp files a killed run left behind (they never count as finished)."""
    removed = 0
    for tmp in feats_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def shard_paths(out_dir: Path, rank: int, world: int) -> tuple[Path, Path]:
    folder = out_dir / "shards"
    return folder / f"done.rank{rank}-of-{world}.jsonl", folder / f"failed.rank{rank}-of-{world}.jsonl"


def write_shard(out_dir: Path, rank: int, world: int, done: Iterable[Done], failed: Iterable[Failure]) -> None:
    """This rank's results, for rank 0 to merge."""
    done_path, failed_path = shard_paths(out_dir, rank, world)
    atomic_write_text(done_path, "".join(json.dumps(dataclasses.asdict(d), ensure_ascii=False) + "\n" for d in done))
    atomic_write_text(failed_path, "".join(json.dumps(dataclasses.asdict(f), ensure_ascii=False) + "\n"
                                           for f in failed))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FeatureExtractionError(f"shard list {path} is missing: a rank did not finish; run again to resume")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def merge_shards(out_dir: Path, world: int, extra_failures: Iterable[Failure] = (),
                 index_name: str = FEATURES_NAME) -> tuple[Path, int, int]:
    """Merge every rank's lists into DIR/features.tsv (or ``index_name``) and DIR/failures.jsonl in manifest order.

    Returns (features manifest path, clips listed, failures listed).
    """
    done: list[Done] = []
    failed: list[Failure] = list(extra_failures)
    for rank in range(world):
        done_path, failed_path = shard_paths(out_dir, rank, world)
        done += [Done(**item) for item in _read_jsonl(done_path)]
        failed += [Failure(**item) for item in _read_jsonl(failed_path)]
    done.sort(key=lambda d: d.index)
    failed.sort(key=lambda f: f.index)
    lines = ["\t".join(FEATURES_HEADER)] + [f"{d.id}\t{d.path}\t{d.n_steps}\t{d.translation}" for d in done]
    features_path = atomic_write_text(out_dir / index_name, "\n".join(lines) + "\n")
    atomic_write_text(out_dir / FAILURES_NAME,
                      "".join(json.dumps(f.record(), ensure_ascii=False) + "\n" for f in failed))
    return features_path, len(done), len(failed)
