"""How much a face's signer box moves: dense Farneback optical flow between two consecutive (downscaled) frames."""

from __future__ import annotations

import cv2
import numpy as np

from slt.video.signer_box import Box, expand_face_box


def flow_magnitude(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Per-pixel optical-flow magnitude (pixels/frame) between two grayscale frames of the same size."""
    flow = cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.linalg.norm(flow, axis=2)


def box_motion(magnitude: np.ndarray, face_small: Box) -> float:
    """Mean flow magnitude inside the signer box (expanded face box) of a face given in downscaled pixels;
    the hands move below the face, so the expanded box is what tells a signer from a bystander."""
    height, width = magnitude.shape
    x0, y0, x1, y1 = expand_face_box(face_small)
    left, top = max(0, int(x0)), max(0, int(y0))
    right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if right <= left or bottom <= top:
        return 0.0
    return float(magnitude[top:bottom, left:right].mean())
