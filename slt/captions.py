"""Timed captions: a long signed video (or a live camera) -> one translated sentence per segment, with times.

SONAR ASL encodes one sentence per clip, so the video is cut into sentence-sized segments first
(:mod:`slt.video.segment`: still hands between sentences) and each segment is translated like a clip.

    sampled crops (12.5 per second, signer box) --MotionSegmenter--> segments
    each segment's crops --SignHiera clips--> features [N, D] --encoder--> [1, 1024] --decoder--> text per language

:class:`CaptionStream` does this online, one sampled crop at a time, for both a file (:func:`caption_video`) and a
camera (:mod:`slt.live`). SignHiera features are computed incrementally: a clip of the open segment runs as soon
as its frames have arrived (so most of the work is done while the person signs) and is reused when the segment
closes; clips are cached by their first sample, so a clip shared by two segments (after a max-duration cut) runs
once. Each segment's clips start at its own first frame rather than on a grid fixed for the whole video: a
grid would quantise sentence boundaries to the clip hop (5 s for the released 128-frame clips) and give sentences
clips that straddle two of them; per segment, every frame still goes through SignHiera about as often as in the
whole-video pass (clips overlap by half either way).

Memory is bounded by the longest segment, not the video: only the crops a segment may still need are kept
(at most `max_duration_s` plus context), and the file is decoded streaming, so a 10-minute video holds no more
than one clip-length video does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from slt.engine import TranslationEngine, _check_cancel
from slt.errors import InvalidArgumentError, ModelUnavailableError
from slt.video import fit_preprocess_to_model
from slt.video.clips import (
    build_clips,
    clip_frame_indices,
    clip_padding,
    join_clip_features,
)
from slt.video.segment import MotionSegmenter, Segment, SegmentationConfig

PROGRESS_MIN_S = 20.0  # videos longer than this get a progress bar in the console


@dataclass
class Caption:
    """One translated segment. `latency_s` (live only): wall seconds from the end of the sentence to its caption."""

    index: int
    start_s: float
    end_s: float
    texts: dict[str, str]  # language -> text
    reason: str  # why the segment ended: "rest", "max_duration", "end", "window"
    n_features: int = 0
    first_sample: int = 0  # the samples translated (the segment plus context), inclusive
    last_sample: int = 0
    latency_s: float | None = None
    features: torch.Tensor | None = field(default=None, repr=False)  # [n_features, D], kept when asked (tests)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("features")
        return data


@dataclass
class CaptionResult:
    """Every caption of a video, plus what produced them."""

    video: str
    model_set: str
    encoder: str
    languages: list[str]
    duration_s: float
    box: tuple[int, int, int, int]
    captions: list[Caption]
    segmentation: dict
    timings: dict[str, float]
    peak_crops: int = 0  # most sampled crops held at once (the memory bound, in frames)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["captions"] = [c.to_dict() for c in self.captions]
        data["box"] = list(self.box)
        return data

    def to_srt(self, language: str) -> str:
        return captions_to_srt(self.captions, language)

    def to_vtt(self, language: str) -> str:
        return captions_to_vtt(self.captions, language)


# ---------------------------------------------------------------------------------------------------- formats
def captions_to_srt(captions: Sequence[Caption], language: str) -> str:
    """SubRip text (numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`), composed by the `srt` library."""
    import datetime

    import srt

    subtitles = [srt.Subtitle(i + 1, datetime.timedelta(seconds=c.start_s), datetime.timedelta(seconds=c.end_s),
                              _cue_text(c, language)) for i, c in enumerate(captions)]
    return srt.compose(subtitles, reindex=False)


def captions_to_vtt(captions: Sequence[Caption], language: str) -> str:
    """WebVTT text (`WEBVTT` header, `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues), written by the `webvtt-py` library.
    Cue text is escaped as the WebVTT spec asks (`&`, `<`, `>` as character references)."""
    import webvtt

    document = webvtt.WebVTT(captions=[
        webvtt.Caption(start=_vtt_time(c.start_s), end=_vtt_time(c.end_s), identifier=str(i + 1),
                       text=_cue_text(c, language).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        for i, c in enumerate(captions)])
    return document.content


def _cue_text(caption: Caption, language: str) -> str:
    if language not in caption.texts:
        raise InvalidArgumentError(f"no {language} text in the captions; they have {', '.join(caption.texts)}")
    # A cue must not be empty nor contain a blank line (both end a cue) nor "-->"; the decoder may return "".
    text = " ".join(caption.texts[language].split()).replace("-->", "->")
    return text or "…"


def _vtt_time(seconds: float) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


# ---------------------------------------------------------------------------------------------------- stream
class CaptionStream:
    """Online captions from sampled signer crops: :meth:`push` each crop with its time, :meth:`finish` at the end.

    `clip_frames`, `mean` and `std` come from the (model-fitted) preprocessing settings; crops must be
    `size x size` uint8 RGB as the model expects. Thread-compatible, not thread-safe: one stream per video/visitor
    (the engine it calls is shared and safe).
    """

    def __init__(self, engine: TranslationEngine, languages: Sequence[str] = ("eng_Latn",), encoder: str | None = None,
                 segmentation: SegmentationConfig | None = None, preprocess=None, decoding=None,
                 keep_features: bool = False):
        self.engine = engine
        self.languages = engine.validate_languages(languages)
        self.encoder = encoder or engine.encoder_names[0]
        if self.encoder not in engine.model_set.encoders:
            raise ModelUnavailableError(
                f"unknown encoder '{self.encoder}'; this model set has: {', '.join(engine.encoder_names)}")
        # The encoder's SignHiera: the set's, or its own for a trained system (model-set entry with a SignHiera).
        self._signhiera = engine.signhiera_key(self.encoder)
        self.config = fit_preprocess_to_model(preprocess or engine.preprocess_config,
                                              engine.signhiera_model(self._signhiera).config)
        self.segmentation = segmentation or SegmentationConfig()
        self.decoding = decoding
        self.keep_features = keep_features
        self.segmenter = MotionSegmenter(self.segmentation)
        self.clip_frames = self.config.clip_frames
        self.hop = self.config.stride
        self.captions: list[Caption] = []
        self._crops: dict[int, np.ndarray] = {}  # sample -> uint8 RGB crop (only samples a segment may still use)
        self._walls: dict[int, float] = {}  # sample -> wall-clock arrival (for latency)
        self._clip_cache: dict[int, torch.Tensor] = {}  # first sample of a clip window -> its features [T', D]
        self.peak_crops = 0
        self.clips_run = 0  # SignHiera clips computed (each window once)
        self.seconds = {"signhiera": 0.0, "encode+decode": 0.0}

    @property
    def n_samples(self) -> int:
        return self.segmenter.n_samples

    def push(self, time_s: float, crop: np.ndarray, wall_s: float | None = None) -> list[Caption]:
        """Add the next sampled crop; returns the captions of the segments it closed (usually none)."""
        size = self.config.size
        if crop.shape != (size, size, 3) or crop.dtype != np.uint8:
            raise InvalidArgumentError(f"crops must be {size}x{size}x3 uint8 RGB, got {crop.shape} {crop.dtype}")
        sample = self.segmenter.n_samples
        self._crops[sample] = crop
        self._walls[sample] = time.monotonic() if wall_s is None else wall_s
        self.peak_crops = max(self.peak_crops, len(self._crops))
        captions = [self._caption(segment) for segment in self.segmenter.push(time_s, crop)]
        self._run_ready_clips()
        self._forget_old()
        return captions

    def finish(self) -> list[Caption]:
        """The input ended: caption the segment still open."""
        captions = [self._caption(segment) for segment in self.segmenter.finish()]
        self._crops.clear()
        self._clip_cache.clear()
        return captions

    # ------------------------------------------------------------------ internals
    def _context_start(self, first: int) -> int:
        """The earliest kept sample within context_s before `first`."""
        start_time = self.segmenter.time_of(first) - self.segmentation.context_s
        sample = first
        while sample - 1 in self._crops and self.segmenter.time_of(sample - 1) >= start_time - 1e-9:
            sample -= 1
        return sample

    def _context_end(self, last: int) -> int:
        end_time = self.segmenter.time_of(last) + self.segmentation.context_s
        sample = last
        while sample + 1 in self._crops and self.segmenter.time_of(sample + 1) <= end_time + 1e-9:
            sample += 1
        return sample

    def _run_clips(self, windows: list[np.ndarray]) -> list[torch.Tensor]:
        """SignHiera on windows of absolute sample indices, in the engine's batch size -> features [T/2, D] each.
        Complete windows (no padding) are cached: they are the same in every segment that contains them."""
        rows: list[torch.Tensor] = []
        batch = self.engine.clip_batch_size
        for first in range(0, len(windows), batch):
            part = windows[first:first + batch]
            clock = time.perf_counter()
            clips = build_clips(self._crops, part, self.config.mean, self.config.std)  # [b, 3, T, H, W]
            features = self.engine.clip_features(clips, [clip_padding(w) for w in part],
                                                 signhiera=self._signhiera)  # [b, T/2, D]
            self.seconds["signhiera"] += time.perf_counter() - clock
            self.clips_run += len(part)
            for window, row in zip(part, features, strict=True):
                if clip_padding(window) == 0:
                    self._clip_cache[int(window[0])] = row
                rows.append(row)
        return rows

    def _run_ready_clips(self) -> None:
        """While a segment is open, run its clips whose frames have all arrived (incremental features)."""
        opened = self.segmenter.open_first
        if opened is None:
            return
        start = self._context_start(opened)
        while start + self.clip_frames <= self.segmenter.n_samples:
            if start not in self._clip_cache:
                self._run_clips([np.arange(start, start + self.clip_frames)])
            start += self.hop

    def _segment_features(self, origin: int, end: int) -> torch.Tensor:
        """Features [N, D] of samples origin..end (inclusive) as one clip-cut sequence, reusing cached clips."""
        windows = [origin + w for w in clip_frame_indices(end - origin + 1, 1.0, self.clip_frames, 1, 1.0, self.hop)]
        todo = [i for i, w in enumerate(windows) if clip_padding(w) > 0 or int(w[0]) not in self._clip_cache]
        fresh = dict(zip(todo, self._run_clips([windows[i] for i in todo]), strict=True))
        per_clip = torch.stack([fresh[i] if i in fresh else self._clip_cache[int(w[0])]
                                for i, w in enumerate(windows)])  # [n_clips, T/2, D]
        return join_clip_features(per_clip, [clip_padding(w) for w in windows])

    def _caption(self, segment: Segment) -> Caption:
        origin, end = self._context_start(segment.first), self._context_end(segment.last)
        features = self._segment_features(origin, end)
        clock = time.perf_counter()
        embedding = self.engine.embed([features], self.encoder)  # [1, 1024]
        texts = self.engine.decode(embedding, self.languages, self.decoding)
        self.seconds["encode+decode"] += time.perf_counter() - clock
        wall = self._walls.get(min(segment.end_sample, self.segmenter.n_samples - 1))
        latency = None if wall is None else time.monotonic() - wall
        caption = Caption(len(self.captions), round(segment.start_s, 3), round(segment.end_s, 3),
                          {lang: texts[lang][0] for lang in self.languages}, segment.reason, int(features.shape[0]),
                          origin, end, latency, features if self.keep_features else None)
        self.captions.append(caption)
        return caption

    def _forget_old(self) -> None:
        """Drop crops and cached clips that no segment can use any more (this is what bounds memory)."""
        segmenter, config = self.segmenter, self.segmentation
        now = segmenter.n_samples - 1
        if segmenter.open_first is not None:
            keep_from = self._context_start(segmenter.open_first)
        else:
            # A segment may still open with a run that began up to min_active_s (+ smoothing and lag) ago.
            horizon = config.min_active_s + config.context_s
            keep_from = now
            while keep_from - 1 in self._crops and segmenter.time_of(keep_from - 1) >= segmenter.time_of(now) - horizon:
                keep_from -= 1
            keep_from = max(0, keep_from - config.lag - 3)
        for sample in [s for s in self._crops if s < keep_from]:
            del self._crops[sample]
            self._walls.pop(sample, None)
        for start in [s for s in self._clip_cache if s < keep_from]:
            del self._clip_cache[start]


# ---------------------------------------------------------------------------------------------------- files
def caption_video(engine: TranslationEngine, video: str | Path, languages: Sequence[str] = ("eng_Latn",),
                  encoder: str | None = None, segmentation: SegmentationConfig | None = None, preprocess=None,
                  decoding=None, progress: bool | Callable[[float], None] = False,
                  cancel: threading.Event | None = None, keep_features: bool = False) -> CaptionResult:
    """Caption a whole video file: pass 1 finds the signer box (face detection, as for a clip), pass 2 decodes
    again, samples frames at the model's rate, crops them and streams them through a :class:`CaptionStream`.

    `progress=True` shows a tqdm bar on the console for videos longer than PROGRESS_MIN_S; a callable gets the
    fraction done. Raises the preprocessing errors of a clip (unreadable, too short/long, no signer).
    """
    from slt.video.pipeline import locate_signer

    started = time.perf_counter()
    stream = CaptionStream(engine, languages, encoder, segmentation, preprocess, decoding, keep_features)
    config = stream.config
    located = locate_signer(video, config, engine.device, should_stop=cancel.is_set if cancel else None)
    info = located.info
    located_s = time.perf_counter() - started
    bar = None
    if progress is True and info.duration_s > PROGRESS_MIN_S:
        from tqdm import tqdm

        bar = tqdm(total=info.n_frames, unit="frame", desc=f"captions {Path(video).name}", leave=False)
    done = 0
    for index, time_s, crop in iter_sampled_crops(video, located.box, info.fps, info.n_frames, config):
        _check_cancel(cancel)
        stream.push(time_s, crop)
        if bar is not None:
            bar.update(index + 1 - done)
        elif callable(progress):
            progress((index + 1) / max(1, info.n_frames))
        done = index + 1
    stream.finish()
    if bar is not None:
        bar.close()
    timings = {"locate_signer": located_s, **{k: round(v, 4) for k, v in stream.seconds.items()},
               "total": time.perf_counter() - started}
    return CaptionResult(str(video), engine.model_set.name, stream.encoder, stream.languages, info.duration_s,
                         tuple(int(v) for v in located.box), stream.captions, asdict(stream.segmentation), timings,
                         stream.peak_crops)


def segment_video(video: str | Path, segmentation: SegmentationConfig | None = None, preprocess=None,
                  device=None) -> list[Segment]:
    """Only the segmentation of a file (no models): the same signer box, sampling and segmenter as captioning.
    `preprocess` should match the model's crop size (the energy is measured on a 16x16 thumbnail of the crop, so
    the size matters little)."""
    from slt.video import PreprocessConfig
    from slt.video.pipeline import locate_signer

    config = preprocess or PreprocessConfig()
    located = locate_signer(video, config, device)
    segmenter = MotionSegmenter(segmentation or SegmentationConfig())
    segments: list[Segment] = []
    for _, time_s, crop in iter_sampled_crops(video, located.box, located.info.fps, located.info.n_frames, config):
        segments += segmenter.push(time_s, crop)
    return segments + segmenter.finish()


def iter_sampled_crops(video: str | Path, box, fps: float, n_frames: int, config):
    """(source frame index, sample time in s, uint8 RGB crop) of every frame the model samples, decoded streaming:
    one sample every `sampling_rate` frames at `target_fps` (several per frame when the video's rate is lower)."""
    from slt.video.clips import crop_square
    from slt.video.decode import iter_frames

    step = config.sampling_rate * fps / config.target_fps  # source frames between two samples
    period = config.sampling_rate / config.target_fps  # seconds between two samples
    sample = 0
    for index, frame in iter_frames(video, max_frames=n_frames):
        if sample * step < index + 1 - 1e-6:  # at least one sample falls on this frame
            crop = crop_square(frame, box, config.size)
            while sample * step < index + 1 - 1e-6:
                yield index, sample * period, crop
                sample += 1


def crops_bound(segmentation: SegmentationConfig, config) -> int:
    """Most crops a :class:`CaptionStream` may hold at once: the longest segment plus context on both sides plus
    the wait for a rest, in samples (independent of the video's length)."""
    rate = config.target_fps / config.sampling_rate
    seconds = segmentation.max_duration_s + 2 * segmentation.context_s + segmentation.min_rest_s + \
        segmentation.min_active_s + (segmentation.window_s if segmentation.method == "fixed" else 0.0)
    return int(math.ceil(seconds * rate)) + segmentation.lag + 8
