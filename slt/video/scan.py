"""Pass 1 over a video: decode every frame (streaming), detect faces on every `detect_every`-th frame at
reduced size, and measure motion around faces on frames with several faces."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from slt.errors import VideoTooLongError
from slt.video.decode import iter_frames
from slt.video.detect import detect_faces, downscale
from slt.video.motion import box_motion, flow_magnitude
from slt.video.signer_box import Detection


@dataclass
class ScanResult:
    """What pass 1 learnt: the true frame count, the frame size, and the faces on each sampled frame."""

    n_frames: int
    width: int
    height: int
    sampled: list[int] = field(default_factory=list)  # indices of the frames that went through detection
    faces: list[list[Detection]] = field(default_factory=list)  # one list per sampled frame
    decode_s: float = 0.0
    detect_s: float = 0.0
    motion_s: float = 0.0

    @property
    def frames_with_face(self) -> int:
        return sum(1 for f in self.faces if f)


def scan_video(
    path: str | Path,
    *,
    detector: str,
    detect_every: int,
    detect_max_side: int,
    upsample: int,
    max_frames: int | None = None,
    max_duration_s: float | None = None,
    fps: float = 25.0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    """Decode the video once, detecting faces on frames 0, detect_every, 2*detect_every, ...

    `max_frames` stops the scan with VideoTooLongError as soon as the video proves longer than the limit
    (so a container that under-reports its length cannot make us decode forever). `should_stop` is passed to
    :func:`iter_frames` (Cancelled between two frames); `progress` gets the number of frames decoded so far,
    on each frame that goes through the detector.
    """
    result = ScanResult(0, 0, 0)
    pending: tuple[np.ndarray, list[Detection], float, float] | None = None  # multi-face frame awaiting its successor
    start = time.perf_counter()
    limit = None if max_frames is None else max_frames + 1  # decode one extra frame to know the limit was crossed
    for index, frame in iter_frames(path, max_frames=limit, should_stop=should_stop):
        if max_frames is not None and index >= max_frames:
            raise VideoTooLongError(
                f"The video {path} is longer than the limit of {max_duration_s:g} s "
                f"(more than {max_frames} frames at {fps:.2f} fps); trim it or raise max_duration_s."
            )
        result.n_frames = index + 1
        if index == 0:
            result.height, result.width = frame.shape[:2]
        sampled = index % detect_every == 0
        if not sampled and pending is None:
            continue
        small, fx, fy = downscale(frame, detect_max_side)
        if pending is not None:
            t0 = time.perf_counter()
            _measure_motion(pending, small)
            result.motion_s += time.perf_counter() - t0
            pending = None
        if not sampled:
            continue
        if progress is not None:
            progress(index + 1)
        t0 = time.perf_counter()
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        detections = [Detection(index, box) for box in detect_faces(rgb, fx, fy, detector, upsample)]
        result.detect_s += time.perf_counter() - t0
        result.sampled.append(index)
        result.faces.append(detections)
        if len(detections) > 1:  # only several faces need telling apart; single-face videos skip optical flow
            pending = (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), detections, fx, fy)
    result.decode_s = time.perf_counter() - start - result.detect_s - result.motion_s
    return result


def _measure_motion(pending: tuple[np.ndarray, list[Detection], float, float], next_small: np.ndarray) -> None:
    prev_gray, detections, fx, fy = pending
    magnitude = flow_magnitude(prev_gray, cv2.cvtColor(next_small, cv2.COLOR_BGR2GRAY))
    for detection in detections:
        x0, y0, x1, y1 = detection.box
        detection.motion = box_motion(magnitude, (x0 * fx, y0 * fy, x1 * fx, y1 * fy))
