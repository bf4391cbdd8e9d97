"""Compare two systems on the same samples: significance, per-sample wins, buckets, n-grams, word diffs."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU

from analysis.errors import AlignmentError, AnalysisError
from analysis.metrics import SampleStats, corpus_metrics, sample_stats, sentence_scores
from analysis.ngrams import matched_ngrams, over_under
from analysis.significance import paired_tests_from_stats

__all__ = ["ComparisonReport", "compare_systems", "align_systems", "paired_significance", "word_diff"]

LENGTH_BUCKETS = (0, 5, 10, 15, 20, 30, math.inf)  # reference length in 13a tokens: (lo, hi]
SCORE_BUCKETS = tuple(range(0, 101, 10))


@dataclass
class ComparisonReport:
    """Result of :func:`compare_systems`; ``samples`` is the aligned per-sample table."""

    names: tuple[str, str]
    n: int
    corpus: dict[str, dict]
    significance: dict[str, dict]
    wins: dict[str, int | str | float]
    examples: dict[str, list[dict]]
    length_buckets: list[dict]
    score_buckets: list[dict]
    ngrams: dict[str, dict]
    samples: pd.DataFrame = field(repr=False)

    def to_dict(self, max_samples: int | None = None) -> dict:
        """JSON-ready dict; ``max_samples`` limits the per-sample rows (None: all)."""
        samples = self.samples if max_samples is None else self.samples.head(max_samples)
        return {
            "names": list(self.names), "n": self.n, "corpus": self.corpus, "significance": self.significance,
            "wins": self.wins, "examples": self.examples, "length_buckets": self.length_buckets,
            "score_buckets": self.score_buckets, "ngrams": self.ngrams,
            "samples": samples.replace({np.nan: None}).to_dict("records"),
        }


def align_systems(df_a: pd.DataFrame, df_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair rows of two predictions tables: by ``id`` when both have the same unique ids, else by position.

    Raises :class:`AlignmentError` when ids differ or the paired references are not the same sentences.
    """
    ids_a, ids_b = df_a["id"].astype(str), df_b["id"].astype(str)
    if ids_a.is_unique and ids_b.is_unique and set(ids_a) == set(ids_b):
        df_b = df_b.set_index(ids_b).loc[ids_a].reset_index(drop=True)
    elif len(df_a) != len(df_b):
        only_a = sorted(set(ids_a) - set(ids_b))[:5]
        only_b = sorted(set(ids_b) - set(ids_a))[:5]
        raise AlignmentError(
            f"The systems cover different samples: {len(df_a)} vs {len(df_b)} rows; ids only in the first: "
            f"{only_a}, only in the second: {only_b}. Compare predictions of the same test set."
        )
    elif not ids_a.is_unique or not ids_b.is_unique:
        pass  # positional pairing; the reference check below guards it
    elif set(ids_a) != set(ids_b):
        raise AlignmentError(
            f"The systems have the same number of rows but different ids (e.g. {sorted(set(ids_a) - set(ids_b))[:3]} "
            f"vs {sorted(set(ids_b) - set(ids_a))[:3]})."
        )
    df_a, df_b = df_a.reset_index(drop=True), df_b.reset_index(drop=True)
    norm = lambda s: s.astype(str).str.split().str.join(" ")  # noqa: E731 - whitespace-insensitive equality
    differ = np.flatnonzero((norm(df_a["reference"]) != norm(df_b["reference"])).to_numpy())
    if len(differ):
        i = int(differ[0])
        raise AlignmentError(
            f"{len(differ)} paired samples have different references (first: id {df_a['id'][i]!r}: "
            f"{df_a['reference'][i][:60]!r} vs {df_b['reference'][i][:60]!r}); the files are not the same test set."
        )
    return df_a, df_b


def paired_significance(
    references: Sequence[str], hyps_a: Sequence[str], hyps_b: Sequence[str], test: str = "bs", n_samples: int = 0
) -> dict[str, dict]:
    """Paired test of system B against baseline A for BLEU and chrF2, equal to
    ``sacrebleu REF -i A B -m bleu chrf --paired-bs`` (``test="bs"``) or ``--paired-ar`` (``"ar"``).

    Returns ``{"BLEU": {...}, "chrF2": {...}}``; see :func:`analysis.significance.paired_tests_from_stats`.
    """
    if not (len(references) == len(hyps_a) == len(hyps_b)):
        raise AlignmentError(f"Need one reference per hypothesis: {len(references)}, {len(hyps_a)}, {len(hyps_b)}.")
    frame = lambda hyps: pd.DataFrame({"reference": list(references), "prediction": list(hyps)})  # noqa: E731
    return paired_tests_from_stats(sample_stats(frame(hyps_a)), sample_stats(frame(hyps_b)), test, n_samples)


