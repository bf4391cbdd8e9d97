"""Long synthetic videos: one signer signs several sentences in a row, resting the hands between them.

They carry ground-truth sentence times, so caption segmentation can be measured (segment count, boundary error
in seconds) and caption quality scored per sentence. Each sentence is planned like a corpus clip
(:func:`plan_performance`), then all of them share the first one's look (position, shirt, background, camera
noise stream) and are laid end to end with a rest of `gap_s` between the end of one sentence's movement and the
start of the next. Frames are rendered one at a time, so a long video is never held in memory.

Ground truth of a sentence: from the first frame its hands leave the rest position (start of its first sign's
transition) to the frame they are back at rest (`RETURN_FRAMES` after its last sign), in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt.data.synth.corpus import write_clip
from slt.data.synth.domains import DomainSpec, get_domain
from slt.data.synth.grammar import Grammar, Sentence
from slt.data.synth.render import (
    RETURN_FRAMES,
    Performance,
    draw_frame,
    hands_at,
    plan_performance,
    signer_backdrop,
)
from slt.errors import CorpusConfigError

LONG_MANIFEST = "long.jsonl"


@dataclass(frozen=True)
class LongPerformance:
    """Several sentences signed in a row: per-sentence performances (shared look) and where each starts."""

    sentences: tuple[Sentence, ...]
    parts: tuple[Performance, ...]  # one per sentence, frames counted from the part's own start
    offsets: tuple[int, ...]  # first frame of each part in the long video
    n_frames: int
    fps: float

    def segments(self) -> list[dict]:
        """Ground truth: one dict per sentence with start_s/end_s (hands leave rest / are back at rest) and text."""
        out = []
        for sentence, part, offset in zip(self.sentences, self.parts, self.offsets, strict=True):
            start = offset + part.word_spans[0][0]
            end = offset + part.word_spans[-1][1] + RETURN_FRAMES
            out.append({"start_s": start / self.fps, "end_s": end / self.fps, "text": sentence.text,
                        "glosses": " ".join(sentence.glosses)})
        return out


def plan_long_video(sentences: list[Sentence], spec: DomainSpec, rng: np.random.Generator,
                    gap_s: tuple[float, float] = (0.8, 1.8)) -> LongPerformance:
    """Plan `sentences` signed in a row with rests of `gap_s` seconds (uniform) of still hands between them."""
    if not sentences:
        raise CorpusConfigError("a long video needs at least one sentence")
    if not 0 < gap_s[0] <= gap_s[1]:
        raise CorpusConfigError(f"gap_s must satisfy 0 < low <= high, got {gap_s}")
    parts: list[Performance] = []
    offsets: list[int] = []
    cursor = 0
    look: Performance | None = None
    for index, sentence in enumerate(sentences):
        part = plan_performance(sentence.glosses, spec, rng)
        if look is None:
            look = part
        part = dataclasses.replace(part, face_centre=look.face_centre, shirt_rgb=look.shirt_rgb,
                                   background=look.background, noise_seed=look.noise_seed)
        if index > 0:
            # The previous part ends RETURN_FRAMES after its last sign plus its own trailing rest; shift this one so
            # that the still-hands time between the two movements is the drawn gap.
            previous, previous_offset = parts[-1], offsets[-1]
            still_from = previous_offset + previous.word_spans[-1][1] + RETURN_FRAMES
            gap = int(round(rng.uniform(*gap_s) * spec.fps))
            cursor = still_from + gap - part.word_spans[0][0]
            parts[-1] = dataclasses.replace(previous, n_frames=cursor - previous_offset)
        parts.append(part)
        offsets.append(cursor)
        cursor += part.n_frames
    return LongPerformance(tuple(sentences), tuple(parts), tuple(offsets), cursor, spec.fps)


def render_long_video(long: LongPerformance, spec: DomainSpec) -> Iterator[np.ndarray]:
    """Yield the long video's RGB frames one at a time (deterministic given the plan)."""
    base, place, sleeve = signer_backdrop(long.parts[0], spec)
    rng = np.random.default_rng(long.parts[0].noise_seed)
    part = 0
    for frame in range(long.n_frames):
        while part + 1 < len(long.parts) and frame >= long.offsets[part + 1]:
            part += 1
        hands = hands_at(long.parts[part], spec, frame - long.offsets[part])
        yield draw_frame(base, place, sleeve, hands, spec, rng)


def generate_long_videos(out_dir: str | os.PathLike, domain: str | DomainSpec = "studio", n_videos: int = 10,
                         seed: int = 0, min_sentences: int = 3, max_sentences: int = 6,
                         gap_s: tuple[float, float] = (0.8, 1.8), **spec_overrides) -> Path:
    """Render `n_videos` long videos into `out_dir/videos/` and write `out_dir/long.jsonl`, one JSON object per
    video: id, video_path (relative to out_dir), fps, n_frames, domain and the ground-truth `segments`."""
    from slt.utils.io import atomic_write_text

    spec = get_domain(domain, **spec_overrides) if isinstance(domain, str) else domain.replace(**spec_overrides)
    spec.validate()
    if not 1 <= min_sentences <= max_sentences:
        raise CorpusConfigError(f"need 1 <= min_sentences <= max_sentences, got {min_sentences}..{max_sentences}")
    if n_videos < 1:
        raise CorpusConfigError(f"n_videos must be >= 1, got {n_videos}")
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    grammar = Grammar(spec.vocabulary, spec.min_words, spec.max_words)
    rows = []
    for index in range(n_videos):
        rng = np.random.default_rng([seed, 7000, index])  # per video: the output does not depend on n_videos
        count = int(rng.integers(min_sentences, max_sentences + 1))
        long = plan_long_video(grammar.sample(rng, count), spec, rng, gap_s)
        video_id = f"{spec.name}-long-{index:04d}"
        path = out_dir / "videos" / f"{video_id}.mp4"
        written = write_clip(render_long_video(long, spec), path, spec.fps, spec.frame_size)
        if written != long.n_frames:
            raise CorpusConfigError(f"{video_id}: wrote {written} frames but planned {long.n_frames}")
        rows.append({"id": video_id, "video_path": f"videos/{video_id}.mp4", "fps": spec.fps,
                     "n_frames": long.n_frames, "domain": spec.name, "segments": long.segments()})
    manifest = out_dir / LONG_MANIFEST
    atomic_write_text(manifest, "".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def read_long_manifest(path: str | os.PathLike) -> list[dict]:
    """The rows of a `long.jsonl`, video paths made absolute."""
    path = Path(path)
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise CorpusConfigError(f"cannot read long-video manifest {path}: {error}") from error
    for row in rows:
        row["video_path"] = str(path.parent / row["video_path"])
    return rows
