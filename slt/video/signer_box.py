"""From per-frame face boxes to one square signer box per video.

Rules (docs/PIPELINE.md, "Preprocessing"): face box -> signer box by widening 1.5 w on each side, 1.0 h above and
3.0 h below; one box per video: the mean box when no sampled frame has two faces, else face tubes linked by
IoU > 0.2, kept when present in > 50 % of sampled frames, the one with most motion (else the largest) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]

TUBE_IOU = 0.2
TUBE_MIN_PRESENCE = 0.5


@dataclass
class Detection:
    """A face found on one sampled frame; `motion` is the mean optical-flow magnitude in its signer box
    (None when it was not measured, e.g. on frames with a single face)."""

    frame_index: int
    box: Box
    motion: float | None = None


@dataclass
class Tube:
    """The same face followed across sampled frames."""

    detections: list[Detection] = field(default_factory=list)

    @property
    def last_box(self) -> Box:
        return self.detections[-1].box

    def mean_box(self) -> Box:
        return tuple(np.mean([d.box for d in self.detections], axis=0).tolist())  # type: ignore[return-value]

    def mean_area(self) -> float:
        return float(np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in (d.box for d in self.detections)]))

    def motion(self) -> float | None:
        measured = [d.motion for d in self.detections if d.motion is not None]
        return float(np.mean(measured)) if measured else None


def expand_face_box(face: Box) -> Box:
    """Face box -> signer box: 4 face widths wide, 5 face heights tall (hands and torso below the face)."""
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    return (x0 - 1.5 * w, y0 - 1.0 * h, x1 + 1.5 * w, y1 + 3.0 * h)


def make_square(box: Box) -> IntBox:
    """Widen the shorter side symmetrically so the box is square; round to whole pixels (may leave the frame)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side_px = max(1, int(round(side)))
    left = int(round(cx - side_px / 2.0))
    top = int(round(cy - side_px / 2.0))
    return (left, top, left + side_px, top + side_px)


def center_box(width: int, height: int) -> IntBox:
    """The largest centred square inside the frame (the fallback when no signer is found)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tubes(frames: list[list[Detection]], min_iou: float = TUBE_IOU) -> list[Tube]:
    """Greedily link faces across sampled frames: each face joins the tube whose last box overlaps it most
    (IoU > min_iou, one face per tube per frame), otherwise it starts a new tube."""
    tubes: list[Tube] = []
    for detections in frames:
        pairs = sorted(
            ((iou(t.last_box, d.box), ti, di) for ti, t in enumerate(tubes) for di, d in enumerate(detections)),
            reverse=True,
        )
        used_tubes: set[int] = set()
        used_faces: set[int] = set()
        for overlap, ti, di in pairs:
            if overlap <= min_iou:
                break
            if ti in used_tubes or di in used_faces:
                continue
            tubes[ti].detections.append(detections[di])
            used_tubes.add(ti)
            used_faces.add(di)
        tubes.extend(Tube([d]) for di, d in enumerate(detections) if di not in used_faces)
    return tubes


@dataclass(frozen=True)
class BoxChoice:
    """The chosen face box (source pixels) and how it was chosen: "mean", "motion", "largest" or "center"."""

    face_box: Box | None
    method: str
    n_tubes: int = 0


def choose_face_box(frames: list[list[Detection]]) -> BoxChoice:
    """Pick the signer's face box for the whole video from the faces found on each sampled frame."""
    if all(len(f) <= 1 for f in frames):
        boxes = [f[0].box for f in frames if f]
        if not boxes:
            return BoxChoice(None, "center")
        return BoxChoice(tuple(np.mean(boxes, axis=0).tolist()), "mean")  # type: ignore[arg-type]
    tubes = link_tubes(frames)
    kept = [t for t in tubes if len(t.detections) > TUBE_MIN_PRESENCE * len(frames)]
    if not kept:
        return BoxChoice(None, "center", len(tubes))
    motions = [t.motion() for t in kept]
    if any(m is not None and m > 0 for m in motions):
        best = max(range(len(kept)), key=lambda i: motions[i] or 0.0)
        return BoxChoice(kept[best].mean_box(), "motion", len(tubes))
    best = max(range(len(kept)), key=lambda i: kept[i].mean_area())
    return BoxChoice(kept[best].mean_box(), "largest", len(tubes))
