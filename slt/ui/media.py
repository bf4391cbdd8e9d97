"""Videos a browser can play: dataset clips written as MPEG-4 Part 2 ('mp4v') play in no browser, so the app shows
a VP8 WebM copy of them (transcoded once with OpenCV, frame by frame, into a cache folder)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import cv2

from slt.errors import VideoReadError, VideoWriteError

PLAYABLE_CODECS = {"avc1", "h264", "H264", "vp80", "VP80", "vp09", "VP90", "av01", "AV01"}
_LOCK = threading.Lock()


def fourcc_of(path: Path) -> str:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoReadError(f"{path.name} cannot be opened as a video")
        code = int(capture.get(cv2.CAP_PROP_FOURCC))
    finally:
        capture.release()
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))


def browser_playable(path: Path, cache_dir: Path) -> Path:
    """`path` itself when browsers can play its codec, else a cached VP8 WebM copy of it."""
    path = Path(path)
    if path.suffix.lower() == ".webm" or fourcc_of(path) in PLAYABLE_CODECS:
        return path
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir / f"{path.stem}-{key}.webm"
    with _LOCK:  # two clicks on the same row must not write the same file twice
        if not target.exists():
            _transcode(path, target)
    return target


def _transcode(source: Path, target: Path) -> None:
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part.webm")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"VP80"), fps, size)
    try:
        if not writer.isOpened():
            raise VideoWriteError(f"cannot write a WebM copy of {source.name} (OpenCV lacks the VP8 encoder)")
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            writer.write(frame)
    finally:
        writer.release()
        capture.release()
    os.replace(partial, target)
