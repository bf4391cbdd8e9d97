"""Turn a gloss sequence into video frames: plan the timing and look once, then draw frame by frame.

`plan_performance` draws every random choice of a clip (signer position, shirt, background, each sign's
duration, the noise seed) from the caller's generator; `render_performance` is then a pure function of
the plan, so the same seed gives byte-identical frames, and frames are yielded one at a time (a clip is
never held in memory).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from slt.data.synth.domains import DomainSpec
from slt.data.synth.lexicon import ANCHORS, LEXICON, Gesture, gesture_for
from slt.data.synth.signer import Placement, draw_signer
from slt.errors import CorpusConfigError

REST = {"dominant": (-0.9, 3.4), "other": (0.9, 3.4)}  # hands low, at the bottom of the signer box
SHOULDER = {"dominant": (-1.0, 1.6), "other": (1.0, 1.6)}
RETURN_FRAMES = 4  # frames the hands take to go back to rest after the last sign of a sentence
REST_GLOVE = (150, 150, 150)
# Finger layouts per hand shape: (direction offset in degrees, length in palm radii).
FINGERS: dict[str, tuple[tuple[float, float], ...]] = {
    "fist": (),
    "flat": ((-12, 1.9), (-4, 2.0), (4, 2.0), (12, 1.9)),
    "point": ((0, 2.3),),
    "vee": ((-22, 2.1), (22, 2.1)),
    "open": ((-80, 1.5), (-40, 1.8), (-13, 2.0), (13, 1.95), (40, 1.7)),
    "claw": ((-60, 1.3), (-30, 1.4), (0, 1.4), (30, 1.4), (60, 1.3)),
}


@dataclass(frozen=True)
class Performance:
    """Every decision about one clip; rendering it is deterministic."""

    glosses: tuple[str, ...]
    word_spans: tuple[tuple[int, int], ...]  # [start, end) frame of each sign, transition included
    n_frames: int
    face_centre: tuple[float, float]
    shirt_rgb: tuple[int, int, int]
    background: tuple  # ("plain", rgb) or ("texture", name, tint rgb, x0, y0, crop size)
    noise_seed: int


def plan_performance(glosses: Sequence[str], spec: DomainSpec, rng: np.random.Generator) -> Performance:
    """Draw the timing and look of one clip of `glosses` in domain `spec`."""
    glosses = tuple(glosses)
    missing = [g for g in glosses if g not in LEXICON]
    if not glosses or missing:
        raise CorpusConfigError(f"cannot sign {' '.join(glosses) or 'an empty sentence'}: unknown glosses {missing}")
    t = int(rng.integers(spec.rest_frames[0], spec.rest_frames[1] + 1))
    spans = []
    for gloss in glosses:
        base = gesture_for(gloss).base_frames / spec.speed
        n = max(6, int(round(base * (1 + rng.uniform(-spec.speed_jitter, spec.speed_jitter)) * spec.fps / 25.0)))
        spans.append((t, t + n))
        t += n
    n_frames = t + int(rng.integers(spec.rest_frames[0], spec.rest_frames[1] + 1))
    w, h = spec.frame_size
    jitter = rng.uniform(-spec.face_jitter, spec.face_jitter, size=2)
    face_centre = (w / 2 + jitter[0], 0.34 * h + jitter[1] / 2)
    shirt = spec.shirt_colours[int(rng.integers(len(spec.shirt_colours)))]
    if spec.background == "plain":
        background: tuple = ("plain", spec.background_colours[int(rng.integers(len(spec.background_colours)))])
    else:
        name = spec.textures[int(rng.integers(len(spec.textures)))]
        tint = tuple(int(v) for v in rng.integers(90, 230, size=3))
        crop = int(rng.integers(256, 384))
        x0, y0 = (int(v) for v in rng.integers(0, 512 - crop, size=2))
        background = ("texture", name, tint, x0, y0, crop)
    return Performance(glosses, tuple(spans), n_frames, face_centre, shirt, background, int(rng.integers(2**31)))


@functools.lru_cache(maxsize=8)
def _texture(name: str) -> np.ndarray:
    """A real greyscale texture photo from scikit-image (brick, grass, gravel), 512x512, float in [0, 1]."""
    import skimage.data

    if name not in ("brick", "grass", "gravel"):
        raise CorpusConfigError(f"unknown texture {name!r}; choose brick, grass or gravel")
    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    return image.astype(np.float32) / 255.0


def _backdrop(perf: Performance, spec: DomainSpec) -> np.ndarray:
    w, h = spec.frame_size
    if perf.background[0] == "plain":
        return np.full((h, w, 3), perf.background[1], np.uint8)
    _, name, tint, x0, y0, crop = perf.background
    patch = cv2.resize(_texture(name)[y0:y0 + crop, x0:x0 + crop], (w, h), interpolation=cv2.INTER_AREA)
    return np.clip((0.35 + 0.8 * patch[..., None]) * np.array(tint, np.float32), 0, 255).astype(np.uint8)


def _motion(motion: str, u: float) -> tuple[float, float, float, float, float]:
    """Offset (dx, dy) in face widths, size factor, palm/back turn in [0, 1] and extra rotation (deg) at phase u."""
    a = 2 * math.pi * u
    if motion == "circle":
        return 0.4 * math.cos(1.5 * a), 0.4 * math.sin(1.5 * a), 1.0, 0.0, 0.0
    if motion == "updown":
        return 0.0, 0.45 * math.sin(2 * a), 1.0, 0.0, 0.0
    if motion == "sideways":
        return 0.55 * math.sin(1.5 * a), 0.0, 1.0, 0.0, 0.0
    if motion == "push":  # towards the camera and back: the hand grows
        return 0.0, 0.0, 1.0 + 0.6 * math.sin(math.pi * u), 0.0, 0.0
    if motion == "twist":  # the hand turns, showing palm and back in turn
        return 0.0, 0.0, 1.0, 0.5 - 0.5 * math.cos(1.5 * a), 50.0 * math.sin(1.5 * a)
    if motion == "tap":
        bounce = abs(math.sin(1.5 * a))
        return 0.0, 0.3 * bounce, 1.0 - 0.2 * bounce, 0.0, 0.0
    raise CorpusConfigError(f"unknown motion {motion!r}")


@dataclass
class _Hand:
    x: float  # face units
    y: float
    size: float  # palm radius in face units
    angle: float
    shape: str
    palm: tuple[int, int, int]
    back: tuple[int, int, int]
    turn: float


def _rest_hand(side: str) -> _Hand:
    x, y = REST[side]
    return _Hand(x, y, 0.3, 0.0, "fist", REST_GLOVE, REST_GLOVE, 0.0)


def _gesture_hand(g: Gesture, side: str, u: float, spec: DomainSpec) -> _Hand:
    ax, ay, angle = ANCHORS[g.anchor]
    dx, dy, grow, turn, rot = _motion(g.motion, u)
    x, y = ax + dx, ay + dy
    if side == "other":  # the non-dominant hand mirrors the dominant one
        x, angle, rot = -x, -angle, -rot
        if abs(ax) < 0.2:
            x += 0.45
    elif abs(ax) < 0.2 and g.two_handed:
        x -= 0.45
    tint = np.array(spec.hand_tint, np.float32)
    palm = tuple(int(v) for v in np.clip(np.array(g.palm_rgb) * tint, 0, 255))
    back = tuple(int(v) for v in np.clip(np.array(g.back_rgb) * tint, 0, 255))
    return _Hand(x, y, 0.5 * g.size * spec.hand_scale * grow, angle + rot, g.shape, palm, back, turn)


def _lerp_hand(a: _Hand, b: _Hand, s: float) -> _Hand:
    """Move from hand `a` to hand `b` (s in [0, 1]); shape and colours switch to b's at once."""
    s = s * s * (3 - 2 * s)  # ease in/out
    return _Hand(a.x + (b.x - a.x) * s, a.y + (b.y - a.y) * s, a.size + (b.size - a.size) * s,
                 a.angle + (b.angle - a.angle) * s, b.shape, b.palm, b.back, b.turn)


