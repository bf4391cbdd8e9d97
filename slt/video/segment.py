"""Sentence segmentation of signed video from motion energy inside the signer crop.

SONAR ASL turns one clip into one sentence embedding, so a long video must be cut into sentence-sized pieces
before it is encoded. Signers drop or still their hands between sentences; inside the signer crop that shows up
as a stretch of low frame-to-frame change. :class:`MotionSegmenter` watches that signal one sampled frame at a
time (online, so the same code serves a file and a live camera) and closes a segment when the hands have been
still for `min_rest_s`, when it reaches `max_duration_s` (then it is cut at its quietest moment in its last
third: a signer who never rests still gets captions every few seconds, which is the fixed-window fallback), or
when the input ends. `method="fixed"` cuts plain windows of `window_s` instead.

Energy (:func:`stabilized_energy`, the default): each crop becomes a grey image of at most 128x128 divided by its
mean brightness (so a camera's global gain changes and flicker cancel out) and is compared with the one `lag`
samples earlier. Camera shake moves the whole picture, and over a textured background that changes the crop as
much as slow signing does, so the global shift between the two is measured first (phase correlation, which
follows what most of the picture does) and the change is measured per cell of a 16x16 grid twice: as the crops
are (camera still) and after undoing the shift (camera moved). A cell keeps the smaller of the two: the
background and torso are still under one of the explanations, only a moving hand changes under both. Averaging
the signed change over a cell before taking its size averages pixel noise away while a moving hand still
changes several cells. The energy is the mean over cells, in percent of the mean brightness. With
`stabilize=False` the older, cheaper energy is used (:func:`motion_energy` of 16x16 thumbnails, no shake
compensation). The threshold between "moving" and "resting" adapts to the video: a low quantile of recent
energies gives the resting level, a high one the signing level; the threshold sits `threshold_ratio` of the way
between them, but at least `rest_factor` times the resting level (the energy of camera noise fluctuates in
proportion to its mean) and never below `min_threshold`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from slt.errors import InvalidArgumentError

SEGMENT_METHODS = ("motion", "fixed")


@dataclass(frozen=True)
class SegmentationConfig:
    """How a video is cut into caption segments. Times in seconds."""

    method: str = "motion"  # "motion" (rests between sentences) or "fixed" (plain windows of window_s)
    min_rest_s: float = 0.4  # still hands this long end a sentence (within-sentence pauses are shorter)
    min_duration_s: float = 0.5  # movements shorter than this are not sentences (dropped: a scratch, a twitch)
    max_duration_s: float = 10.0  # longer segments are cut (about one released SignHiera clip: 128 frames / 12.5)
    window_s: float = 5.0  # window length for method="fixed"
    min_active_s: float = 0.15  # movement this long opens a segment
    context_s: float = 0.2  # still frames kept on both sides of a segment when it is translated
    threshold: float | None = None  # fixed energy threshold; None = adaptive (below)
    threshold_ratio: float = 0.12  # adaptive threshold: rest level + ratio x (signing level - rest level) ...
    rest_factor: float = 2.0  # ... but at least rest_factor x rest level (camera noise scales both together)
    min_threshold: float = 0.4  # energy (percent of mean brightness) that always counts as still
    adapt_window_s: float = 30.0  # the adaptive levels come from this much recent history
    thumb_size: int = 16
    lag: int = 2  # samples between the two compared thumbnails
    stabilize: bool = True  # compensate camera shake (global shift between the compared crops; see the module doc)
    align_size: int = 128  # with stabilize, crops are compared at most this large (pixels per side)

    def __post_init__(self) -> None:
        if self.method not in SEGMENT_METHODS:
            raise InvalidArgumentError(
                f"unknown segmentation method {self.method!r}; choose {' or '.join(SEGMENT_METHODS)}")
        for name in ("min_rest_s", "max_duration_s", "window_s", "min_active_s", "adapt_window_s", "min_threshold"):
            if not getattr(self, name) > 0:
                raise InvalidArgumentError(f"SegmentationConfig.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.min_duration_s < self.max_duration_s:
            raise InvalidArgumentError(
                f"need 0 <= min_duration_s < max_duration_s, got {self.min_duration_s} and {self.max_duration_s}")
        if self.context_s < 0 or not 0 < self.threshold_ratio < 1 or self.rest_factor < 1:
            raise InvalidArgumentError("context_s must be >= 0, threshold_ratio in (0, 1) and rest_factor >= 1")
        if self.threshold is not None and not self.threshold > 0:
            raise InvalidArgumentError(f"SegmentationConfig.threshold must be positive or None, got {self.threshold!r}")
        if self.thumb_size < 4 or self.lag < 1:
            raise InvalidArgumentError("SegmentationConfig.thumb_size must be >= 4 and lag >= 1")
        if self.align_size < 2 * self.thumb_size:
            raise InvalidArgumentError(
                f"SegmentationConfig.align_size must be >= 2 x thumb_size, got {self.align_size} and {self.thumb_size}")


@dataclass(frozen=True)
class Segment:
    """A sentence-sized piece: [first, last] sample indices of the movement, and its times in seconds."""

    first: int
    last: int  # inclusive
    start_s: float
    end_s: float  # time of the first sample after the movement (exclusive end)
    reason: str  # "rest", "max_duration", "end" (input ended) or "window" (fixed method)
    end_sample: int  # the sample at end_s (the first one after the movement)


def thumbnail(crop_rgb: np.ndarray, size: int = 16) -> np.ndarray:
    """A size x size grey float thumbnail of a uint8 RGB crop, scaled to mean 100 (global gain removed)."""
    grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return small * (100.0 / max(float(small.mean()), 1.0))


def motion_energy(earlier: np.ndarray, later: np.ndarray) -> float:
    """Mean absolute change between two thumbnails, in percent of the mean brightness."""
    return float(np.abs(later - earlier).mean())


def grey_normalised(crop_rgb: np.ndarray, size: int) -> np.ndarray:
    """The crop as a grey float image of at most size x size, scaled to mean 100 (global gain removed)."""
    grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    if grey.shape[0] > size or grey.shape[1] > size:
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    return grey * (100.0 / max(float(grey.mean()), 1.0))


_HANNING: dict[tuple[int, int], np.ndarray] = {}


def global_shift(earlier: np.ndarray, later: np.ndarray) -> tuple[float, float]:
    """The (dx, dy) in pixels that moves `earlier` onto `later`: phase correlation of the two grey images
    (Hanning-windowed), which locks on what most of the picture does: the camera's shake, not a hand."""
    shape = earlier.shape[:2]
    window = _HANNING.get(shape)
    if window is None:
        window = _HANNING[shape] = cv2.createHanningWindow(shape[::-1], cv2.CV_32F)
    # The windowed products are new arrays: this OpenCV's phaseCorrelate writes the window into its inputs.
    (dx, dy), _ = cv2.phaseCorrelate(earlier * window, later * window)
    return float(dx), float(dy)


