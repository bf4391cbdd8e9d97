"""A small picture of what the model sees: the first frame with the signer box, then a few of the crops."""

from __future__ import annotations

import cv2
import numpy as np

from slt.video.signer_box import IntBox

BOX_COLOUR = (255, 64, 0)  # RGB


def frame_with_box(frame_bgr: np.ndarray, box: IntBox, height: int) -> np.ndarray:
    """The frame as RGB at `height` pixels tall, the signer box drawn on it (clipped where it leaves the frame)."""
    src_h, src_w = frame_bgr.shape[:2]
    scale = height / src_h
    width = max(1, round(src_w * scale))
    small = cv2.cvtColor(cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    x0, y0, x1, y1 = (round(v * scale) for v in box)
    cv2.rectangle(small, (max(x0, 0), max(y0, 0)), (min(x1, width) - 1, min(y1, height) - 1), BOX_COLOUR, 2)
    return small


def make_preview(crops: list[np.ndarray], tile: int, first_frame: np.ndarray | None = None) -> np.ndarray:
    """One uint8 RGB strip, `tile` pixels tall: [first frame with box] + the given RGB crops resized to tiles."""
    parts = [] if first_frame is None else [first_frame]
    parts += [cv2.resize(c, (tile, tile), interpolation=cv2.INTER_AREA) for c in crops]
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def pick_preview_indices(indices: np.ndarray, count: int) -> list[int]:
    """`count` evenly spread distinct frame indices of a clip (fewer if the clip has fewer distinct frames)."""
    unique = np.unique(indices)
    picks = np.linspace(0, len(unique) - 1, min(count, len(unique))).round().astype(int)
    return [int(unique[p]) for p in picks]
