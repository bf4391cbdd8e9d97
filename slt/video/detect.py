"""dlib face detection on downscaled frames, with boxes mapped back to source pixels.

Each detector is loaded once per process (the CNN model file is ~700 kB but its construction is not free,
and the app/CLI call it for every video).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from slt.errors import PreprocessConfigError, VideoReadError

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), x1/y1 exclusive, source pixels
DETECTORS = ("cnn", "hog")
CNN_MODEL_NAME = "mmod_human_face_detector.dat"


def cnn_model_path() -> Path:
    """Path of dlib's CNN face detector shipped by `face-recognition-models` (located without importing it,
    because importing it pulls in pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VideoReadError(
            "The CNN face detector needs the package face-recognition-models "
            "(pip install face-recognition-models==0.3.0); or use the HOG detector (detector='hog')."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / CNN_MODEL_NAME
    if not path.is_file():
        raise VideoReadError(f"The CNN face detector model is missing: {path} (reinstall face-recognition-models).")
    return path


_load_lock = threading.Lock()
# A dlib CNN keeps its activations inside the network object, so one cached detector must not run in two
# threads at once (the app serves several requests); one lock per detector.
_run_locks = {name: threading.Lock() for name in DETECTORS}


@functools.cache
def _load_detector(name: str):
    import dlib  # heavy native module: import only when detection actually runs

    if name == "cnn":
        return dlib.cnn_face_detection_model_v1(str(cnn_model_path()))
    return dlib.get_frontal_face_detector()


def get_detector(name: str) -> Callable[[np.ndarray, int], list[Box]]:
    """Return a function (RGB uint8 image, upsample) -> face boxes for detector "cnn" or "hog" (cached)."""
    if name not in DETECTORS:
        raise PreprocessConfigError(f"Unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}.")
    with _load_lock:  # functools.cache does not stop two threads from building the same detector at once
        detector = _load_detector(name)

    def detect(image: np.ndarray, upsample: int) -> list[Box]:
        with _run_locks[name]:
            found = detector(image, upsample)
        rects = [d.rect for d in found] if name == "cnn" else list(found)
        return [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]

    return detect


def downscale(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """Shrink a frame so its longest side is at most `max_side`; return it with the x and y factors
    (small = source * factor). Frames already small enough are returned unchanged (factor 1)."""
    height, width = frame.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return frame, 1.0, 1.0
    new_w = max(1, round(width * max_side / longest))
    new_h = max(1, round(height * max_side / longest))
    small = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, new_w / width, new_h / height


def map_back(boxes: list[Box], fx: float, fy: float) -> list[Box]:
    """Map boxes found on a downscaled frame to source-pixel coordinates."""
    return [(x0 / fx, y0 / fy, x1 / fx, y1 / fy) for x0, y0, x1, y1 in boxes]


def detect_faces(rgb_small: np.ndarray, fx: float, fy: float, detector: str, upsample: int) -> list[Box]:
    """Detect faces on an already downscaled RGB frame and return their boxes in source pixels."""
    return map_back(get_detector(detector)(np.ascontiguousarray(rgb_small), upsample), fx, fy)
