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
    failures.rank<r>of<w>.jsonl  the rows shard r of w could not use (bad videos; rank 0 also lists the rows the
                                 manifest reader skipped, e.g. a missing file, with the manifest's file:line)

Building is resumable (a video whose crops file loads and fits the settings is skipped; files are written
atomically, a damaged one is redone) and shardable: shard r of w takes rows r, r + w, ...; under ``torchrun`` every
process builds its shard (rank and world from slt.runtime, as extract-features), and :class:`CropCache` reads the
union of whatever shard manifests exist. Memory while building: one video's crops at a time per process.

Training reads it through :class:`CropClipsDataset` and :func:`collate_clips`: batches stay uint8 until they
reach the device (a float clip is 4x larger), so a step holds one batch of clips, never a whole video corpus.
Optional temporal jitter moves each unpadded clip's window by a few sampled frames.

    python -m slt crop-cache --manifest M --out DIR --signhiera CKPT [--detector hog] [--workers 2]
    torchrun --nproc_per_node 4 -m slt crop-cache ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from slt.data.extract_state import check_config, write_config
from slt.data.extract_worker import prepared_stream
from slt.data.manifest import read_manifest
from slt.data.safe_ids import safe_id
from slt.errors import FeatureExtractionError, ManifestError
from slt.runtime import dist_info
from slt.utils.io import atomic_save, atomic_write_text
from slt.video import PreprocessConfig, PreprocessedVideo
from slt.video.clips import build_clips

log = logging.getLogger("slt.data")

FORMAT_VERSION = 1
CONFIG_NAME = "crop_cache.json"
_KEYS = ("frames", "clips", "paddings")


class CropCacheError(FeatureExtractionError):
    """A crop cache that cannot be built, reused or read."""


@dataclass(frozen=True)
class CachedVideo:
    """One video from the cache: uint8 crops and how clips are cut from them."""

    id: str
    translation: str
    frames: torch.Tensor  # uint8 [F, S, S, 3], the distinct sampled source frames in time order
    clips: torch.Tensor  # int64 [n_clips, T]: positions into `frames`
    paddings: list[int]  # per clip: T - distinct frames in it


def cache_config(preprocess: PreprocessConfig) -> dict:
    """What a cache is built with; a resume or a reader expecting other settings is refused. Settings that do not
    change the crops (how much memory the scan may use) are left out."""
    return {"format_version": FORMAT_VERSION, "preprocess": preprocess.output_settings()}


def video_record(video: PreprocessedVideo) -> dict:
    """A preprocessed video (``materialize=False``) as the record stored per row (see the module docstring)."""
    sources = sorted(video.crops)
    position = {source: i for i, source in enumerate(sources)}
    frames = torch.from_numpy(np.stack([video.crops[s] for s in sources]))  # [F, S, S, 3] uint8
    clips = torch.tensor([[position[int(i)] for i in clip] for clip in video.clip_indices], dtype=torch.long)
    return {"frames": frames, "clips": clips, "paddings": list(video.paddings)}


def check_record(record: object, preprocess: PreprocessConfig) -> str:
    """'' when a loaded crops file is complete and fits the settings, else what is wrong with it."""
    if not isinstance(record, dict) or set(record) != set(_KEYS):
        return "not a crop record"
    frames, clips, paddings = (record[k] for k in _KEYS)
    size = preprocess.size
    if frames.dtype != torch.uint8 or frames.dim() != 4 or tuple(frames.shape[1:]) != (size, size, 3):
        return f"frames of shape {tuple(frames.shape)} / {frames.dtype}, expected [F, {size}, {size}, 3] uint8"
    if clips.dim() != 2 or clips.shape[0] == 0 or clips.shape[1] != preprocess.clip_frames:
        return f"clips of shape {tuple(clips.shape)}, expected [n_clips, {preprocess.clip_frames}]"
    if len(paddings) != clips.shape[0] or int(clips.min()) < 0 or int(clips.max()) >= frames.shape[0]:
        return "paddings or clip positions do not match the stored frames"
    return ""


def load_record(path: Path, preprocess: PreprocessConfig) -> dict | None:
    """A finished crops file (memory-mapped), or None when it is missing, partial or does not fit the settings."""
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file (e.g. a truncated zip) is simply redone
        return None
    return None if check_record(record, preprocess) else record


def build_crop_cache(manifest_path: str | os.PathLike, out_dir: str | os.PathLike, preprocess: PreprocessConfig,
                     rank: int | None = None, world: int | None = None, *, video_root: str | os.PathLike | None = None,
                     workers: int = 0, stop_after: int | None = None) -> Path:
    """Crop every video of the manifest (this shard's rows) into ``out_dir``; returns the shard's manifest path.

    ``preprocess`` must already be fitted to the SignHiera that will read the crops
    (``slt.video.config.fit_preprocess_to_model``): clip length and image size come from it. ``rank``/``world``
    default to torchrun's (slt.runtime.dist_info). ``workers`` > 0 preprocesses in DataLoader workers (as
    extract-features). ``stop_after`` is a test hook: SIGKILL this process after that many newly written videos.
    """
    info = dist_info()
    rank, world = (info.rank if rank is None else rank), (info.world_size if world is None else world)
    if not 0 <= rank < world:
        raise CropCacheError(f"shard {rank} of {world} does not exist")
    out = Path(out_dir)
    crops_dir = out / "crops"
    config = cache_config(preprocess)
    if not check_config(out, config, CONFIG_NAME, "crops", CropCacheError):
        if any(crops_dir.glob("*.pt")):
            raise CropCacheError(f"{crops_dir} holds crops but {out / CONFIG_NAME} is missing, so they cannot be "
                                 "checked against these settings; use another folder")
        write_config(out, config, CONFIG_NAME)  # every rank writes the same bytes atomically
    crops_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(manifest_path, video_root=video_root)
    # Rows the manifest reader skipped (missing file, empty text...) are failures too, listed once (by rank 0).
    failures = [{"id": item.id, "path": "", "error_type": "ManifestError", "message": str(item)}
                for item in (manifest.report.skipped if rank == 0 else [])]
    lines: dict[int, str] = {}
    todo = []
    for index in range(rank, len(manifest.rows), world):
        row = manifest.rows[index]
        target = crops_dir / f"{safe_id(row.id)}.pt"
        record = load_record(target, preprocess)
        if record is None:
            todo.append((index, row.video_path))
        else:
            lines[index] = f"{row.id}\tcrops/{target.name}\t{len(record['paddings'])}\t{row.translation}\n"
    written = 0
    for prepared in prepared_stream(todo, preprocess, workers):
        row = manifest.rows[prepared.index]
        if prepared.video is None:  # every failure is recorded per video; the build goes on
            failures.append({"id": row.id, "path": str(row.video_path), "error_type": prepared.error_type,
                             "message": prepared.message})
            continue
        target = crops_dir / f"{safe_id(row.id)}.pt"
        record = video_record(prepared.video)
        atomic_save(record, target)
        lines[prepared.index] = f"{row.id}\tcrops/{target.name}\t{len(record['paddings'])}\t{row.translation}\n"
        written += 1
        if stop_after is not None and written >= stop_after:
            os.kill(os.getpid(), signal.SIGKILL)  # simulate a crash mid-build (tests of resume)
    shard = out / f"crops.rank{rank}of{world}.tsv"
    atomic_write_text(shard, "id\tpath\tn_clips\ttranslation\n" + "".join(lines[i] for i in sorted(lines)))
    atomic_write_text(out / f"failures.rank{rank}of{world}.jsonl",
                      "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    log.info("crop cache %s: shard %d/%d: %d videos (%d new), %d failed", out, rank, world, len(lines), written,
             len(failures))
    return shard


class CropCache:
    """Read a crop cache (every shard manifest found); ``preprocess`` (when given) must be what it was built with."""

    def __init__(self, out_dir: str | os.PathLike, preprocess: PreprocessConfig | None = None):
        self.root = Path(out_dir)
        path = self.root / CONFIG_NAME
        if not path.is_file():
            raise ManifestError(f"{self.root} is not a crop cache (no {CONFIG_NAME}); build it first")
        if preprocess is not None:
            check_config(self.root, cache_config(preprocess), CONFIG_NAME, "crops", CropCacheError)
        try:
            self.config = json.loads(path.read_text(encoding="utf-8"))
            self.preprocess = PreprocessConfig(**self.config["preprocess"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CropCacheError(f"{path} is unreadable ({error}); rebuild the crop cache") from error
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
        self.mean, self.std = self.preprocess.mean, self.preprocess.std

    def __len__(self) -> int:
        return len(self.rows)

    def video(self, index: int) -> CachedVideo:
        """Row ``index``; its file is memory-mapped, so only the frames used are read."""
        clip_id, path, _, text = self.rows[index]
        data = load_record(path, self.preprocess)
        if data is None:
            raise CropCacheError(f"{path} (row {clip_id!r}) is missing or damaged; build the cache again to redo it")
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `python -m slt crop-cache` (extract-features' preprocessing flags, same meaning)."""
    parser.add_argument("--manifest", required=True, type=Path, help="TSV manifest (id, video_path, n_frames, "
                        "translation) or ssvp_slt's headerless TSV")
    parser.add_argument("--out", required=True, type=Path, help="cache folder (resumed when it exists)")
    parser.add_argument("--signhiera", required=True, help="SignHiera checkpoint whose clip length and image size "
                        "the crops are cut for, or a model set's: 'official' / 'demo'")
    parser.add_argument("--video-root", type=Path, default=None, help="folder that relative video paths are in")
    parser.add_argument("--detector", choices=("cnn", "dlib-cnn", "hog"), default="cnn", help="face detector")
    parser.add_argument("--detect-every", type=int, default=16, help="run the face detector on every n-th frame")
    parser.add_argument("--center-crop-fallback", action="store_true",
                        help="centre crop instead of failing a clip where no signer is found")
    parser.add_argument("--max-duration", type=float, default=None, help="fail clips longer than this (seconds)")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing worker processes (0: none)")
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # test hook


def run(args: argparse.Namespace) -> int:
    """CLI entry: preprocessing fitted to the checkpoint exactly as extract-features fits it, then the build."""
    # Imported here for start-up time: only the CLI needs the model loader.
    from slt.data.extract import ExtractOptions, preprocess_config_for, resolve_signhiera
    from slt.models import load_signhiera

    if args.workers < 0:
        raise CropCacheError(f"--workers must be 0 or more, got {args.workers}")
    options = ExtractOptions(signhiera=resolve_signhiera(args.signhiera), detector=args.detector,
                             detect_every=args.detect_every, center_crop_fallback=args.center_crop_fallback,
                             max_duration_s=args.max_duration)
    preprocess = preprocess_config_for(load_signhiera(options.signhiera, "cpu"), options)
    shard = build_crop_cache(args.manifest, args.out, preprocess, video_root=args.video_root, workers=args.workers,
                             stop_after=args.stop_after)
    print(f"{shard}: written (failures next to it)", file=sys.stderr)
    return 0