def hands_at(perf: Performance, spec: DomainSpec, frame: int) -> tuple[_Hand, _Hand]:
    """Both hands at `frame`: resting, moving into the current sign (first quarter), or performing it."""
    previous = (_rest_hand("dominant"), _rest_hand("other"))
    for gloss, (start, end) in zip(perf.glosses, perf.word_spans):
        g = gesture_for(gloss)
        trans = max(2, (end - start) // 4)
        hold = end - start - trans

        def pose(u: float, g=g) -> tuple[_Hand, _Hand]:  # g bound now: this sign's gesture
            other = _gesture_hand(g, "other", u, spec) if g.two_handed else _rest_hand("other")
            return _gesture_hand(g, "dominant", u, spec), other

        if frame < start:
            break
        if frame < end:
            if frame < start + trans:
                target = pose(0.0)
                s = (frame - start + 1) / trans
                return _lerp_hand(previous[0], target[0], s), _lerp_hand(previous[1], target[1], s)
            return pose((frame - start - trans) / max(1, hold - 1))
        previous = pose(1.0)
    if frame >= perf.word_spans[-1][1]:  # back to rest after the last sign
        s = min(1.0, (frame - perf.word_spans[-1][1] + 1) / RETURN_FRAMES)
        return _lerp_hand(previous[0], _rest_hand("dominant"), s), _lerp_hand(previous[1], _rest_hand("other"), s)
    return previous


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _draw_arm_and_hand(canvas: np.ndarray, place: Placement, hand: _Hand, side: str,
                       sleeve: tuple[int, int, int]) -> None:
    unit = place.unit
    centre = place.point(hand.x, hand.y)
    sx, sy = SHOULDER[side]
    elbow_y = max(sy, hand.y) + 0.9
    elbow = place.point(sx * 1.25, elbow_y)
    pts = [tuple(int(round(v)) for v in p) for p in (place.point(sx, sy), elbow, centre)]
    thick = max(2, int(0.36 * unit))
    cv2.line(canvas, pts[0], pts[1], sleeve, thick, cv2.LINE_AA)
    cv2.line(canvas, pts[1], pts[2], sleeve, thick, cv2.LINE_AA)
    radius = hand.size * unit
    palm_colour, finger_colour = _mix(hand.palm, hand.back, hand.turn), _mix(hand.back, hand.palm, hand.turn)
    cx, cy = centre
    finger_thick = max(2, int(round(0.42 * radius)))
    for offset, length in FINGERS[hand.shape]:
        a = math.radians(hand.angle + offset)
        base = (cx + 0.6 * radius * math.sin(a), cy - 0.6 * radius * math.cos(a))
        tip = (cx + length * radius * math.sin(a), cy - length * radius * math.cos(a))
        cv2.line(canvas, tuple(int(round(v)) for v in base), tuple(int(round(v)) for v in tip), finger_colour,
                 finger_thick, cv2.LINE_AA)
    axes = (max(1, int(round(radius))), max(1, int(round(1.1 * radius))))
    cv2.ellipse(canvas, (int(round(cx)), int(round(cy))), axes, hand.angle, 0, 360, palm_colour, -1, cv2.LINE_AA)
    if hand.shape == "fist":  # folded fingers: a band of the back colour across the top of the palm
        a = math.radians(hand.angle)
        p = (cx - 0.35 * radius * math.sin(-a), cy - 0.35 * radius * math.cos(a))
        cv2.ellipse(canvas, (int(round(p[0])), int(round(p[1]))), (axes[0], max(1, axes[1] // 3)), hand.angle, 0, 360,
                    finger_colour, -1, cv2.LINE_AA)


def render_performance(perf: Performance, spec: DomainSpec) -> Iterator[np.ndarray]:
    """Yield the clip's frames one at a time: RGB uint8 arrays of shape (height, width, 3)."""
    base, place, sleeve = signer_backdrop(perf, spec)
    rng = np.random.default_rng(perf.noise_seed)
    for frame in range(perf.n_frames):
        yield draw_frame(base, place, sleeve, hands_at(perf, spec, frame), spec, rng)


def signer_backdrop(perf: Performance, spec: DomainSpec) -> tuple[np.ndarray, Placement, tuple[int, int, int]]:
    """The still part of every frame (background, torso, face), where the face landed, and the sleeve colour."""
    base = _backdrop(perf, spec)
    place = draw_signer(base, spec.signer, spec.face_width, perf.face_centre, perf.shirt_rgb)
    sleeve = tuple(int(v * 0.6) for v in perf.shirt_rgb)  # darker, so the arms show on the torso
    return base, place, sleeve


def draw_frame(base: np.ndarray, place: Placement, sleeve: tuple[int, int, int], hands: tuple[_Hand, _Hand],
               spec: DomainSpec, rng: np.random.Generator) -> np.ndarray:
    """One RGB frame: both hands drawn over the backdrop, then the camera's shake, flicker and noise."""
    w, h = spec.frame_size
    canvas = base.copy()
    dominant, other = hands
    # Draw the hand that is further from the camera first (the lower one rests behind).
    _draw_arm_and_hand(canvas, place, other, "other", sleeve)
    _draw_arm_and_hand(canvas, place, dominant, "dominant", sleeve)
    if spec.shake > 0:
        dx, dy = rng.uniform(-spec.shake, spec.shake, size=2)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        canvas = cv2.warpAffine(canvas, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    if spec.noise_sigma > 0 or spec.brightness_jitter > 0:
        gain = 1.0 + rng.uniform(-spec.brightness_jitter, spec.brightness_jitter)
        noisy = canvas.astype(np.float32) * gain
        if spec.noise_sigma > 0:
            noisy += rng.standard_normal(noisy.shape, dtype=np.float32) * spec.noise_sigma
        canvas = np.clip(noisy, 0, 255).round().astype(np.uint8)
    return canvas


def render_sentence(words: Sequence[str], spec: DomainSpec, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Frames (RGB uint8, one at a time) of the signer performing the glosses `words` in domain `spec`."""
    return render_performance(plan_performance(words, spec, rng), spec)
