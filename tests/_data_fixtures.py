"""Real test videos for the data tests: scikit-image's astronaut face, written with cv2.VideoWriter."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np


@lru_cache(maxsize=1)
def astronaut_bgr() -> np.ndarray:
    """The real astronaut photo that ships with scikit-image (dlib's HOG detector finds her face)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "scikit-image is a test dependency"
    path = Path(spec.submodule_search_locations[0]) / "data" / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return image


def make_face_video(path: Path, n_frames: int, size: int = 256, fps: float = 25.0, seed: int = 0) -> Path:
    """Write an mp4 of the astronaut photo (scaled to size x size) drifting by a few pixels per frame."""
    base = cv2.resize(astronaut_bgr(), (size, size), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    rng = np.random.default_rng(seed)
    for index in range(n_frames):
        shift = np.float32([[1, 0, (index % 7) - 3], [0, 1, int(rng.integers(-2, 3))]])
        writer.write(cv2.warpAffine(base, shift, (size, size), borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def make_numbered_video(path: Path, n_frames: int, fps: float = 25.0, size: int = 64) -> Path:
    """Write flat frames whose brightness is a scrambled function of the index, so a cut can be located."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    assert writer.isOpened()
    for index in range(n_frames):
        writer.write(np.full((size, size, 3), 30 + (index * 37) % 190, np.uint8))
    writer.release()
    return path


def read_brightness(path: Path) -> list[float]:
    """Mean brightness of every frame of a video (decoded with OpenCV)."""
    capture = cv2.VideoCapture(str(path))
    values = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        values.append(float(frame.mean()))
    capture.release()
    return values


def make_broken_video(path: Path) -> Path:
    """A file named like a video that holds no decodable stream (truncated mp4 header + junk)."""
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path
