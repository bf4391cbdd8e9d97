"""`python -m slt extract-features`: preprocessing + SignHiera over a manifest, one [N, D] tensor per clip.

Resumable (finished clips are verified and skipped), failure-tolerant (failures.jsonl), and sharded under
torchrun: rank r takes manifest rows i % world == r, and rank 0 merges every rank's list into one
features.tsv after a barrier. Preprocessing runs in DataLoader workers while the model runs in the main process.

    python -m slt extract-features --manifest M --out DIR --signhiera CKPT [--detector hog] [--workers 2]
    torchrun --nproc_per_node 2 -m slt extract-features ...
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import torch
from tqdm import tqdm

from slt.data.extract_state import (
    Done,
    Failure,
    check_config,
    extraction_config,
    finished_steps,
    merge_shards,
    npy_matches,
    remove_stale_temp_files,
    save_features,
    save_npy,
    write_config,
    write_shard,
)
from slt.data.extract_worker import Prepared, prepared_stream
from slt.data.manifest import Manifest, ManifestRow, read_manifest
from slt.data.safe_ids import safe_id
from slt.errors import DeviceError, FeatureExtractionError
from slt.models import SignHiera, load_signhiera
from slt.modelset import OFFICIAL_SIGNHIERA, demo_dir, official_model_set, read_demo_bundle
from slt.runtime import DistInfo, barrier, cleanup_distributed, pick_device, setup_distributed
from slt.video import PreprocessConfig, default_preprocess, fit_preprocess_to_model, join_clip_features


@dataclass
class ExtractOptions:
    """Settings of one extraction run (the CLI flags)."""

    signhiera: Path
    video_root: Path | None = None
    detector: str = "cnn"
    detect_every: int = 16
    center_crop_fallback: bool = False
    max_duration_s: float | None = None
    batch_size: int = 4  # clips per forward pass (clips of one video only)
    workers: int = 2  # preprocessing processes; 0 = preprocess in the main process (no overlap)
    device: str = "auto"
    npy: bool = False
    threads: int = 1  # torch threads of the model; fixed so results do not depend on the machine
    stop_after: int | None = None  # test hook: SIGKILL this process after N newly written clips


@dataclass
class ExtractSummary:
    rank: int
    world_size: int
    written: int  # clips extracted in this run (this rank)
    reused: int  # clips found finished on disk (this rank)
    failed: int  # clips that failed in this run (this rank)
    seconds: float
    features_manifest: Path | None  # set on rank 0 once merged

    @property
    def clips_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def preprocess_config_for(model: SignHiera, options: ExtractOptions, device=None) -> PreprocessConfig:
    """Preprocessing that feeds this model, fitted exactly as the translation engine fits it on `device` (so
    features made for training match those seen at inference there): the detector's settings for the device (the
    CNN at full resolution on CUDA, on 512-px copies elsewhere), the model's clip length and image size, 50 % clip
    overlap."""
    chosen = replace(default_preprocess(options.detector, device or "cpu"), detect_every=options.detect_every,
                     center_crop_fallback=options.center_crop_fallback, max_duration_s=options.max_duration_s)
    return fit_preprocess_to_model(chosen, model.config)


def _features(model: SignHiera, prepared: Prepared, batch_size: int, device: torch.device) -> torch.Tensor:
    parts = []
    with torch.inference_mode():
        for chunk, paddings in prepared.video.iter_clip_batches(batch_size):
            # Padded frames are masked inside the model, as the released SignHiera was trained.
            parts.append(model.extract_features(chunk.to(device), paddings).float().cpu())
    return join_clip_features(torch.cat(parts), prepared.video.paddings)


def _manifest_failures(manifest: Manifest) -> list[Failure]:
    # Rows the manifest reader skipped are failures too: nothing leaves the run unaccounted for.
    return [Failure(-1, item.id, "ManifestError", str(item)) for item in manifest.report.skipped]


def _check_unique_files(manifest: Manifest) -> None:
    # safe_id appends a hash to mapped ids, so this only fires if an id literally equals another's mapped name.
    owner: dict[str, str] = {}
    for row in manifest.rows:
        name = safe_id(row.id)
        if owner.setdefault(name, row.id) != row.id:
            raise FeatureExtractionError(f"ids {owner[name]!r} and {row.id!r} map to the same file name {name!r}; "
                                         "rename one of them in the manifest")


def extract_features(manifest_path: str | os.PathLike, out_dir: str | os.PathLike,
                     options: ExtractOptions) -> ExtractSummary:
    """Extract features for this process's share of the manifest; on rank 0 merge all shares at the end.

    Under torchrun (RANK/WORLD_SIZE set) rank r takes rows i % world == r; otherwise one process does all.
    """
    started = time.perf_counter()
    try:
        device = pick_device(options.device)
    except DeviceError as error:
        raise FeatureExtractionError(f"--device: {error}") from error
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    # Ranks finish their shards at different times; a long timeout keeps the final barrier from firing early.
    info = setup_distributed(device, timeout=timedelta(hours=12))
    try:
        return _extract(Path(manifest_path), Path(out_dir), options, device, info, started)
    finally:
        torch.set_num_threads(threads_before)  # callers in the same process keep their setting
        if info.enabled:
            cleanup_distributed()


def _extract(manifest_path: Path, out_dir: Path, options: ExtractOptions, device: torch.device, info: DistInfo,
             started: float) -> ExtractSummary:
    manifest = read_manifest(manifest_path, video_root=options.video_root)
    if not manifest.rows:
        raise FeatureExtractionError(f"no usable rows in {manifest_path}:\n{manifest.report.summary()}")
    _check_unique_files(manifest)
    model = load_signhiera(options.signhiera, device)
    preprocess = preprocess_config_for(model, options, device)
    feats_dir = out_dir / "feats"
    _prepare_out_dir(out_dir, extraction_config(Path(options.signhiera), preprocess, model.config.feature_dim), info)

    mine = [(i, row) for i, row in enumerate(manifest.rows) if i % info.world_size == info.rank]
    done, todo = _split_finished(mine, feats_dir, model.config.feature_dim, options.npy)
    reused = len(done)
    progress = tqdm(total=len(mine), initial=reused, desc=f"extract rank {info.rank}/{info.world_size}", unit="clip",
                    position=info.rank, file=sys.stderr, dynamic_ncols=True)
    written, failed = _extract_pending(todo, model, preprocess, feats_dir, options, device, done, progress)
    progress.close()

    write_shard(out_dir, info.rank, info.world_size, done, failed)
    barrier(info)
    features_path = None
    if info.rank == 0:
        features_path, n_done, n_failed = merge_shards(out_dir, info.world_size, _manifest_failures(manifest))
        print(f"{features_path}: {n_done} clips with features, {n_failed} failed or skipped "
              f"(see {out_dir / 'failures.jsonl'})", file=sys.stderr)
    barrier(info)  # no rank exits (and tears down the group) before the merge is written
    return ExtractSummary(info.rank, info.world_size, written, reused, len(failed), time.perf_counter() - started,
                          features_path)


def _prepare_out_dir(out_dir: Path, config: dict, info: DistInfo) -> None:
    """Refuse a folder made with another config (every rank, before anything is written); rank 0 sets it up."""
    feats_dir = out_dir / "feats"
    has_config = check_config(out_dir, config)
    if not has_config and any(feats_dir.glob("*.pt")):
        raise FeatureExtractionError(f"{feats_dir} holds features but {out_dir / 'extract_config.json'} is missing, "
                                     "so they cannot be checked against this model; use another --out folder")
    if info.rank == 0:
        feats_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(feats_dir)
        if not has_config:
            write_config(out_dir, config)
    barrier(info)


def _split_finished(mine: list[tuple[int, ManifestRow]], feats_dir: Path, feature_dim: int,
                    npy: bool) -> tuple[list[Done], list[tuple[int, ManifestRow]]]:
    """Resume: clips whose .pt loads with the right shape are done; missing, partial or corrupt ones are to do."""
    done: list[Done] = []
    todo: list[tuple[int, ManifestRow]] = []
    for index, row in mine:
        pt_path = feats_dir / f"{safe_id(row.id)}.pt"
        n_steps = finished_steps(pt_path, feature_dim)
        if n_steps is None:
            todo.append((index, row))
            continue
        if npy and not npy_matches(pt_path.with_suffix(".npy"), n_steps, feature_dim):
            save_npy(torch.load(pt_path, map_location="cpu", weights_only=True), pt_path.with_suffix(".npy"))
        done.append(Done(index, row.id, f"feats/{pt_path.name}", n_steps, row.translation))
    return done, todo


def _extract_pending(todo: list[tuple[int, ManifestRow]], model: SignHiera, preprocess: PreprocessConfig,
                     feats_dir: Path, options: ExtractOptions, device: torch.device, done: list[Done],
                     progress: tqdm) -> tuple[int, list[Failure]]:
    """Run the model over videos prepared by the workers; append to `done`, return (written, failures)."""
    rows = dict(todo)
    written = 0
    failed: list[Failure] = []
    for prepared in prepared_stream([(i, row.video_path) for i, row in todo], preprocess, options.workers,
                                    device=device):
        row = rows[prepared.index]
        if prepared.video is not None:
            try:
                features = _features(model, prepared, options.batch_size, device)
                pt_path = feats_dir / f"{safe_id(row.id)}.pt"
                save_features(features, pt_path, options.npy)
                done.append(Done(prepared.index, row.id, f"feats/{pt_path.name}", int(features.shape[0]),
                                 row.translation))
                written += 1
            except Exception as error:  # e.g. out of memory on one long video: record it, keep going
                prepared.error_type, prepared.message = type(error).__name__, str(error) or repr(error)
        if prepared.error_type:
            failed.append(Failure(prepared.index, row.id, prepared.error_type, prepared.message))
            progress.write(f"failed {row.id}: {prepared.error_type}: {prepared.message}")
        progress.update(1)
        if options.stop_after is not None and written >= options.stop_after:
            os.kill(os.getpid(), signal.SIGKILL)  # simulate a crash mid-run (tests of resume)
    return written, failed


def resolve_signhiera(name_or_path: str) -> Path:
    """A checkpoint path, or the SignHiera of a named model set: 'official' (downloaded on first use) or 'demo'
    (which must be built already: this never starts a build)."""
    if name_or_path == "official":
        return official_model_set().resolve_file(OFFICIAL_SIGNHIERA)
    if name_or_path == "demo":
        model_set = read_demo_bundle(demo_dir()).model_set()
        return model_set.resolve_file(model_set.signhiera)
    return Path(name_or_path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `python -m slt extract-features`."""
    parser.add_argument("--manifest", required=True, type=Path, help="TSV manifest (id, video_path, n_frames, "
                        "translation) or ssvp_slt's headerless TSV")
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumed when it exists)")
    parser.add_argument("--signhiera", required=True,
                        help="SignHiera checkpoint (.pth/.pt), or a model set's: 'official' (downloaded on first "
                        "use) or 'demo' (built by `python -m slt demo build`)")
    parser.add_argument("--video-root", type=Path, default=None, help="folder that relative video paths are in "
                        "(default: the manifest's folder)")
    parser.add_argument("--detector", choices=("cnn", "dlib-cnn", "hog"), default="cnn",
                        help="face detector: cnn (dlib's CNN model as released, PyTorch port), dlib-cnn (the same "
                             "boxes via dlib, slow) or hog (faster on CPU, different boxes)")
    parser.add_argument("--detect-every", type=int, default=16, help="run the face detector on every n-th frame")
    parser.add_argument("--center-crop-fallback", action="store_true",
                        help="centre crop instead of failing a clip where no signer is found")
    parser.add_argument("--max-duration", type=float, default=None, help="fail clips longer than this (seconds)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per forward pass (within one video)")
    parser.add_argument("--workers", type=int, default=2,
                        help="preprocessing worker processes (0: in this process; on CUDA that runs the CNN face "
                             "detector on the GPU, workers run it on their CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--npy", action="store_true", help="also write <id>.npy next to each <id>.pt")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (fixed for "
                        "reproducible features)")
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # test hook


def run(args: argparse.Namespace) -> int:
    """CLI entry: run the extraction; failures of single clips are listed in failures.jsonl, not fatal."""
    for name in ("batch_size", "threads"):
        if getattr(args, name) < 1:
            raise FeatureExtractionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.workers < 0:
        raise FeatureExtractionError(f"--workers must be 0 or more, got {args.workers}")
    options = ExtractOptions(
        signhiera=resolve_signhiera(args.signhiera), video_root=args.video_root, detector=args.detector,
        detect_every=args.detect_every, center_crop_fallback=args.center_crop_fallback,
        max_duration_s=args.max_duration, batch_size=args.batch_size, workers=args.workers, device=args.device,
        npy=args.npy, threads=args.threads, stop_after=args.stop_after,
    )
    summary = extract_features(args.manifest, args.out, options)
    print(f"rank {summary.rank}: {summary.written} extracted, {summary.reused} already done, "
          f"{summary.failed} failed in {summary.seconds:.1f} s", file=sys.stderr)
    return 0
