"""Helpers for the synth tests: find faces and crop the signer the way the video pipeline does, colour statistics.

Frames come from `tests.helpers.video.read_frames(path, rgb=True)`.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

_HOG = dlib.get_frontal_face_detector()


def hog_faces(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """dlib HOG face boxes (upsampling once, as the pipeline does)."""
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in _HOG(frame, 1)]


def signer_crops(frames: list[np.ndarray], size: int = 224) -> list[np.ndarray]:
    """Crop every frame to the pipeline's signer box: mean face box of every 16th frame, x0-=1.5w, x1+=1.5w,
    y0-=1.0h, y1+=3.0h, widened to a square, black outside the frame, resized to size x size."""
    boxes = [hog_faces(f)[0] for f in frames[::16] if hog_faces(f)]
    assert boxes, "no face found"
    x0, y0, x1, y1 = np.mean(boxes, axis=0)
    w, h = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - 1.5 * w, x1 + 1.5 * w, y0 - 1.0 * h, y1 + 3.0 * h
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx0, by0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    crops = []
    for frame in frames:
        padded = cv2.copyMakeBorder(frame, s, s, s, s, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        region = padded[by0 + s:by0 + 2 * s, bx0 + s:bx0 + 2 * s]
        crops.append(cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA))
    return crops


def colour_histogram(crop: np.ndarray) -> np.ndarray:
    """A normalised 4x4x4 RGB histogram: position-free, like features averaged over H and W."""
    hist = cv2.calcHist([crop], [0, 1, 2], None, [4, 4, 4], [0, 256, 0, 256, 0, 256]).ravel()
    return hist / hist.sum()


def clip_histograms(crops: list[np.ndarray]) -> np.ndarray:
    """Per-frame histograms minus the clip's median one: the static scene (background, body, face) cancels
    and what is left is the hands, as a model would learn to attend to what changes."""
    hists = np.array([colour_histogram(c) for c in crops])
    return np.clip(hists - np.median(hists, axis=0), 0, None)


def segment_features(hists: np.ndarray, start: int, end: int, steps: int = 4) -> np.ndarray:
    """One vector per sign: histograms averaged per 2 frames (one feature step), resampled to `steps` steps."""
    segment = hists[start:end]
    pairs = np.array([segment[i:i + 2].mean(axis=0) for i in range(0, len(segment), 2)])
    picks = np.linspace(0, len(pairs) - 1, steps).round().astype(int)
    return np.sqrt(pairs[picks]).ravel()  # sqrt: Hellinger-style, so small coloured areas still count
