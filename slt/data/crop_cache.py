"""A crop cache: the uint8 signer crops of every clip of a video manifest, built once, so training from video
(stage 1 of the two-stage recipe) never decodes or detects again.

Per video, exactly what inference feeds SignHiera is kept, before normalisation: the distinct sampled source
frames as uint8 RGB crops at the model's image size (224x224 for the released SignHiera), each clip's frame
positions into them (repeated frames are the clip's padding) and the paddings. ``clip_tensor`` turns them into
the normalised clips with the same code inference uses: a model trained on the cache sees identical input (tested).

Layout of the cache folder::

    crop_cache.json              settings (preprocessing) it was built with; a rebuild must match them
    crops/<safe id>.pt           {"frames": uint8 [F, S, S, 3], "clips": int64 [n_clips, T], "paddings": [n_clips]}
    crops.rank<r>of<w>.tsv       id, crops file, n_clips, translation: the videos shard r of w finished
    failures.rank<r>of<w>.jsonl  the videos shard r of w could not read, with the error

Training reads it through :class:`CropClipsDataset` and :func:`collate_clips`: batches stay uint8 until they
reach the device (a float clip is 4x larger), so a step holds one batch of clips, never a whole video corpus.
Optional temporal jitter moves each unpadded clip's window by a few sampled frames. Not done yet (issue 9,
part 2): a command line (`extract-features`-like) and the stage-1 recipe that trains on these batches.

Building is resumable (a video whose crops file exists is skipped; files are written atomically) and shardable:
shard r of w takes rows r, r + w, ...; under ``torchrun`` every process builds its shard, and
:class:`CropCache` reads the union of whatever shard manifests exist. Memory: one video's crops at a time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from slt.data.extract_state import _differences
from slt.data.manifest import read_manifest
from slt.data.safe_ids import safe_id
from slt.errors import FeatureExtractionError, ManifestError
from slt.utils.io import atomic_save, atomic_write_json, atomic_write_text
from slt.video import PreprocessConfig, preprocess_video
from slt.video.clips import build_clips

log = logging.getLogger("slt.data")

FORMAT_VERSION = 1
CONFIG_NAME = "crop_cache.json"


@dataclass(frozen=True)
class CachedVideo:
    """One video from the cache: uint8 crops and how clips are cut from them."""

    id: str
    translation: str
    frames: torch.Tensor  # uint8 [F, S, S, 3], the distinct sampled source frames in time order
    clips: torch.Tensor  # int64 [n_clips, T]: positions into `frames`
    paddings: list[int]  # per clip: T - distinct frames in it


def cache_config(preprocess: PreprocessConfig) -> dict:
    """What a cache is built with; a resume or a reader expecting other settings is refused."""
    return {"format_version": FORMAT_VERSION, "preprocess": dataclasses.asdict(preprocess)}


def _check_or_write_config(out_dir: Path, config: dict) -> None:
    path = out_dir / CONFIG_NAME
    if not path.is_file():
        atomic_write_json(path, config)
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise FeatureExtractionError(f"{path} is unreadable ({error}); rebuild the crop cache in a new folder") \
            from error
    if old != json.loads(json.dumps(config)):
        diffs = _differences(old, json.loads(json.dumps(config)))
        raise FeatureExtractionError(f"{out_dir} is a crop cache built with other settings ({'; '.join(diffs)}); "
                                     "use the same preprocessing or another folder")


def _shard_from_env() -> tuple[int, int]:
    """(rank, world) under torchrun (RANK / WORLD_SIZE), else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def build_crop_cache(manifest_path: str | os.PathLike, out_dir: str | os.PathLike, preprocess: PreprocessConfig,
                     rank: int | None = None, world: int | None = None) -> Path:
    """Crop every video of the manifest (this shard's rows) into ``out_dir``; returns the shard's manifest path.

    ``preprocess`` must already be fitted to the SignHiera that will read the crops
    (``slt.video.config.fit_preprocess_to_model``): clip length and image size come from it.
    """
    env_rank, env_world = _shard_from_env()
    rank, world = (env_rank if rank is None else rank), (env_world if world is None else world)
    if not 0 <= rank < world:
        raise FeatureExtractionError(f"shard {rank} of {world} does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_or_write_config(out, cache_config(preprocess))
    manifest = read_manifest(manifest_path)
    lines, failures = [], []
    for row in manifest.rows[rank::world]:
        target = out / "crops" / f"{safe_id(row.id)}.pt"
        if not target.is_file():
            try:
                video = preprocess_video(row.video_path, preprocess, materialize=False)
            except Exception as error:  # every failure is recorded per video; the build goes on
                failures.append({"id": row.id, "path": str(row.video_path), "error_type": type(error).__name__,
                                 "message": str(error) or repr(error)})
                continue
            sources = sorted(video.crops)
            position = {source: i for i, source in enumerate(sources)}
            frames = torch.from_numpy(np.stack([video.crops[s] for s in sources]))
            clips = torch.tensor([[position[int(i)] for i in clip] for clip in video.clip_indices], dtype=torch.long)
            atomic_save({"frames": frames, "clips": clips, "paddings": list(video.paddings)}, target)
        n_clips = len(torch.load(target, map_location="cpu", weights_only=True)["paddings"])
        lines.append(f"{row.id}\tcrops/{target.name}\t{n_clips}\t{row.translation}\n")
    shard = out / f"crops.rank{rank}of{world}.tsv"
    atomic_write_text(shard, "id\tpath\tn_clips\ttranslation\n" + "".join(lines))
    atomic_write_text(out / f"failures.rank{rank}of{world}.jsonl", "".join(json.dumps(f) + "\n" for f in failures))
    log.info("crop cache %s: shard %d/%d: %d videos, %d failed", out, rank, world, len(lines), len(failures))
    return shard


class CropCache:
    """Read a crop cache (every shard manifest found); ``preprocess`` (when given) must be what it was built with."""

    def __init__(self, out_dir: str | os.PathLike, preprocess: PreprocessConfig | None = None):
        self.root = Path(out_dir)
        path = self.root / CONFIG_NAME
        if not path.is_file():
            raise ManifestError(f"{self.root} is not a crop cache (no {CONFIG_NAME}); build it first")
        self.config = json.loads(path.read_text(encoding="utf-8"))
        if preprocess is not None and self.config != json.loads(json.dumps(cache_config(preprocess))):
            diffs = _differences(self.config, json.loads(json.dumps(cache_config(preprocess))))
            raise FeatureExtractionError(f"crop cache {self.root} was built with other settings: {'; '.join(diffs)}")
        self.rows: list[tuple[str, Path, int, str]] = []
        seen: set[str] = set()
        for shard in sorted(self.root.glob("crops.rank*of*.tsv")):
            for line in shard.read_text(encoding="utf-8").splitlines()[1:]:
                clip_id, rel, n_clips, text = line.split("\t", 3)
                if clip_id not in seen:
                    seen.add(clip_id)
                    self.rows.append((clip_id, self.root / rel, int(n_clips), text))
        if not self.rows:
            raise ManifestError(f"crop cache {self.root} holds no videos")
        pre = self.config["preprocess"]
        self.mean, self.std = pre.get("mean", 0.45), pre.get("std", 0.225)

    def __len__(self) -> int:
        return len(self.rows)

    def video(self, index: int) -> CachedVideo:
        clip_id, path, _, text = self.rows[index]
        data = torch.load(path, map_location="cpu", weights_only=True)
        return CachedVideo(clip_id, text, data["frames"], data["clips"], list(data["paddings"]))

    def clip_tensor(self, index: int) -> tuple[torch.Tensor, list[int]]:
        """(normalised clips [n_clips, 3, T, S, S], paddings) of video ``index``: what inference feeds SignHiera."""
        video = self.video(index)
        crops = {i: video.frames[i].numpy() for i in range(len(video.frames))}
        return build_clips(crops, [c.numpy() for c in video.clips], self.mean, self.std), video.paddings


@dataclass
class ClipBatch:
    """The clips of a batch of videos, uint8 until :meth:`normalised` (4x less to move and to hold)."""

    ids: list[str]
    texts: list[str]
    clips: Tensor  # uint8 [C, T, S, S, 3]: every clip of every video, video after video
    paddings: list[int]  # per clip
    clips_per_video: list[int]  # sums to C

    def to(self, device: torch.device | str) -> ClipBatch:
        return dataclasses.replace(self, clips=self.clips.to(device))

    def normalised(self, mean: float, std: float) -> Tensor:
        """Float clips [C, 3, T, S, S], normalised as inference normalises them (slt.video.clips.build_clips)."""
        return self.clips.permute(0, 4, 1, 2, 3).float().div_(255.0).sub_(mean).div_(std)

    def __len__(self) -> int:
        return len(self.ids)


class CropClipsDataset(Dataset):
    """Videos of a crop cache as (id, text, uint8 clips [n, T, S, S, 3], paddings); optional temporal jitter.

    ``jitter`` (sampled frames, >= 0) shifts each unpadded clip's window by a random offset in [-jitter, jitter],
    kept inside the video; padded clips (the video's tail) stay as cut. The offsets depend only on
    (seed, epoch, index), so a resumed run sees the same augmentation (call :meth:`set_epoch`).
    """

    def __init__(self, cache: CropCache, jitter: int = 0, seed: int = 0):
        if jitter < 0:
            raise FeatureExtractionError(f"temporal jitter must be >= 0 frames, got {jitter}")
        self.cache, self.jitter, self.seed, self.epoch = cache, jitter, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache)

    def positions(self, index: int, video: CachedVideo) -> Tensor:
        """Frame positions [n_clips, T] of each clip after jitter."""
        clips = video.clips.clone()
        if self.jitter:
            generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
            offsets = torch.randint(-self.jitter, self.jitter + 1, (len(clips),), generator=generator)
            last = len(video.frames) - 1
            for c, padding in enumerate(video.paddings):
                if padding == 0:
                    low, high = -int(clips[c].min()), last - int(clips[c].max())
                    clips[c] += int(offsets[c].clamp(low, high))
        return clips

    def __getitem__(self, index: int) -> tuple[str, str, Tensor, list[int]]:
        video = self.cache.video(index)
        return video.id, video.translation, video.frames[self.positions(index, video)], video.paddings


def collate_clips(items: list[tuple[str, str, Tensor, list[int]]]) -> ClipBatch:
    """Concatenate the videos' clips into one uint8 tensor; ``clips_per_video`` splits the features again."""
    return ClipBatch(ids=[i[0] for i in items], texts=[i[1] for i in items],
                     clips=torch.cat([i[2] for i in items]), paddings=[p for i in items for p in i[3]],
                     clips_per_video=[len(i[3]) for i in items])