def _opt(x) -> float | None:
    return None if x is None else float(x)


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff turning ``a`` into ``b``: ``("equal"|"delete"|"insert", text)`` pieces in order."""
    wa, wb = a.split(), b.split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", " ".join(wa[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(("delete", " ".join(wa[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("insert", " ".join(wb[j1:j2])))
    return out


def _bucket_label(lo: float, hi: float) -> str:
    return f"{int(lo) + 1}+" if math.isinf(hi) else f"{int(lo) + 1}-{int(hi)}"


def _length_buckets(samples: pd.DataFrame) -> list[dict]:
    rows = []
    bleu = BLEU()
    for lo, hi in zip(LENGTH_BUCKETS[:-1], LENGTH_BUCKETS[1:]):
        part = samples[(samples["ref_len"] > lo) & (samples["ref_len"] <= hi)]
        if lo == 0:  # empty references belong to the shortest bucket
            part = samples[samples["ref_len"] <= hi]
        if part.empty:
            continue
        refs = [part["reference"].tolist()]
        rows.append({
            "bucket": _bucket_label(lo, hi), "count": len(part),
            "bleu_a": bleu.corpus_score(part["prediction_a"].tolist(), refs).score,
            "bleu_b": bleu.corpus_score(part["prediction_b"].tolist(), refs).score,
            "sentence_bleu_a": float(part["bleu_a"].mean()), "sentence_bleu_b": float(part["bleu_b"].mean()),
        })
    return rows


def _score_buckets(samples: pd.DataFrame) -> list[dict]:
    edges = np.array(SCORE_BUCKETS, dtype=float)
    edges[-1] = 100.0 + 1e-9  # a perfect 100 falls in the last bucket
    hist_a, _ = np.histogram(samples["bleu_a"], bins=edges)
    hist_b, _ = np.histogram(samples["bleu_b"], bins=edges)
    return [{"bucket": f"{lo}-{hi}", "count_a": int(a), "count_b": int(b)}
            for lo, hi, a, b in zip(SCORE_BUCKETS[:-1], SCORE_BUCKETS[1:], hist_a, hist_b)]


def compare_systems(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    names: tuple[str, str] = ("A", "B"),
    tests: Sequence[str] = ("bs", "ar"),
    n_bs: int = 1000,
    n_ar: int = 10000,
    by: str = "bleu",
    tie_margin: float = 0.0,
    top_examples: int = 10,
    bootstrap: int = 1000,
    stats_a: SampleStats | None = None,
) -> ComparisonReport:
    """Compare system B against baseline A on the same samples (aligned by id, see :func:`align_systems`).

    ``by`` picks the per-sample score for wins ("bleu" sentence BLEU or "chrf"); a sample is a tie
    when the scores differ by at most ``tie_margin``. Significance: sacrebleu's paired bootstrap / approximate
    randomisation (same p-values as its CLI, see :mod:`analysis.significance`).
    """
    if names[0] == names[1]:
        raise AnalysisError(f"The two systems need different names, got {names[0]!r} twice.")
    if by not in ("bleu", "chrf"):
        raise AnalysisError(f"Per-sample comparison is by 'bleu' or 'chrf', not {by!r}.")
    df_a, df_b = align_systems(df_a, df_b)
    # Each text is read once for every score below (``stats_a`` lets a caller that has A's reuse them).
    stats_a, stats_b = stats_a if stats_a is not None else sample_stats(df_a), sample_stats(df_b)
    sa, sb = sentence_scores(df_a, stats_a), sentence_scores(df_b, stats_b)
    samples = pd.DataFrame({
        "id": sa["id"], "reference": sa["reference"],
        "prediction_a": sa["prediction"], "prediction_b": sb["prediction"],
        "bleu_a": sa["sentence_bleu"], "bleu_b": sb["sentence_bleu"], "chrf_a": sa["sentence_chrf"],
        "chrf_b": sb["sentence_chrf"], "ref_len": sa["ref_len"], "len_a": sa["hyp_len"], "len_b": sb["hyp_len"],
    })
    samples["delta"] = samples[f"{by}_b"] - samples[f"{by}_a"]
    wins_b = int((samples["delta"] > tie_margin).sum())
    wins_a = int((samples["delta"] < -tie_margin).sum())
    wins = {"by": f"sentence_{by}", "tie_margin": tie_margin, f"{names[0]}_wins": wins_a,
            f"{names[1]}_wins": wins_b, "ties": len(samples) - wins_a - wins_b}

    def examples(rows: pd.DataFrame) -> list[dict]:
        out = rows.head(top_examples).replace({np.nan: None}).to_dict("records")
        for r in out:
            r["diff"] = [list(p) for p in word_diff(r["prediction_a"], r["prediction_b"])]
        return out

    ranked = samples.sort_values("delta", kind="stable")
    refs = samples["reference"].tolist()
    pa, pb = samples["prediction_a"].tolist(), samples["prediction_b"].tolist()
    sig = {t: paired_tests_from_stats(stats_a, stats_b, t, n_bs if t == "bs" else n_ar) for t in tests}
    return ComparisonReport(
        names=tuple(names), n=len(samples),
        corpus={names[0]: corpus_metrics(df_a, bootstrap, stats=stats_a),
                names[1]: corpus_metrics(df_b, bootstrap, stats=stats_b)},
        significance=sig, wins=wins,
        examples={f"{names[0]}_better": examples(ranked[ranked["delta"] < -tie_margin]),
                  f"{names[1]}_better": examples(ranked[ranked["delta"] > tie_margin].iloc[::-1])},
        length_buckets=_length_buckets(samples), score_buckets=_score_buckets(samples),
        ngrams={names[0]: over_under(pa, refs), names[1]: over_under(pb, refs),
                "matched": matched_ngrams(pa, pb, refs)},
        samples=samples,
    )
