"""Live captions from a camera: frames arrive one at a time, captions come out as each sentence ends.

A :class:`LiveCaptionSession` belongs to one visitor (or one file played as a camera) and shares the process's one
engine with every other session. It keeps the signer box up to date by running the face detector on a frame every
`redetect_s` seconds (the box is the mean of the last few detections, so a missed face or a jittery one does not
make the crop jump), samples the frames onto the model's 12.5-per-second grid by their timestamps (a camera's
rate varies; a late frame fills the ticks it missed, a long stall restarts the grid), crops them and feeds a
:class:`slt.captions.CaptionStream`, which runs SignHiera on each clip of the open sentence as soon as its frames
are in and translates the sentence when the hands rest (or at the maximum duration).

Each caption carries `latency_s`: wall seconds from the moment the frame at the end of the sentence was
captured to the caption being ready (it includes the `min_rest_s` wait that proves the sentence ended).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from slt.captions import Caption, CaptionStream
from slt.engine import TranslationEngine
from slt.errors import InvalidArgumentError
from slt.video.clips import crop_square
from slt.video.detect import detect_faces, downscale
from slt.video.segment import SegmentationConfig
from slt.video.signer_box import IntBox, center_box, expand_face_box, make_square

MAX_FILL_S = 1.0  # a gap between frames longer than this restarts the sampling grid instead of repeating a frame


class LiveCaptionSession:
    """Frames in (RGB by default, any size), captions out. Not thread-safe: one session per stream."""

    def __init__(self, engine: TranslationEngine, languages: Sequence[str] = ("eng_Latn",), encoder: str | None = None,
                 segmentation: SegmentationConfig | None = None, preprocess=None, decoding=None,
                 redetect_s: float = 2.0, keep_features: bool = False):
        if not redetect_s > 0:
            raise InvalidArgumentError(f"redetect_s must be positive, got {redetect_s!r}")
        self.stream = CaptionStream(engine, languages, encoder, segmentation, preprocess, decoding, keep_features)
        self.config = self.stream.config
        self.redetect_s = redetect_s
        self.box: IntBox | None = None
        self.faces_seen = 0
        self.detections = 0
        self._faces: deque[tuple[float, float, float, float]] = deque(maxlen=3)
        self._next_detect: float | None = None
        self._next_sample: float | None = None
        self._period = self.config.sampling_rate / self.config.target_fps
        self._clock0 = time.monotonic()
        self.frames = 0

    @property
    def captions(self) -> list[Caption]:
        return self.stream.captions

    def push_frame(self, frame: np.ndarray, time_s: float | None = None, wall_s: float | None = None,
                   bgr: bool = False) -> list[Caption]:
        """Add a camera frame taken at `time_s` (seconds, increasing; default: now on this session's clock) and
        captured at monotonic wall time `wall_s` (default: now). Returns the captions completed by it."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InvalidArgumentError("a camera frame must be an H x W x 3 uint8 image")
        now = time.monotonic()
        time_s = now - self._clock0 if time_s is None else float(time_s)
        frame_bgr = frame if bgr else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        self.frames += 1
        if self._next_detect is None or time_s >= self._next_detect:
            self._detect(frame_bgr)
            self._next_detect = time_s + self.redetect_s
        if self._next_sample is None or time_s - self._next_sample > MAX_FILL_S:
            self._next_sample = time_s
        if time_s + 1e-9 < self._next_sample:
            return []
        crop = crop_square(frame_bgr, self.box, self.config.size)
        captions: list[Caption] = []
        while self._next_sample <= time_s + 1e-9:  # a late frame also stands in for the ticks it missed
            captions += self.stream.push(self._next_sample, crop, wall_s)
            self._next_sample += self._period
        return captions

    def finish(self) -> list[Caption]:
        """The camera stopped: caption the sentence still open."""
        return self.stream.finish()

    def _detect(self, frame_bgr: np.ndarray) -> None:
        config = self.config
        small, fx, fy = downscale(frame_bgr, config.detect_max_side)
        faces = detect_faces(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), fx, fy, config.detector, config.upsample,
                             self.stream.engine.device)
        self.detections += 1
        if faces:
            self.faces_seen += 1
            self._faces.append(max(faces, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])))  # the nearest person
            mean_face = tuple(np.mean(self._faces, axis=0).tolist())
            self.box = make_square(expand_face_box(mean_face))
        elif self.box is None:  # nobody seen yet: the centre of the picture until a face shows up
            height, width = frame_bgr.shape[:2]
            self.box = center_box(width, height)


def play_file(session: LiveCaptionSession, video, realtime: bool = True, max_lag_s: float = 0.5,
              on_caption=None) -> dict:
    """Feed a video file to a session as if it were a camera: frames at their timestamps (with `realtime`, at the
    pace of the clock, dropping frames when processing falls more than `max_lag_s` behind, as a camera would).
    Returns counts: frames pushed and dropped."""
    from slt.video.decode import iter_frames, probe_video

    fps = probe_video(video, verify_count=False).fps
    start = time.monotonic()
    pushed = dropped = 0
    for index, frame in iter_frames(video):
        time_s = index / fps
        wall = start + time_s
        if realtime:
            lag = time.monotonic() - wall
            if lag < 0:
                time.sleep(-lag)
            elif lag > max_lag_s:
                dropped += 1
                continue
        for caption in session.push_frame(frame, time_s=time_s, wall_s=wall if realtime else None, bgr=True):
            if on_caption:
                on_caption(caption)
        pushed += 1
    for caption in session.finish():
        if on_caption:
            on_caption(caption)
    return {"frames": pushed, "dropped": dropped, "fps": fps}
