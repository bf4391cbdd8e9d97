"""preprocess_video: file -> normalised 128-frame clips of the signer, in one or two streaming decode passes.

Pass 1 (scan.py) detects faces on every 16th frame at reduced size (decoding in a reader thread overlaps batched
detection) and keeps the full frames the clips will sample while they fit the frame buffer
(`PreprocessConfig.frame_buffer_mb`); the signer box is chosen from the faces; the kept frames are cropped to
224x224 uint8. Pass 2 (a second decode, keeping only the crops) runs only for videos whose frames did not fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from slt.errors import EmptyVideoError, NoSignerError, VideoReadError, VideoTooLongError, VideoTooShortError
from slt.video.clips import build_clips, clip_frame_indices, clip_padding, crop_square
from slt.video.config import PreprocessConfig
from slt.video.decode import VideoInfo, has_frame, iter_frames, probe_video
from slt.video.preview import frame_with_box, make_preview, pick_preview_indices
from slt.video.scan import FRAME_POOL, FrameBuffer, ScanJob, ScanResult, scan_videos
from slt.video.signer_box import IntBox, center_box, choose_face_box, expand_face_box, make_square


@dataclass
class PreprocessedVideo:
    """Model input for one video plus what a person needs to check it.

    With ``materialize=False`` the clips are not built up front: only the distinct sampled crops are kept (uint8,
    each frame once although clips overlap, ~8x smaller than the float clips) and :meth:`iter_clip_batches`
    normalises a few clips at a time, so memory no longer grows with float clips of the whole video.
    """

    clips: torch.Tensor | None  # [n_clips, 3, clip_frames, size, size] float32, normalised; None if not materialised
    paddings: list[int]  # per clip: clip_frames - number of distinct source frames
    box: IntBox  # square signer box (x0, y0, x1, y1) in source pixels; may extend past the frame
    faces_found: int  # sampled frames with at least one face
    frames_sampled: int  # frames that went through the face detector
    used_center_crop: bool
    preview: np.ndarray  # uint8 RGB strip: first frame with the box, then a few of the crops
    info: VideoInfo  # n_frames / duration_s are the decoded counts
    timings: dict[str, float] = field(default_factory=dict)
    box_method: str = "mean"  # "mean", "motion", "largest" (face tubes) or "center"
    clip_indices: list[list[int]] = field(default_factory=list)  # source frame indices of every clip
    crops: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # source index -> uint8 RGB crop
    mean: float = 0.45
    std: float = 0.225
    decode_passes: int = 2  # 1 when the scan kept the sampled frames (they fitted config.frame_buffer_mb)

    @property
    def n_clips(self) -> int:
        return len(self.paddings)

    def iter_clip_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, list[int]]]:
        """(normalised clips [b, 3, T, H, W], their paddings) for consecutive groups of at most `batch_size` clips."""
        for first in range(0, self.n_clips, batch_size):
            part = slice(first, first + batch_size)
            if self.clips is not None:
                yield self.clips[part], self.paddings[part]
            else:
                indices = [np.asarray(i) for i in self.clip_indices[part]]
                yield build_clips(self.crops, indices, self.mean, self.std), self.paddings[part]

    def without_frames(self) -> PreprocessedVideo:
        """The metadata and preview only (what callers keep after the model has run)."""
        return replace(self, clips=None, crops={})


def preprocess_video(path: str | Path, config: PreprocessConfig | None = None,
                     materialize: bool = True, device=None, *, should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[float], None] | None = None) -> PreprocessedVideo:
    """Decode, locate the signer, crop and cut a video into normalised clips for SignHiera.

    ``config`` defaults to ``PreprocessConfig()``. ``materialize=False`` keeps uint8 crops instead of float clips
    (see :class:`PreprocessedVideo`). ``device`` is where the "cnn" face detector runs (None: the CPU); the boxes do
    not depend on it.
    ``should_stop`` is asked before every decoded frame of both passes; True ends the work with
    :class:`~slt.errors.Cancelled`. ``progress`` gets the fraction of this video's preprocessing done (0..1; the
    scan pass is the first 80 %, estimated from the container's frame count), a few times per second of video.

    Raises VideoReadError / EmptyVideoError (missing, not a video, no frames), VideoTooLongError (max_bytes,
    max_duration_s), VideoTooShortError (< min_frames frames), NoSignerError (a face in fewer than
    min_face_fraction of the sampled frames, unless center_crop_fallback).
    """
    videos = preprocess_videos([path], config, materialize, device, should_stop=should_stop, progress=progress)
    try:
        return next(videos)
    finally:
        videos.close()


def preprocess_videos(paths: Sequence[str | Path], config: PreprocessConfig | None = None,
                      materialize: bool = True, device=None, *, should_stop: Callable[[], bool] | None = None,
                      progress: Callable[[float], None] | None = None) -> Iterator[PreprocessedVideo]:
    """:func:`preprocess_video` for several videos, yielded in order: their sampled frames share face-detector
    batches (pass 1 of every video runs first; only ScanResults are kept), then each video's crops are made when
    it is asked for, so memory holds one video's crops at a time. The first failing video raises its error;
    ``progress`` gets the fraction of all the videos' preprocessing done."""
    started = time.perf_counter()
    config = config or PreprocessConfig()
    paths = [Path(p) for p in paths]
    # This call's room for full frames, borrowed from the process's pool until the last video is yielded.
    with FRAME_POOL.borrow(config.frame_buffer_mb * 2**20) as buffer:
        jobs, infos = [], []
        for path in paths:  # size and length limits are checked before anything is decoded
            job, info = _scan_job(path, config, buffer.budget)
            jobs.append(job)
            infos.append(info)
        yield from _preprocess_scanned(paths, jobs, infos, config, materialize, device, should_stop, progress,
                                       buffer, started)