def stabilized_energy(earlier: np.ndarray, later: np.ndarray, cells: int = 16) -> float:
    """Motion energy with camera shake removed, in percent of the mean brightness (grey_normalised inputs).

    Two explanations of the change are tried per cell of a `cells` x `cells` grid: the camera stood still
    (difference of the crops as they are) or the whole picture moved by the global shift (difference after
    moving `earlier` by it). A cell counts only the smaller of the two mean differences: the textured background
    is still once the shake is undone, the black border where the signer box leaves the frame and any overlay are
    still without undoing it, and only a moving hand changes under both. Differences are averaged over each cell
    before the absolute value, so pixel noise averages out as it does in a thumbnail."""
    height, width = later.shape[:2]
    dx, dy = global_shift(earlier, later)
    moved = cv2.warpAffine(earlier, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    still = cv2.resize(later - earlier, (cells, cells), interpolation=cv2.INTER_AREA)
    shaken = cv2.resize(later - moved, (cells, cells), interpolation=cv2.INTER_AREA)
    return float(np.minimum(np.abs(still), np.abs(shaken)).mean())


class MotionSegmenter:
    """Online segmentation: :meth:`push` one sample (time, crop) at a time, get the segments it closes.

    Samples are numbered from 0 in the order pushed. A segment is reported once its end is certain: for a rest,
    `min_rest_s` after the movement stopped (plus one sample of smoothing delay).
    """

    def __init__(self, config: SegmentationConfig = SegmentationConfig()):
        self.config = config
        self._thumbs: deque[np.ndarray] = deque(maxlen=config.lag)  # the last `lag` grey images or thumbnails
        self._times: list[float] = []  # every sample's time (a float per sample: small even for hours)
        self._raw: list[float] = []  # raw energy per sample
        self._smooth: list[float] = []  # centred 3-sample mean, one sample behind the raw energy
        self._history: deque[tuple[float, float]] = deque()  # (time, smoothed energy) within adapt_window_s
        self._open: int | None = None  # first sample of the open segment
        self._run_start: int | None = None  # first sample of the current above-threshold run (while closed)
        self._last_active: int | None = None  # last above-threshold sample of the open segment
        self.thresholds: list[float] = []  # the threshold used at each smoothed sample (for plots and tests)

    @property
    def n_samples(self) -> int:
        return len(self._times)

    @property
    def open_first(self) -> int | None:
        """First sample of the segment being signed now (None while the signer rests)."""
        return self._open

    def time_of(self, sample: int) -> float:
        return self._times[sample]

    def push(self, time_s: float, crop_rgb: np.ndarray) -> list[Segment]:
        """Add the next sample; returns the segments that it closes (usually none)."""
        if self._times and time_s <= self._times[-1]:
            raise InvalidArgumentError(f"sample times must increase: {time_s} after {self._times[-1]}")
        config = self.config
        # Compared with the sample `lag` earlier (the first few samples: with the oldest there is).
        if config.stabilize:
            thumb = grey_normalised(crop_rgb, config.align_size)
            energy = stabilized_energy(self._thumbs[0], thumb, config.thumb_size) if self._thumbs else 0.0
        else:
            thumb = thumbnail(crop_rgb, config.thumb_size)
            energy = motion_energy(self._thumbs[0], thumb) if self._thumbs else 0.0
        self._thumbs.append(thumb)
        self._times.append(float(time_s))
        self._raw.append(energy)
        if self.config.method == "fixed":
            return self._push_fixed()
        if len(self._raw) < 2:
            return []
        # Smooth sample k-1 with its two neighbours (one sample of delay keeps the average centred).
        k = len(self._raw) - 2
        self._smooth.append(float(np.mean(self._raw[max(0, k - 1):k + 2])))
        return self._step(k)

    def finish(self) -> list[Segment]:
        """The input ended: close the open segment (if long enough)."""
        if self.config.method == "fixed":
            if self._open is None or self._open >= self.n_samples:
                return []
            return self._close(self._open, self.n_samples - 1, "window")
        closed: list[Segment] = []
        if self._raw and len(self._smooth) < len(self._raw):  # the last sample was never smoothed
            k = len(self._raw) - 1
            self._smooth.append(float(np.mean(self._raw[max(0, k - 1):])))
            closed += self._step(k)
        if self._open is not None:
            last = self._last_active if self._last_active is not None else self.n_samples - 1
            closed += self._close(self._open, last, "end")
        return closed

    # ------------------------------------------------------------------ internals
    def _push_fixed(self) -> list[Segment]:
        if self._open is None:
            self._open = 0
        if self._times[-1] - self._times[self._open] >= self.config.window_s:
            first, self._open = self._open, self.n_samples - 1
            return self._close(first, self.n_samples - 2, "window")
        return []

    def _threshold(self, time_s: float, energy: float) -> float:
        config = self.config
        if config.threshold is not None:
            return config.threshold
        self._history.append((time_s, energy))
        while self._history and self._history[0][0] < time_s - config.adapt_window_s:
            self._history.popleft()
        values = np.fromiter((e for _, e in self._history), np.float32)
        rest, signing = np.quantile(values, 0.1), np.quantile(values, 0.9)
        return max(config.min_threshold, float(rest * config.rest_factor),
                   float(rest + config.threshold_ratio * (signing - rest)))

    def _step(self, k: int) -> list[Segment]:
        """Advance the state machine by smoothed sample k."""
        config = self.config
        energy, time_s = self._smooth[k], self._times[k]
        threshold = self._threshold(time_s, energy)
        self.thresholds.append(threshold)
        moving = energy > threshold
        if self._open is None:
            if not moving:
                self._run_start = None
                return []
            if self._run_start is None:
                self._run_start = k
            if time_s - self._times[self._run_start] + self._sample_period() >= config.min_active_s:
                self._open, self._last_active, self._run_start = self._run_start, k, None
            return []
        if moving:
            self._last_active = k
        closed: list[Segment] = []
        if time_s - self._times[self._last_active] >= config.min_rest_s:
            first, last = self._open, self._last_active
            self._open = self._last_active = None
            closed += self._close(first, last, "rest")
        elif time_s - self._times[self._open] >= config.max_duration_s:
            # Too long without a rest: cut at the quietest sample of the last third, keep signing from there.
            first = self._open
            window_start = next(i for i in range(first, k + 1)
                                if self._times[i] >= self._times[first] + 2 * config.max_duration_s / 3)
            cut = window_start + int(np.argmin(self._smooth[window_start:k + 1]))
            cut = max(cut, first + 1)
            self._open = cut
            if self._last_active is not None and self._last_active < cut:
                self._last_active = cut
            closed += self._close(first, cut - 1, "max_duration")
        return closed

    def _sample_period(self) -> float:
        if len(self._times) < 2:
            return 0.0
        return (self._times[-1] - self._times[0]) / (len(self._times) - 1)

    def _close(self, first: int, last: int, reason: str) -> list[Segment]:
        # The energy at sample k compares it with sample k - lag, so the hands were last seen moving between those
        # two; the movement's end is put `lag - 1` samples after that window's start (calibrated on synthetic
        # videos: end error +0.05 s on average, erring on the late side so a caption never cuts its sentence).
        end = max(first + 1, last + 2 - self.config.lag) if reason in ("rest", "end") else last + 1
        end_s = self._times[end] if end < len(self._times) else self._times[-1] + self._sample_period()
        segment = Segment(first, last, self._times[first], end_s, reason, min(end, len(self._times) - 1))
        if segment.end_s - segment.start_s < self.config.min_duration_s and reason != "window":
            return []
        return [segment]


def segment_times(times: list[float], crops, config: SegmentationConfig = SegmentationConfig()) -> list[Segment]:
    """Segment a whole sequence of (time, uint8 RGB crop) samples (convenience for offline use and tests)."""
    segmenter = MotionSegmenter(config)
    segments: list[Segment] = []
    for time_s, crop in zip(times, crops, strict=True):
        segments += segmenter.push(time_s, crop)
    return segments + segmenter.finish()


def pair_boundary_errors(predicted: list[tuple[float, float]], truth: list[tuple[float, float]]) -> list[float]:
    """|start - true start| and |end - true end| (seconds) for each true segment that some predicted segment
    overlaps, paired with the predicted segment that overlaps it most."""
    errors = []
    for t_start, t_end in truth:
        overlaps = [max(0.0, min(t_end, p_end) - max(t_start, p_start)) for p_start, p_end in predicted]
        if overlaps and max(overlaps) > 0:
            p_start, p_end = predicted[int(np.argmax(overlaps))]
            errors += [abs(p_start - t_start), abs(p_end - t_end)]
    return errors


def boundary_errors(predicted: list[tuple[float, float]], truth: list[tuple[float, float]]) -> dict[str, float]:
    """How well predicted (start, end) segments match the true ones: counts, and the mean and max boundary error
    over matched pairs (see :func:`pair_boundary_errors`; NaN when nothing matched)."""
    errors = pair_boundary_errors(predicted, truth)
    return {
        "n_predicted": float(len(predicted)),
        "n_true": float(len(truth)),
        "count_correct": float(len(predicted) == len(truth)),
        "matched": float(len(errors) // 2),
        "mean_boundary_error_s": float(np.mean(errors)) if errors else float("nan"),
        "max_boundary_error_s": float(np.max(errors)) if errors else float("nan"),
    }
