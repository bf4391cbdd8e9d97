"""The signer's look: a real face photo (scikit-image's astronaut, which dlib detects) on a drawn body.

The face is cut out of the photo around dlib's own face box and scaled so that the box has the width the
domain asks for; the pipeline's signer box (4 face widths x 5 face heights) then covers head, torso and
the signing space, which is where the hands are drawn.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from slt.errors import CorpusConfigError


@dataclass(frozen=True)
class FacePatch:
    """An RGB face cut-out with its alpha mask and where dlib's face box lies inside it."""

    rgb: np.ndarray  # uint8 [h, w, 3]
    alpha: np.ndarray  # float32 [h, w, 1] in [0, 1]
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the face box inside the patch


@functools.lru_cache(maxsize=1)
def _astronaut_face() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The astronaut photo and dlib HOG's box for her face (the top-most detection; found once per process)."""
    import dlib
    import skimage.data

    image = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    faces = dlib.get_frontal_face_detector()(image, 1)
    if not faces:
        raise CorpusConfigError("dlib found no face in skimage's astronaut image; the synthetic signer cannot be built")
    face = min(faces, key=lambda r: r.top())
    return image, (face.left(), face.top(), face.right(), face.bottom())


# Signer looks: how the photo is recoloured and mirrored. Both keep a frontal, well lit face for dlib.
SIGNERS: dict[str, dict] = {
    "astronaut": {"flip": False, "gain": (1.0, 1.0, 1.0), "gamma": 1.0},
    # A second signer: mirrored, cooler and darker skin tone.
    "astronaut_alt": {"flip": True, "gain": (0.78, 0.86, 1.05), "gamma": 1.15},
}


@functools.lru_cache(maxsize=8)
def face_patch(signer: str, face_width: int) -> FacePatch:
    """The face cut-out of `signer`, scaled so that dlib's face box is `face_width` pixels wide."""
    if signer not in SIGNERS:
        raise CorpusConfigError(f"unknown signer {signer!r}; choose one of {', '.join(SIGNERS)}")
    look = SIGNERS[signer]
    image, (x0, y0, x1, y1) = _astronaut_face()
    w, h = x1 - x0, y1 - y0
    # Head region: hair above the box, chin and neck start below it.
    cx0, cy0 = max(0, int(x0 - 0.35 * w)), max(0, int(y0 - 0.55 * h))
    cx1, cy1 = min(image.shape[1], int(x1 + 0.35 * w)), min(image.shape[0], int(y1 + 0.3 * h))
    crop = image[cy0:cy1, cx0:cx1].astype(np.float32) / 255.0
    crop = np.clip((crop ** look["gamma"]) * np.array(look["gain"], np.float32), 0, 1)
    box = (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)
    if look["flip"]:
        crop = crop[:, ::-1]
        box = (crop.shape[1] - box[2], box[1], crop.shape[1] - box[0], box[3])
    scale = face_width / w
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    rgb = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA)
    # Soft elliptical mask around the head so the helmet/suit of the photo does not show.
    ph, pw = rgb.shape[:2]
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    fcx, fcy = (box[0] + box[2]) / 2 * scale, (box[1] + box[3]) / 2 * scale - 0.12 * face_width
    r = ((xx - fcx) / (0.5 * pw)) ** 2 + ((yy - fcy) / (0.5 * ph + 0.02 * ph)) ** 2
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0)[..., None].astype(np.float32)
    return FacePatch((rgb * 255).round().astype(np.uint8), alpha, tuple(v * scale for v in box))


@dataclass(frozen=True)
class Placement:
    """Where the signer stands in the frame: dlib-style face box in frame pixels."""

    face_box: tuple[float, float, float, float]

    @property
    def unit(self) -> float:
        """One face width in pixels (gesture sizes and anchors are expressed in it)."""
        return self.face_box[2] - self.face_box[0]

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.face_box
        return (x0 + x1) / 2, (y0 + y1) / 2

    def point(self, u: float, v: float) -> tuple[float, float]:
        """Frame pixels of a point given in face units relative to the face centre."""
        cx, cy = self.centre
        return cx + u * self.unit, cy + v * self.unit


def draw_signer(canvas: np.ndarray, signer: str, face_width: int, face_centre: tuple[float, float],
                shirt_rgb: tuple[int, int, int]) -> Placement:
    """Draw torso, neck and face on `canvas` (RGB uint8, in place); returns where the face box ended up."""
    patch = face_patch(signer, face_width)
    bx0, by0, bx1, by1 = patch.box
    # Top-left of the patch so that the face box centre lands on face_centre.
    ox = int(round(face_centre[0] - (bx0 + bx1) / 2))
    oy = int(round(face_centre[1] - (by0 + by1) / 2))
    placement = Placement((ox + bx0, oy + by0, ox + bx1, oy + by1))
    unit = placement.unit
    cheek = patch.rgb[int(by0 + 0.6 * (by1 - by0)):int(by1), int(bx0 + 0.3 * unit):int(bx1 - 0.3 * unit)]
    skin = tuple(int(c) for c in np.median(cheek.reshape(-1, 3), axis=0))
    # Torso: a rounded trapezoid from the shoulders down past the bottom of the frame.
    sx, sy = placement.point(0, 1.35)
    torso = np.array([placement.point(-1.45, 1.75), placement.point(-0.9, 1.3), placement.point(0.9, 1.3),
                      placement.point(1.45, 1.75), placement.point(1.6, 6.0), placement.point(-1.6, 6.0)], np.int32)
    neck_top, neck_bottom = placement.point(0, 0.5), placement.point(0, 1.4)
    cv2.line(canvas, tuple(map(int, neck_top)), tuple(map(int, neck_bottom)), skin, max(1, int(0.42 * unit)))
    cv2.fillPoly(canvas, [torso], shirt_rgb, lineType=cv2.LINE_AA)
    cv2.ellipse(canvas, (int(sx), int(sy)), (int(0.28 * unit), int(0.16 * unit)), 0, 0, 180, skin, -1, cv2.LINE_AA)
    # Alpha-blend the face patch (clipped to the canvas).
    h, w = canvas.shape[:2]
    px0, py0 = max(ox, 0), max(oy, 0)
    px1, py1 = min(ox + patch.rgb.shape[1], w), min(oy + patch.rgb.shape[0], h)
    if px1 > px0 and py1 > py0:
        src = patch.rgb[py0 - oy:py1 - oy, px0 - ox:px1 - ox].astype(np.float32)
        a = patch.alpha[py0 - oy:py1 - oy, px0 - ox:px1 - ox]
        region = canvas[py0:py1, px0:px1].astype(np.float32)
        canvas[py0:py1, px0:px1] = (a * src + (1 - a) * region).round().astype(np.uint8)
    return placement
