"""Face detection on downscaled frames, batched, with boxes mapped back to source pixels.

Detectors:
- ``"cnn"``: dlib's CNN face detector (``mmod_human_face_detector.dat``, what the released models were trained
  with) run by this project's PyTorch port (slt/video/mmod.py) on the engine's device. Its boxes equal dlib's for
  the same image and upsampling, so the signer box is the one dlib would give, 10-100x sooner.
- ``"dlib-cnn"``: the same model run by dlib itself (CPU only, seconds per frame): the slow reference fallback.
- ``"hog"``: dlib's HOG detector: fast on a CPU, but finds different boxes (a different crop than the models saw).

Each detector is loaded once per process and device (the apps and CLIs call it for every video).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from slt.errors import PreprocessConfigError
from slt.video.mmod import CNN_MODEL_NAME, WEIGHTS_ENV, cnn_model_path  # noqa: F401 (re-exported)

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), x1/y1 exclusive, source pixels
DETECTORS = ("cnn", "dlib-cnn", "hog")

BatchDetector = Callable[[Sequence[np.ndarray], int], list[list[Box]]]


def device_name(device=None) -> str:
    """'cpu', 'cuda:0', ... for a device given as None (CPU), a string or a torch.device."""
    if device is None:
        return "cpu"
    text = str(device)
    return "cuda:0" if text == "cuda" else text


_load_lock = threading.Lock()
# A dlib CNN keeps its activations inside the network object, so one cached detector must not run in two threads
# at once (the app serves several requests); the port is locked the same way to bound its memory. One lock each.
_run_locks: dict[tuple[str, str], threading.Lock] = {}


@functools.cache
def _load_detector(name: str, device: str = "cpu"):
    if name == "cnn":
        from slt.video.mmod import get_mmod_detector  # the port: loaded only when detection actually runs

        return get_mmod_detector(device, weights=cnn_model_path())  # one per device, shared with other callers
    import dlib  # heavy native module, absent on some machines: import only when a dlib detector runs

    if name == "dlib-cnn":
        return dlib.cnn_face_detection_model_v1(str(cnn_model_path()))
    return dlib.get_frontal_face_detector()


def get_detector(name: str, device=None) -> BatchDetector:
    """Return a function (RGB uint8 images, upsample) -> face boxes per image, for detector "cnn" (the port, on
    `device`), "dlib-cnn" or "hog" (dlib, CPU). Loaded once per (detector, device)."""
    if name not in DETECTORS:
        raise PreprocessConfigError(f"Unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}.")
    where = device_name(device) if name == "cnn" else "cpu"
    with _load_lock:  # functools.cache does not stop two threads from building the same detector at once
        detector = _load_detector(name, where)
        lock = _run_locks.setdefault((name, where), threading.Lock())

    def detect(images: Sequence[np.ndarray], upsample: int) -> list[list[Box]]:
        images = [np.ascontiguousarray(image) for image in images]
        with lock:
            if name == "cnn":  # one call: frames share the network's forward passes
                found = detector.detect(images, upsample=upsample)
                return [[(float(x0), float(y0), float(x1), float(y1)) for x0, y0, x1, y1, _ in boxes]
                        for boxes in found]
            rects = []
            for image in images:
                result = detector(image, upsample)
                rects.append([d.rect for d in result] if name == "dlib-cnn" else list(result))
        return [[(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in per] for per in rects]

    return detect


def downscale(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """Shrink a frame so its longest side is at most `max_side` (None: keep full size); return it with the x and
    y factors (small = source * factor). Frames already small enough are returned unchanged (factor 1)."""
    height, width = frame.shape[:2]
    longest = max(height, width)
    if max_side is None or longest <= max_side:
        return frame, 1.0, 1.0
    new_w = max(1, round(width * max_side / longest))
    new_h = max(1, round(height * max_side / longest))
    small = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, new_w / width, new_h / height


def map_back(boxes: list[Box], fx: float, fy: float) -> list[Box]:
    """Map boxes found on a downscaled frame to source-pixel coordinates."""
    return [(x0 / fx, y0 / fy, x1 / fx, y1 / fy) for x0, y0, x1, y1 in boxes]


def detect_faces(rgb_small: np.ndarray, fx: float, fy: float, detector: str, upsample: int,
                 device=None) -> list[Box]:
    """Detect faces on an already downscaled RGB frame and return their boxes in source pixels."""
    return map_back(get_detector(detector, device)([rgb_small], upsample)[0], fx, fy)
