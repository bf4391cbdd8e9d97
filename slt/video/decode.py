"""Streaming video decoding with OpenCV: probe a file and yield its frames one at a time.

Nothing here keeps more than one full-resolution frame alive, so hour-long videos decode in constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slt.errors import Cancelled, EmptyVideoError, VideoReadError

# Used when the container reports no usable frame rate (some webm/raw streams do); flagged in VideoInfo.
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (frame count verified by decoding where it looked wrong)."""

    path: str
    fps: float
    n_frames: int
    width: int
    height: int
    duration_s: float
    fps_from_container: bool = True  # False when the container had no frame rate and DEFAULT_FPS was assumed
    reported_frames: int = 0  # CAP_PROP_FRAME_COUNT as the container stated it (may be 0 or wrong)


def _open(path: str | Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"Video not found: {path}")
    if not path.is_file():
        raise VideoReadError(f"Not a file: {path}")
    if path.stat().st_size == 0:
        raise EmptyVideoError(f"The video file is empty (0 bytes): {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        container = _sniff_container(path)
        if container is not None:
            raise VideoReadError(
                f"{path} is a {container} file, but OpenCV finds no decodable video stream in it "
                "(it has no frames, only audio, or a codec OpenCV lacks; try `ffmpeg -i in out.mp4`)."
            )
        raise VideoReadError(
            f"OpenCV cannot open {path} as a video: the file is not a video or its format/codec is unsupported "
            "(try converting it to H.264 MP4, e.g. `ffmpeg -i in.xxx out.mp4`)."
        )
    return capture


def _sniff_container(path: Path) -> str | None:
    """Name the container from its first bytes, to tell "empty/unsupported video" from "not a video at all"."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"FLV":
        return "FLV"
    return None


def _container_fps(capture: cv2.VideoCapture) -> tuple[float, bool]:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    # Some containers report 0, NaN or absurd rates (e.g. 90000 time-base ticks); those are not frame rates.
    if not math.isfinite(fps) or fps <= 0.0 or fps > 1000.0:
        return DEFAULT_FPS, False
    return fps, True


def _count_by_grabbing(capture: cv2.VideoCapture, already: int = 0) -> int:
    """Count the remaining frames without converting them to images (grab() skips the colour conversion)."""
    count = already
    while capture.grab():
        count += 1
    return count


def probe_video(path: str | Path, verify_count: bool = True) -> VideoInfo:
    """Read a video's frame rate, frame count, size and duration.

    The frame count is checked by seeking to the last reported frame (and one past it); when the container's
    count is 0 or wrong, the frames are counted by decoding. `verify_count=False` skips that check (for callers
    that decode every frame anyway). Raises VideoReadError (missing, not a video,
    undecodable) or EmptyVideoError (opens but yields no frame).
    """
    capture = _open(path)
    try:
        fps, fps_known = _container_fps(capture)
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = capture.read()
        if not ok or first is None:
            raise EmptyVideoError(f"The video {path} contains no decodable frames.")
        height, width = first.shape[:2]
        n_frames = _verified_frame_count(capture, reported) if verify_count else max(reported, 1)
    finally:
        capture.release()
    return VideoInfo(str(path), fps, n_frames, width, height, n_frames / fps, fps_known, max(reported, 0))


def _verified_frame_count(capture: cv2.VideoCapture, reported: int) -> int:
    """Trust the container's count only if frame `reported-1` decodes and nothing follows it (cheap seek check)."""
    if reported > 1:
        capture.set(cv2.CAP_PROP_POS_FRAMES, reported - 1)
        if capture.grab():
            if not capture.grab():
                return reported
            return _count_by_grabbing(capture, already=reported + 1)
    # Count is 0/1 or over-reported: rewind (position is after frame 0) and count every frame.
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return _count_by_grabbing(capture)


def has_frame(path: str | Path, index: int) -> bool:
    """Whether frame `index` exists and decodes (one seek, no full decode); checks a container's length claim."""
    capture = _open(path)
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        return bool(capture.grab())
    finally:
        capture.release()


def iter_frames(path: str | Path, max_frames: int | None = None,
                should_stop: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, BGR frame) for every decodable frame, one at a time, in order.

    Stops quietly after `max_frames` frames (if given); the caller decides what "too long" means.
    `should_stop` is asked before each frame is decoded; when it returns True, decoding ends with
    :class:`~slt.errors.Cancelled` (a cancelled request stops burning CPU within one frame).
    """
    capture = _open(path)
    try:
        index = 0
        while max_frames is None or index < max_frames:
            if should_stop is not None and should_stop():
                raise Cancelled(f"stopped on request while decoding frame {index} of {Path(path).name}")
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            yield index, frame
            index += 1
    finally:
        capture.release()