def _preprocess_scanned(paths: list[Path], jobs: list[ScanJob], infos: list[VideoInfo], config: PreprocessConfig,
                        materialize: bool, device, should_stop: Callable[[], bool] | None,
                        progress: Callable[[float], None] | None, buffer: FrameBuffer,
                        started: float) -> Iterator[PreprocessedVideo]:
    report = _Progress(progress, [info.reported_frames for info in infos])
    scans = scan_videos(jobs, detector=config.detector, detect_every=config.detect_every,
                        detect_max_side=config.detect_max_side, upsample=config.upsample, device=device,
                        should_stop=should_stop, progress=report.scanned if progress else None, buffer=buffer)
    try:
        for position, (path, info, scan) in enumerate(zip(paths, infos, scans, strict=True)):
            crop_started = time.perf_counter()
            try:
                video = _finish(path, info, scan, config, materialize, should_stop,
                                (lambda f, k=position: report.cropped(k, f)) if progress else None)
            finally:  # the next videos' frames may use the room
                buffer.give_back(scan.frames)
                scan.frames = None
            # Pass 1 of all videos ran together: each gets its own decode/detect share plus its own pass 2.
            own = scan.decode_s + scan.detect_s + scan.motion_s + time.perf_counter() - crop_started
            video.timings["total"] = time.perf_counter() - started if len(paths) == 1 else own
            yield video
    finally:
        scans.close()  # stops the reader thread if a video failed or the caller stopped early


class _Progress:
    """Per-video fractions (scan: the first 80 %, estimated from the container's frame count, which may be 0 or
    wrong: capped; crops: the rest) -> one fraction for all videos."""

    def __init__(self, progress: Callable[[float], None] | None, reported_frames: list[int]):
        self.progress = progress
        self.totals = [max(1, n) for n in reported_frames]
        self.done = [0.0] * len(reported_frames)

    def _report(self, video: int, fraction: float) -> None:
        self.done[video] = fraction
        if self.progress is not None:
            self.progress(sum(self.done) / len(self.done))

    def scanned(self, video: int, frames: int) -> None:
        self._report(video, 0.8 * min(1.0, frames / self.totals[video]))

    def cropped(self, video: int, fraction: float) -> None:
        self._report(video, 0.8 + 0.2 * fraction)


