"""Pass 1 over videos: decode every frame (streaming), detect faces on every `detect_every`-th frame at reduced
size, and measure motion around faces on frames with several faces.

Decoding and detection overlap: a reader thread decodes and downscales the sampled frames into a bounded queue
while this thread runs the detector on whatever frames are ready, several at a time (one batched call shares the
network's passes; on a GPU the detector then waits on the decoder, so pass 1 costs about one decode). The reader
goes through several videos in a row, so a batch may hold frames of more than one video (the engine's
`extract_many`). OpenCV's decoder and torch both release the GIL, so the two threads really run at once.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from slt.errors import Cancelled, VideoTooLongError
from slt.video.decode import iter_frames
from slt.video.detect import device_name, downscale, get_detector, map_back
from slt.video.motion import box_motion, flow_magnitude
from slt.video.signer_box import Detection

# Optical flow (multi-face videos only) runs on frames at most this large, whatever size the detector sees.
MOTION_MAX_SIDE = 512
# Pixels of detector input per batched call: bounds the pyramid's memory (~100 bytes per input pixel at
# upsample 1) while letting frames share forward passes. About 8 frames of 512x288 on a CPU, 16 of 720p on a GPU.
BATCH_PIXELS = {"cpu": 8 * 512 * 288, "cuda": 16 * 1280 * 720}


@dataclass
class ScanResult:
    """What pass 1 learnt: the true frame count, the frame size, and the faces on each sampled frame."""

    n_frames: int
    width: int
    height: int
    sampled: list[int] = field(default_factory=list)  # indices of the frames that went through detection
    faces: list[list[Detection]] = field(default_factory=list)  # one list per sampled frame
    # Full-resolution BGR frames the reader kept for cropping (ScanJob.keep), so pass 2 need not decode again;
    # None when the job kept none or the frame buffer's budget ran out (then pass 2 decodes).
    frames: dict[int, np.ndarray] | None = field(default=None, repr=False)
    decode_s: float = 0.0  # reader thread: decoding + downscaling (overlaps detection)
    detect_s: float = 0.0  # this video's share of the batched detector calls
    motion_s: float = 0.0
    wall_s: float = 0.0  # from the start of the scan until this video's result was complete

    @property
    def frames_with_face(self) -> int:
        return sum(1 for f in self.faces if f)


@dataclass(frozen=True)
class ScanJob:
    """One video to scan; `max_frames` stops it with VideoTooLongError once it proves longer than that.

    `keep`: indices of frames to keep at full resolution for cropping (the frames the clips may sample); the
    last decoded frame is kept as well (clips past the end repeat it). Kept only while the scan's frame buffer
    has room (`scan_videos(buffer=...)`)."""

    path: Path
    max_frames: int | None = None
    max_duration_s: float | None = None
    fps: float = 25.0
    keep: frozenset[int] = frozenset()


@dataclass
class _Sample:
    """A sampled frame as the reader hands it over."""

    job: int
    index: int
    rgb: np.ndarray  # what the detector sees: RGB, longest side <= detect_max_side
    fx: float  # detector-size = source * fx
    fy: float
    gray: np.ndarray  # grey, longest side <= MOTION_MAX_SIDE, for optical flow if the frame has several faces
    mx: float
    my: float
    next_gray: np.ndarray | None = None  # the following frame, same size (None for a video's last frame)


@dataclass
class _End:
    """A video is fully decoded (or failed)."""

    job: int
    n_frames: int = 0
    width: int = 0
    height: int = 0
    decode_s: float = 0.0
    error: BaseException | None = None
    frames: dict[int, np.ndarray] | None = None


class FrameBuffer:
    """The byte budget shared by the frames all jobs of one scan keep (reader thread) and give back (consumer,
    once a video is cropped). A video whose frames do not fit keeps none: its crops are decoded again."""

    def __init__(self, budget: int):
        self.budget = self.free = budget
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if nbytes > self.free:
                return False
            self.free -= nbytes
            return True

    def give_back(self, frames: dict[int, np.ndarray] | None) -> None:
        if frames:
            with self._lock:
                self.free += sum(frame.nbytes for frame in frames.values())


class FramePool:
    """The bytes of full frames all preprocessing calls of a process may keep at once. Each call borrows up to its
    own budget (``PreprocessConfig.frame_buffer_mb``) for as long as it runs, so concurrent calls (several uploads
    in the app) hold at most the pool together; a call that gets less keeps fewer videos' frames and decodes the
    others twice (same crops)."""

    def __init__(self, total: int):
        self.total = self.free = total
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self, nbytes: int) -> Iterator[FrameBuffer]:
        with self._lock:
            got = max(0, min(nbytes, self.free))
            self.free -= got
        try:
            yield FrameBuffer(got)
        finally:  # the whole loan comes back, whatever the frames' owners did with it
            with self._lock:
                self.free += got


# SLT_FRAME_POOL_MB: the process-wide bound (default 1 GB: two 10-s 720p clips at once keep their frames).
FRAME_POOL = FramePool(int(os.environ.get("SLT_FRAME_POOL_MB", "1024")) * 2**20)


class _Stopped(Exception):
    """The consumer went away; the reader thread ends quietly."""


def scan_video(
    path: str | Path,
    *,
    detector: str,
    detect_every: int,
    detect_max_side: int | None,
    upsample: int,
    max_frames: int | None = None,
    max_duration_s: float | None = None,
    fps: float = 25.0,
    device=None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    """Decode the video once, detecting faces on frames 0, detect_every, 2*detect_every, ...

    `max_frames` stops the scan with VideoTooLongError as soon as the video proves longer than the limit
    (so a container that under-reports its length cannot make us decode forever). `should_stop` is passed to
    :func:`iter_frames` (Cancelled between two frames); `progress` gets the number of frames decoded so far,
    each time a sampled frame has been through the detector.
    """
    job = ScanJob(Path(path), max_frames, max_duration_s, fps)
    scans = scan_videos([job], detector=detector, detect_every=detect_every, detect_max_side=detect_max_side,
                        upsample=upsample, device=device, should_stop=should_stop,
                        progress=None if progress is None else lambda _, frames: progress(frames))
    try:
        return next(scans)
    finally:
        scans.close()


def scan_videos(jobs: Sequence[ScanJob], *, detector: str, detect_every: int, detect_max_side: int | None,
                upsample: int, device=None, should_stop: Callable[[], bool] | None = None,
                progress: Callable[[int, int], None] | None = None,
                buffer: FrameBuffer | None = None) -> Iterator[ScanResult]:
    """Scan several videos with one reader thread and shared detector batches; yields one ScanResult per job, in
    order, each as soon as it is complete. A video that fails raises its error when its turn comes (the reader
    stops there). `should_stop` is asked by the reader before every frame and here before each detector batch
    (Cancelled: frames already queued are not detected); `progress(job, frames)`
    is called here (the caller's thread) after each detected frame with that video's frames decoded so far.
    `buffer`: the byte budget for the frames the jobs `keep` (None: keep nothing); the caller gives a video's
    frames back to it once it has cropped them."""
    detect = get_detector(detector, device)
    kind = "cuda" if detector == "cnn" and device_name(device).startswith("cuda") else "cpu"
    budget = BATCH_PIXELS[kind]
    items: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()
    reader = threading.Thread(target=_read_jobs, args=(jobs, detect_every, detect_max_side, items, stop, should_stop,
                                    buffer or FrameBuffer(0)),
                              name="slt-video-reader", daemon=True)
    started = time.perf_counter()
    reader.start()
    results = [ScanResult(0, 0, 0) for _ in jobs]
    ended: dict[int, _End] = {}
    next_out = 0
    batch: list[_Sample] = []
    try:
        while next_out < len(jobs):
            # Block for one item, then take whatever else is ready, up to the batch budget.
            item = items.get()
            pixels = 0
            while True:
                if isinstance(item, _End):
                    ended[item.job] = item
                else:
                    batch.append(item)
                    pixels += item.rgb.shape[0] * item.rgb.shape[1]
                if pixels >= budget or isinstance(item, _End) and item.error is not None:
                    break
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
            if batch:
                if should_stop is not None and should_stop():  # frames still queued are not worth detecting
                    raise Cancelled(f"stopped on request before detecting faces in {jobs[batch[0].job].path.name}")
                _detect_batch(batch, detect, upsample, results)
                if progress is not None:
                    for sample in batch:
                        progress(sample.job, sample.index + 1)
                batch = []
            while next_out in ended:  # every sample of a video precedes its end marker: it is complete
                end = ended.pop(next_out)
                if end.error is not None:
                    raise end.error
                result = results[next_out]
                result.n_frames, result.width, result.height = end.n_frames, end.width, end.height
                result.decode_s = end.decode_s
                result.frames = end.frames
                result.wall_s = time.perf_counter() - started
                yield result
                next_out += 1
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        reader.join()


def _detect_batch(batch: list[_Sample], detect, upsample: int, results: list[ScanResult]) -> None:
    start = time.perf_counter()
    found = detect([sample.rgb for sample in batch], upsample)
    share = (time.perf_counter() - start) / len(batch)
    for sample, boxes in zip(batch, found, strict=True):
        result = results[sample.job]
        result.detect_s += share
        detections = [Detection(sample.index, box) for box in map_back(boxes, sample.fx, sample.fy)]
        result.sampled.append(sample.index)
        result.faces.append(detections)
        if len(detections) > 1 and sample.next_gray is not None:
            # Only several faces need telling apart; single-face videos skip optical flow.
            t0 = time.perf_counter()
            magnitude = flow_magnitude(sample.gray, sample.next_gray)
            for detection in detections:
                x0, y0, x1, y1 = detection.box
                detection.motion = box_motion(magnitude, (x0 * sample.mx, y0 * sample.my,
                                                          x1 * sample.mx, y1 * sample.my))
            result.motion_s += time.perf_counter() - t0


def _read_jobs(jobs: Sequence[ScanJob], detect_every: int, detect_max_side: int | None,
               items: queue.Queue, stop: threading.Event, should_stop: Callable[[], bool] | None,
               buffer: FrameBuffer) -> None:
    """Reader thread: decode each video in turn, hand over sampled frames (with their successor's grey copy)."""

    def put(item) -> None:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    try:
        for position, job in enumerate(jobs):
            try:
                end = _read_one(position, job, detect_every, detect_max_side, put, should_stop, buffer)
            except _Stopped:
                raise
            except Exception as error:  # handed to the consumer, which raises it in the video's turn
                put(_End(position, error=error))
                return
            put(end)
    except _Stopped:
        return


def _read_one(position: int, job: ScanJob, detect_every: int, detect_max_side: int | None, put,
              should_stop: Callable[[], bool] | None, buffer: FrameBuffer) -> _End:
    end = _End(position)
    waiting: _Sample | None = None  # a sampled frame waiting for its successor's grey copy
    # Frames kept for cropping (no copies: OpenCV hands out a new array per frame). `last` is the newest frame,
    # kept apart: the clips repeat the video's last frame, which is only known once decoding ends.
    kept: dict[int, np.ndarray] | None = {} if job.keep else None
    last: tuple[int, np.ndarray] | None = None
    limit = None if job.max_frames is None else job.max_frames + 1  # one extra frame shows the limit was crossed
    motion_side = min(MOTION_MAX_SIDE, detect_max_side or MOTION_MAX_SIDE)
    clock = time.perf_counter()
    for index, frame in iter_frames(job.path, max_frames=limit, should_stop=should_stop):
        if job.max_frames is not None and index >= job.max_frames:
            raise VideoTooLongError(
                f"The video {job.path} is longer than the limit of {job.max_duration_s:g} s "
                f"(more than {job.max_frames} frames at {job.fps:.2f} fps); trim it or raise max_duration_s."
            )
        end.n_frames = index + 1
        if index == 0:
            end.height, end.width = frame.shape[:2]
        if kept is not None:
            if index in job.keep:
                if buffer.take(frame.nbytes):
                    kept[index] = frame
                else:  # over budget: keep nothing of this video (pass 2 decodes its crops)
                    buffer.give_back(kept)
                    kept = None
            last = (index, frame)
        sampled = index % detect_every == 0
        if waiting is None and not sampled:
            continue
        motion_small, mx, my = downscale(frame, motion_side)
        gray = cv2.cvtColor(motion_small, cv2.COLOR_BGR2GRAY)
        if waiting is not None:
            waiting.next_gray = gray
            end.decode_s += time.perf_counter() - clock
            put(waiting)
            clock = time.perf_counter()
            waiting = None
        if sampled:
            if detect_max_side == motion_side:  # the detector's copy is the motion copy (512 px on a CPU)
                small, fx, fy = motion_small, mx, my
            else:
                small, fx, fy = downscale(frame, detect_max_side)
            waiting = _Sample(position, index, cv2.cvtColor(small, cv2.COLOR_BGR2RGB), fx, fy, gray, mx, my)
    end.decode_s += time.perf_counter() - clock
    if waiting is not None:
        put(waiting)
    if kept is not None and last is not None and last[0] not in kept:
        if buffer.take(last[1].nbytes):
            kept[last[0]] = last[1]
        else:
            buffer.give_back(kept)
            kept = None
    end.frames = kept
    return end
