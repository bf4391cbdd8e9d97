"""Sentence segmentation of signed video from motion energy inside the signer crop.

SONAR ASL turns one clip into one sentence embedding, so a long video must be cut into sentence-sized pieces
before it is encoded. Signers drop or still their hands between sentences; inside the signer crop that shows up
as a stretch of low frame-to-frame change. :class:`MotionSegmenter` watches that signal one sampled frame at a
time (online, so the same code serves a file and a live camera) and closes a segment when the hands have been
still for `min_rest_s`, when it reaches `max_duration_s` (then it is cut at its quietest moment in its last
third: a signer who never rests still gets captions every few seconds, which is the fixed-window fallback), or
when the input ends. `method="fixed"` cuts plain windows of `window_s` instead.

Energy (:func:`motion_energy`): each crop becomes a 16x16 grey thumbnail divided by its mean brightness (so a
camera's global gain changes and flicker cancel out), and the energy is the mean absolute difference to the
thumbnail `lag` samples earlier, in percent of the mean brightness. The coarse thumbnail averages camera noise
away while a moving hand still changes several cells. The threshold between "moving" and "resting" adapts to
the video: a low quantile of recent energies gives the resting level, a high one the signing level; the threshold
sits `threshold_ratio` of the way between them, but at least `rest_factor` times the resting level (the
energy of camera noise fluctuates in proportion to its mean) and never below `min_threshold`.
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


class MotionSegmenter:
    """Online segmentation: :meth:`push` one sample (time, crop) at a time, get the segments it closes.

    Samples are numbered from 0 in the order pushed. A segment is reported once its end is certain: for a rest,
    `min_rest_s` after the movement stopped (plus one sample of smoothing delay).
    """

    def __init__(self, config: SegmentationConfig = SegmentationConfig()):
        self.config = config
        self._thumbs: deque[np.ndarray] = deque(maxlen=config.lag)
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
        thumb = thumbnail(crop_rgb, self.config.thumb_size)
        # Compared with the sample `lag` earlier (the first few samples: with the oldest there is).
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