def _scan_job(path: Path, config: PreprocessConfig, buffer_bytes: int = 0) -> tuple[ScanJob, VideoInfo]:
    """The scan of one video after its limits are checked; it keeps its clips' frames when they fit `buffer_bytes`."""
    _check_size(path, config.max_bytes)
    info = probe_video(path, verify_count=False)
    max_frames = None
    if config.max_duration_s is not None:
        max_frames = int(config.max_duration_s * info.fps + 1e-6)
        # Reject long videos before decoding them, but only once a seek confirms the container's claim
        # (truncated files report more frames than they hold); the scan enforces the limit either way.
        if info.reported_frames > max_frames and has_frame(path, max_frames):
            raise VideoTooLongError(
                f"The video {path} lasts {info.reported_frames / info.fps:.1f} s, longer than the limit of "
                f"{config.max_duration_s:g} s; trim it or raise max_duration_s."
            )
    keep = _frames_to_keep(info, max_frames, config, buffer_bytes)
    return ScanJob(path, max_frames, config.max_duration_s, info.fps, keep), info


def _frames_to_keep(info: VideoInfo, max_frames: int | None, config: PreprocessConfig,
                    buffer_bytes: int) -> frozenset[int]:
    """The frames the clips can sample, for the scan to keep: the clip positions do not depend on the video's
    length (only the clamping of the last clip does, to the last frame, which the scan keeps anyway), so the
    indices for the container's claimed length (plus 2 s, the limit if lower) cover every shorter truth. A video
    longer than its container says misses frames here: it is cropped by a second decode instead, as is one whose
    frames would not fit the buffer."""
    if buffer_bytes == 0:
        return frozenset()
    bound = info.reported_frames + int(2 * info.fps) + 1
    if max_frames is not None:
        bound = min(bound, max_frames)
    indices = clip_frame_indices(bound, info.fps, config.clip_frames, config.sampling_rate, config.target_fps,
                                 config.stride)
    keep = frozenset(np.concatenate(indices).tolist()) if indices else frozenset()
    expected = sum(1 for i in keep if i < info.reported_frames) + 1  # + the last frame
    if expected * info.width * info.height * 3 > buffer_bytes:
        return frozenset()  # a long video would fill the buffer only to drop it: decode twice from the start
    return keep



