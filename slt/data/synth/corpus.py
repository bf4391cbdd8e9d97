"""Plan and write a synthetic corpus: videos plus train/val/test manifests and a corpus.json.

Split policy (a documented choice): splits never share a *clip*; by default ("clip") they may share a
*sentence*, each occurrence rendered afresh (own timing, position, shirt, background, noise), as in
corpora where common sentences recur. With "sentence", val and test sentences never occur in train (every
gloss they use still does), which measures generalisation to new combinations of known signs.

Every clip has its own random generator seeded from (seed, split, index), so the output does not depend
on the number of workers, and the same seed gives byte-identical frames.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from slt.data.synth.domains import DomainSpec, get_domain
from slt.data.synth.grammar import Grammar, Sentence
from slt.data.synth.lexicon import gesture_for
from slt.data.synth.render import plan_performance, render_performance
from slt.errors import CorpusConfigError
from slt.utils.io import atomic_write_json, atomic_write_text

SPLITS = ("train", "val", "test")
MANIFEST_HEADER = ("id", "video_path", "n_frames", "translation")
SPLIT_POLICIES = ("clip", "sentence")
FORMATS = ("tsv", "ssvp")


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: its id, split, sentence and seed."""

    id: str
    split: str
    sentence: Sentence
    seed: tuple[int, int, int]


def _sentence_pools(grammar: Grammar, rng: np.random.Generator, policy: str) -> dict[str, tuple[Sentence, ...]]:
    if policy == "clip":
        return {split: grammar.sentences for split in SPLITS}
    order = [grammar.sentences[i] for i in rng.permutation(len(grammar))]
    n_held = max(1, round(0.15 * len(order)))
    if len(order) < 3 * n_held or len(order) < 6:
        raise CorpusConfigError(
            f"split policy 'sentence' needs at least 6 distinct sentences; the grammar has {len(order)}")
    test, val, train = order[:n_held], order[n_held:2 * n_held], order[2 * n_held:]
    # A held-out sentence whose signs never occur in train could not be learned: move it to train.
    seen = {g for s in train for g in s.glosses}
    for held in (test, val):
        for sentence in list(held):
            if not set(sentence.glosses) <= seen:
                held.remove(sentence)
                train.append(sentence)
                seen |= set(sentence.glosses)
    if not test or not val:
        raise CorpusConfigError("the vocabulary is too small to hold out val/test sentences; use --split-policy clip")
    return {"train": tuple(train), "val": tuple(val), "test": tuple(test)}


def plan_corpus(spec: DomainSpec, n_train: int, n_val: int, n_test: int, seed: int,
                split_policy: str = "clip") -> dict[str, list[ClipPlan]]:
    """Which sentence each clip of each split signs (cheap: nothing is rendered)."""
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise CorpusConfigError(f"--n-{split} must be a whole number >= 0, got {n!r}")
    if n_train + n_val + n_test == 0:
        raise CorpusConfigError("nothing to generate: --n-train, --n-val and --n-test are all 0")
    if split_policy not in SPLIT_POLICIES:
        raise CorpusConfigError(f"unknown split policy {split_policy!r}; choose one of {', '.join(SPLIT_POLICIES)}")
    grammar = Grammar(spec.vocabulary, spec.min_words, spec.max_words)
    rng = np.random.default_rng([seed, 1000])
    pools = _sentence_pools(grammar, rng, split_policy)
    plans: dict[str, list[ClipPlan]] = {}
    for k, split in enumerate(SPLITS):
        sentences = grammar.sample(rng, counts[split], pools[split])
        plans[split] = [ClipPlan(f"{spec.name}-{split}-{i:05d}", split, s, (seed, k, i))
                        for i, s in enumerate(sentences)]
    return plans


def write_clip(frames, path: Path, fps: float, frame_size: tuple[int, int]) -> int:
    """Encode RGB frames through a temp file renamed at the end; returns the frame count.

    `.mp4` is written as MPEG-4 Part 2 ('mp4v', fast, for corpora); `.webm` as VP8, which browsers can play
    (the app's sample clips)."""
    path = Path(path)
    codec = "VP80" if path.suffix.lower() == ".webm" else "mp4v"
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, frame_size)
    if not writer.isOpened():
        raise CorpusConfigError(f"OpenCV cannot write a {codec} video at {tmp} (is the folder writable?)")
    n = 0
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        writer.release()
    if n == 0:
        tmp.unlink(missing_ok=True)
        raise CorpusConfigError(f"no frames were rendered for {path.name}")
    os.replace(tmp, path)
    return n