def _finish(path: Path, info: VideoInfo, scan: ScanResult, config: PreprocessConfig, materialize: bool,
            should_stop: Callable[[], bool] | None, progress: Callable[[float], None] | None) -> PreprocessedVideo:
    """After pass 1: choose the signer box, then pass 2 (crops) and the clips."""
    located = _locate(path, info, scan, config)
    info, box, method, timings = located.info, located.box, located.method, dict(located.timings)
    clip_indices = clip_frame_indices(scan.n_frames, info.fps, config.clip_frames, config.sampling_rate,
                                      config.target_fps, config.stride)
    t0 = time.perf_counter()
    needed = set(np.concatenate(clip_indices).tolist())
    if scan.frames is not None and needed <= scan.frames.keys():  # pass 1 kept them: no second decode
        crops = {i: crop_square(scan.frames[i], box, config.size) for i in sorted(needed)}
        first = frame_with_box(scan.frames[0], box, config.preview_tile)
        if progress is not None:
            progress(1.0)
        decode_passes = 1
    else:
        crops, first = _crop_needed_frames(path, box, clip_indices, config, should_stop, progress)
        decode_passes = 2
    timings["crop"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    clips = build_clips(crops, clip_indices, config.mean, config.std) if materialize else None
    timings["normalise"] = time.perf_counter() - t0
    shown = pick_preview_indices(clip_indices[0], config.preview_frames)
    preview = make_preview([crops[i] for i in shown], config.preview_tile, first)
    return PreprocessedVideo(
        clips=clips,
        paddings=[clip_padding(i) for i in clip_indices],
        box=box,
        faces_found=scan.frames_with_face,
        frames_sampled=len(scan.sampled),
        used_center_crop=method == "center",
        preview=preview,
        info=info,
        timings=timings,
        box_method=method,
        clip_indices=[i.tolist() for i in clip_indices],
        crops={} if materialize else crops,
        mean=config.mean,
        std=config.std,
        decode_passes=decode_passes,
    )


@dataclass
class SignerLocation:
    """Pass 1's answer: the decoded video's info (true frame count), the face scan, and the square signer box."""

    info: VideoInfo
    scan: ScanResult
    box: IntBox
    method: str  # "mean", "motion", "largest" or "center"
    timings: dict[str, float]


def locate_signer(path: str | Path, config: PreprocessConfig | None = None, device=None, *,
                  should_stop: Callable[[], bool] | None = None) -> SignerLocation:
    """Pass 1 only (for callers that crop frames themselves, e.g. captions of a long video): check the limits,
    decode once detecting faces, choose the signer box. Raises what :func:`preprocess_video` raises before
    cropping (unreadable, empty, too long/short, no signer)."""
    config = config or PreprocessConfig()
    path = Path(path)
    job, info = _scan_job(path, config)
    scans = scan_videos([job], detector=config.detector, detect_every=config.detect_every,
                        detect_max_side=config.detect_max_side, upsample=config.upsample, device=device,
                        should_stop=should_stop)
    try:
        scan = next(scans)
    finally:
        scans.close()
    return _locate(path, info, scan, config)


def _locate(path: Path, info: VideoInfo, scan: ScanResult, config: PreprocessConfig) -> SignerLocation:
    if scan.n_frames == 0:
        raise EmptyVideoError(f"The video {path} contains no decodable frames.")
    if scan.n_frames < config.min_frames:
        raise VideoTooShortError(
            f"The video {path} has only {scan.n_frames} decodable frames; at least {config.min_frames} are needed."
        )
    info = replace(info, n_frames=scan.n_frames, duration_s=scan.n_frames / info.fps)
    timings = {"decode": scan.decode_s, "detect": scan.detect_s, "motion": scan.motion_s, "scan": scan.wall_s}
    box, method = _signer_box(scan, config)
    return SignerLocation(info, scan, box, method, timings)


def _check_size(path: Path, max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoReadError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise VideoTooLongError(
            f"The video {path} is {size / 1e6:.1f} MB, larger than the limit of {max_bytes / 1e6:.1f} MB."
        )


def _signer_box(scan: ScanResult, config: PreprocessConfig) -> tuple[IntBox, str]:
    frames_sampled = len(scan.sampled)
    if scan.frames_with_face < config.min_face_fraction * frames_sampled:
        if not config.center_crop_fallback:
            raise NoSignerError(scan.frames_with_face, frames_sampled, config.min_face_fraction)
        return center_box(scan.width, scan.height), "center"
    choice = choose_face_box(scan.faces)
    if choice.face_box is None:  # several faces but none followed through most of the video
        return center_box(scan.width, scan.height), "center"
    return make_square(expand_face_box(choice.face_box)), choice.method


def _crop_needed_frames(path: Path, box: IntBox, clip_indices: list[np.ndarray], config: PreprocessConfig,
                        should_stop: Callable[[], bool] | None = None,
                        progress: Callable[[float], None] | None = None):
    """Pass 2: decode again, keep only the sampled frames, each as a size x size uint8 RGB crop; `progress` gets the
    fraction of this pass done."""
    needed = set(np.concatenate(clip_indices).tolist())
    last = max(needed)
    crops: dict[int, np.ndarray] = {}
    first = None
    for index, frame in iter_frames(path, max_frames=last + 1, should_stop=should_stop):
        if index == 0:
            first = frame_with_box(frame, box, config.preview_tile)
        if progress is not None and index % config.detect_every == 0:
            progress(index / (last + 1))
        if index in needed:
            crops[index] = crop_square(frame, box, config.size)
    missing = needed - crops.keys()
    if missing:  # the file changed or decodes differently the second time
        raise VideoReadError(
            f"The video {path} could not be decoded consistently: frame {min(missing)} vanished on re-read.")
    return crops, first