def _render_clip(job: tuple[ClipPlan, DomainSpec, str]) -> tuple[int, tuple[tuple[int, int], ...]]:
    plan, spec, path = job
    cv2.setNumThreads(1)  # parallelism comes from the worker processes
    perf = plan_performance(plan.sentence.glosses, spec, np.random.default_rng(list(plan.seed)))
    n = write_clip(render_performance(perf, spec), Path(path), spec.fps, spec.frame_size)
    if n != perf.n_frames:
        raise CorpusConfigError(f"{plan.id}: wrote {n} frames but planned {perf.n_frames}")
    return n, perf.word_spans


def _check_output_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusConfigError(f"output path {out_dir} exists and is not a folder")
    if not overwrite and out_dir.is_dir() and any(out_dir.iterdir()):
        raise CorpusConfigError(f"output folder {out_dir} is not empty; pick a new folder or pass --overwrite")


def generate_corpus(out_dir: str | os.PathLike, domain: str | DomainSpec = "studio", n_train: int = 600,
                    n_val: int = 100, n_test: int = 100, seed: int = 0, *, split_policy: str = "clip",
                    fmt: str = "tsv", workers: int = 1, overwrite: bool = False,
                    **spec_overrides) -> dict[str, Path]:
    """Render a corpus into `out_dir`; returns {split: manifest path}.

    Layout: ``videos/<id>.mp4``; with fmt="tsv" ``<split>.tsv`` (header ``id video_path n_frames
    translation``, video paths relative to out_dir); with fmt="ssvp" ``manifests/<split>.tsv`` (no header:
    ``video_name duration caption``: the clip id without extension, duration in frames; video root ``videos/``).
    Always ``corpus.json`` (settings, vocabulary, gestures) and ``<split>.glosses.tsv`` (signed glosses and their
    frame spans).
    """
    spec = get_domain(domain, **spec_overrides) if isinstance(domain, str) else domain.replace(**spec_overrides)
    spec.validate()
    if fmt not in FORMATS:
        raise CorpusConfigError(f"unknown manifest format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not 1 <= workers <= 64:
        raise CorpusConfigError(f"--workers must be in 1..64, got {workers}")
    out_dir = Path(out_dir)
    _check_output_dir(out_dir, overwrite)
    plans = plan_corpus(spec, n_train, n_val, n_test, seed, split_policy)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [(p, spec, str(out_dir / "videos" / f"{p.id}.mp4")) for split in SPLITS for p in plans[split]]
    if workers == 1:
        results = [_render_clip(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_render_clip, jobs, chunksize=4))
    by_id = {job[0].id: result for job, result in zip(jobs, results)}
    manifests = _write_manifests(out_dir, plans, by_id, fmt)
    _write_corpus_json(out_dir, spec, seed, split_policy, fmt, plans)
    return manifests


def _write_manifests(out_dir: Path, plans: dict[str, list[ClipPlan]], results: dict, fmt: str) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for split in SPLITS:
        rows, gloss_rows = [], ["id\tglosses\tspans"]
        for p in plans[split]:
            n_frames, spans = results[p.id]
            if fmt == "tsv":
                rows.append(f"{p.id}\tvideos/{p.id}.mp4\t{n_frames}\t{p.sentence.text}")
            else:
                rows.append(f"{p.id}\t{n_frames}\t{p.sentence.text}")  # ssvp_slt names carry no extension
            gloss_rows.append(f"{p.id}\t{' '.join(p.sentence.glosses)}\t{' '.join(f'{s}-{e}' for s, e in spans)}")
        if fmt == "tsv":
            path = out_dir / f"{split}.tsv"
            rows.insert(0, "\t".join(MANIFEST_HEADER))
        else:
            path = out_dir / "manifests" / f"{split}.tsv"
        atomic_write_text(path, "".join(f"{r}\n" for r in rows))
        atomic_write_text(out_dir / f"{split}.glosses.tsv", "".join(f"{r}\n" for r in gloss_rows))
        paths[split] = path
    return paths


def _write_corpus_json(out_dir: Path, spec: DomainSpec, seed: int, split_policy: str, fmt: str,
                       plans: dict[str, list[ClipPlan]]) -> None:
    grammar = Grammar(spec.vocabulary, spec.min_words, spec.max_words)
    atomic_write_json(out_dir / "corpus.json", {
        "generator": "slt.data.synth",
        "seed": seed,
        "domain": spec.name,
        "split_policy": split_policy,
        "format": fmt,
        "counts": {split: len(plans[split]) for split in SPLITS},
        "distinct_sentences": {split: len({p.sentence for p in plans[split]}) for split in SPLITS},
        "grammar_sentences": len(grammar),
        "vocab": list(spec.vocabulary),
        "gestures": {g: dataclasses.asdict(gesture_for(g)) for g in spec.vocabulary},
        "spec": dataclasses.asdict(spec),
    })
