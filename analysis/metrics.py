"""Corpus and per-sample scores: BLEU-1..4 and chrF (sacrebleu), ROUGE-L, WER/CER (jiwer), length ratio,
CIDEr-D and METEOR (where nltk's WordNet data is installed; see analysis.caption_metrics).

Every corpus metric is computed from per-sample sufficient statistics, so one pass over the text gives
corpus scores, sentence scores and bootstrap confidence intervals. Bootstrap resamples are drawn exactly
as sacrebleu draws them (same seed, same indices), so the intervals match ``sacrebleu --confidence``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU, CHRF

from analysis.caption_metrics import MetricUnavailable, cider_d, load_wordnet, meteor
from analysis.errors import AnalysisError

__all__ = ["SampleStats", "corpus_metrics", "sample_stats", "sentence_scores", "bootstrap_indices", "SACREBLEU_SEED",
           "diversity", "validation_scores"]

# sacrebleu's seed convention: SACREBLEU_SEED (default 12345); "none" means unseeded.
_SEED_ENV = os.environ.get("SACREBLEU_SEED", "12345")
SACREBLEU_SEED: int | None = None if _SEED_ENV.lower() == "none" else int(_SEED_ENV)
_MAX_ORDER = 4
# Bootstrap count matrices are built in row chunks to bound memory at ~chunk * n * 8 bytes.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class _Stat:
    """Per-sample sufficient statistics [n, d] and how to turn their sum into a score."""

    stats: np.ndarray
    score: Callable[[np.ndarray], float]


class _UnicodeWords:
    """ROUGE tokenizer: lowercase words in any script, each CJK character its own token (those scripts
    do not separate words by spaces). rouge-score's default tokenizer keeps only a-z0-9 and scores them 0."""

    _word = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\w+", re.UNICODE)

    def tokenize(self, text: str) -> list[str]:
        return self._word.findall(text.lower())


def _texts(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    for col in ("reference", "prediction"):
        if col not in df.columns:
            raise AnalysisError(f"Predictions table has no {col!r} column; load it with analysis.load_predictions.")
    if len(df) == 0:
        raise AnalysisError("No samples to score.")
    return df["reference"].astype(str).tolist(), df["prediction"].astype(str).tolist()


def _bleu_stats(hyps: list[str], refs: list[str]) -> np.ndarray:
    """[n, 2 + 2*4]: hyp_len, ref_len, matches_1..4, totals_1..4 (sacrebleu 13a tokenisation)."""
    return np.asarray(BLEU()._extract_corpus_statistics(hyps, [refs]), dtype=np.float64)


def _bleu_order_stats(stats: np.ndarray, order: int) -> np.ndarray:
    cols = [0, 1, *range(2, 2 + order), *range(2 + _MAX_ORDER, 2 + _MAX_ORDER + order)]
    return stats[:, cols]


def _edit_stats(refs: list[str], hyps: list[str], chars: bool) -> np.ndarray:
    """[n, 2]: edit operations and reference length per sample (words or characters)."""
    out = jiwer.process_characters(refs, hyps) if chars else jiwer.process_words(refs, hyps)
    stats = np.zeros((len(refs), 2))
    for i, (ref, chunks) in enumerate(zip(out.references, out.alignments)):
        errors = 0
        for c in chunks:
            if c.type in ("substitute", "delete"):
                errors += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                errors += c.hyp_end_idx - c.hyp_start_idx
        stats[i] = (errors, len(ref))
    return stats


def _rouge_l(refs: list[str], hyps: list[str]) -> np.ndarray:
    # Imported here: rouge-score pulls in nltk and scipy (~3 s), which only ROUGE needs.
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_UnicodeWords())
    return np.array([scorer.score(r, h)["rougeL"].fmeasure * 100 for r, h in zip(refs, hyps)])


def _ratio(stats: np.ndarray) -> float:
    return float(stats[0] / stats[1] * 100) if stats[1] > 0 else float("nan")


@dataclass(frozen=True)
class SampleStats:
    """Per-sample sufficient statistics of one system, extracted once and shared by every score."""

    bleu: np.ndarray  # [n, 10]: hyp_len, ref_len, matches_1..4, totals_1..4
    chrf: np.ndarray  # [n, 18]: sacrebleu chrF statistics
    rouge: np.ndarray  # [n]: ROUGE-L F1 * 100
    wer: np.ndarray  # [n, 2]: word edits, reference words
    cer: np.ndarray  # [n, 2]: character edits, reference characters
    cider: np.ndarray  # [n]: CIDEr-D (document frequencies from this corpus's references)
    meteor: np.ndarray | None  # [n]: METEOR * 100, None where WordNet is missing
    unavailable: dict[str, str]  # metric -> why it could not be computed here


def _meteor_or_reason(refs: list[str], hyps: list[str]) -> tuple[np.ndarray | None, dict[str, str]]:
    try:
        wordnet = load_wordnet()
    except MetricUnavailable as exc:
        return None, {"meteor": str(exc)}
    return meteor(hyps, [[r] for r in refs], wordnet=wordnet), {}


def sample_stats(df: pd.DataFrame) -> SampleStats:
    """Extract the statistics of every metric from a predictions table (one pass over the text)."""
    refs, hyps = _texts(df)
    meteor_scores, unavailable = _meteor_or_reason(refs, hyps)
    return SampleStats(
        bleu=_bleu_stats(hyps, refs),
        chrf=np.asarray(CHRF()._extract_corpus_statistics(hyps, [refs]), dtype=np.float64),
        rouge=_rouge_l(refs, hyps),
        wer=_edit_stats(refs, hyps, chars=False),
        cer=_edit_stats(refs, hyps, chars=True),
        cider=cider_d(hyps, [[r] for r in refs]),
        meteor=meteor_scores,
        unavailable=unavailable,
    )


def _metric_stats(st: SampleStats) -> dict[str, _Stat]:
    chrf_metric = CHRF()
    stats: dict[str, _Stat] = {}
    for order in range(1, _MAX_ORDER + 1):
        metric = BLEU(max_ngram_order=order)
        name = "bleu" if order == _MAX_ORDER else f"bleu{order}"
        stats[name] = _Stat(_bleu_order_stats(st.bleu, order),
                            lambda s, m=metric: float(m._compute_score_from_stats(s).score))
    stats["chrf"] = _Stat(st.chrf, lambda s: float(chrf_metric._compute_score_from_stats(s).score))
    stats["rougeL"] = _Stat(np.stack([st.rouge, np.ones_like(st.rouge)], axis=1), lambda s: float(s[0] / s[1]))
    stats["wer"] = _Stat(st.wer, _ratio)
    stats["cer"] = _Stat(st.cer, _ratio)
    # Sample means; CIDEr-D's bootstrap keeps the full corpus's document frequencies (only the samples resample).
    for name, values in (("cider", st.cider), ("meteor", st.meteor)):
        if values is not None:
            stats[name] = _Stat(np.stack([values, np.ones_like(values)], axis=1), lambda s: float(s[0] / s[1]))
    return stats


def bootstrap_indices(n: int, n_samples: int, seed: int | None = SACREBLEU_SEED) -> Iterator[np.ndarray]:
    """Resample count matrices [chunk, n] drawn like sacrebleu's ``rng.choice(n, (n_samples, n))``, in chunks."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_samples:
        rows = min(chunk, n_samples - done)
        idx = rng.choice(n, size=(rows, n), replace=True)
        offsets = idx + (np.arange(rows)[:, None] * n)
        yield np.bincount(offsets.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        done += rows


def corpus_metrics(
    df: pd.DataFrame, bootstrap: int = 1000, seed: int | None = SACREBLEU_SEED, stats: SampleStats | None = None
) -> dict:
    """Corpus scores of a predictions table, with bootstrap 95 % confidence intervals.

    Returns ``{"n", "bleu", "bleu1".."bleu3", "chrf", "rougeL", "wer", "cer", "cider", "meteor", "length_ratio",
    "hyp_len", "ref_len", "ci": {metric: {"mean", "ci", "low", "high"}}, "bootstrap", "signature", "unavailable"}``;
    ``meteor`` is missing where WordNet is not installed, and ``unavailable`` maps it to the reason.
    ``bleu`` is sacreBLEU's BLEU-4 (13a, exp smoothing), ``bleuK`` uses n-grams up to K, chrF is chrF2;
    ROUGE-L is the mean sentence F1; WER/CER are corpus edit rates in percent; CIDEr-D (x 10 scale, as COCO reports
    it) and METEOR (x 100) are sample means. ``bootstrap=0`` skips CIs.
    ``stats`` (from :func:`sample_stats` on the same ``df``) saves re-reading the text.
    """
    refs, hyps = _texts(df)
    per_sample = stats if stats is not None else sample_stats(df)
    bleu = per_sample.bleu
    stats = _metric_stats(per_sample)
    result: dict = {"n": len(refs)}
    for name, st in stats.items():
        result[name] = st.score(st.stats.sum(axis=0))
    totals = bleu.sum(axis=0)
    result["hyp_len"], result["ref_len"] = int(totals[0]), int(totals[1])
    result["length_ratio"] = float(totals[0] / totals[1]) if totals[1] else float("nan")
    result["ci"] = {}
    if bootstrap > 0:
        samples = {name: [] for name in stats}
        for counts in bootstrap_indices(len(refs), bootstrap, seed):
            for name, st in stats.items():
                # float32 sums, as sacrebleu's resampling has them: same values, same rounding downstream.
                sums = (counts @ st.stats).astype(np.float32)
                samples[name].extend(st.score(row) for row in sums)
        result["ci"] = {name: _interval(np.asarray(v)) for name, v in samples.items()}
    result["bootstrap"] = int(bootstrap)
    result["unavailable"] = dict(per_sample.unavailable)
    result["signature"] = {"bleu": _signature(BLEU(), hyps, refs), "chrf": _signature(CHRF(), hyps, refs), "seed": seed}
    return result


def _signature(metric: BLEU | CHRF, hyps: list[str], refs: list[str]) -> str:
    """sacrebleu's signature string (it is only known after one evaluation; one sample is enough)."""
    metric.corpus_score(hyps[:1], [refs[:1]])
    return str(metric.get_signature())


def _interval(scores: np.ndarray) -> dict[str, float]:
    """Mean and 95 % percentile interval, the way sacrebleu's ``estimate_ci`` picks the bounds."""
    scores = np.sort(scores)
    lower = len(scores) // 40
    low, high = float(scores[lower]), float(scores[len(scores) - lower - 1])
    return {"mean": float(scores.mean()), "ci": 0.5 * (high - low), "low": low, "high": high}


def sentence_scores(df: pd.DataFrame, stats: SampleStats | None = None) -> pd.DataFrame:
    """A copy of ``df`` with per-sample ``sentence_bleu``, ``sentence_chrf``, ``rougeL``, ``wer``,
    ``ref_len``, ``hyp_len`` (13a tokens) and ``length_ratio`` (hyp/ref, NaN for an empty reference).

    Sentence BLEU equals ``BLEU(effective_order=True).sentence_score``; sentence chrF equals
    ``CHRF().sentence_score``.
    """
    st = stats if stats is not None else sample_stats(df)
    bleu, chrf, words = st.bleu, st.chrf, st.wer
    chrf_metric = CHRF()
    sent_bleu = BLEU(effective_order=True)
    out = df.copy()
    out["sentence_bleu"] = [float(sent_bleu._compute_score_from_stats(row).score) for row in bleu]
    out["sentence_chrf"] = [float(chrf_metric._compute_score_from_stats(row).score) for row in chrf]
    out["rougeL"] = st.rouge
    with np.errstate(divide="ignore", invalid="ignore"):
        out["wer"] = np.where(words[:, 1] > 0, words[:, 0] / words[:, 1] * 100, np.where(words[:, 0] > 0, np.inf, 0.0))
        out["ref_len"] = bleu[:, 1].astype(int)
        out["hyp_len"] = bleu[:, 0].astype(int)
        out["length_ratio"] = np.where(bleu[:, 1] > 0, bleu[:, 0] / np.maximum(bleu[:, 1], 1), np.nan)
    return out


def texts_of(df: pd.DataFrame) -> tuple[Sequence[str], Sequence[str]]:
    """(references, predictions) as lists of strings, validated."""
    return _texts(df)


def diversity(predictions: Sequence[str]) -> dict[str, float]:
    """How varied the outputs are: share of distinct predictions and of the most frequent one (mode collapse)."""
    if not predictions:
        return {"distinct_ratio": 0.0, "top_prediction_share": 0.0}
    counts = Counter(p.strip() for p in predictions)
    return {"distinct_ratio": len(counts) / len(predictions),
            "top_prediction_share": counts.most_common(1)[0][1] / len(predictions)}


def validation_scores(ids: Sequence[str], references: Sequence[str], predictions: Sequence[str]
                      ) -> tuple[dict[str, float], list[dict]]:
    """What training records after each epoch, from the same statistics as every other score here (no bootstrap).

    Returns (corpus, rows): corpus has ``bleu`` (= ``bleu4``), ``bleu1``..``bleu3``, ``chrf``, ``rouge_l``, ``wer``,
    ``cider``, ``meteor`` (where WordNet is installed), ``distinct_ratio`` and ``top_prediction_share``; rows are
    ``{"id", "reference", "prediction", "sentence_bleu", "chrf"}`` per sample (the predictions-file layout).
    """
    table = pd.DataFrame({"id": list(ids), "reference": list(references), "prediction": list(predictions)})
    stats = sample_stats(table)
    scores = corpus_metrics(table, bootstrap=0, stats=stats)
    corpus = {"bleu": scores["bleu"], **{f"bleu{n}": scores[f"bleu{n}"] for n in range(1, _MAX_ORDER)},
              f"bleu{_MAX_ORDER}": scores["bleu"], "chrf": scores["chrf"], "rouge_l": scores["rougeL"],
              "wer": scores["wer"], "cider": scores["cider"], **{k: scores[k] for k in ("meteor",) if k in scores},
              **diversity(table["prediction"].tolist())}
    per_sample = sentence_scores(table, stats)
    rows = [{"id": row.id, "reference": row.reference, "prediction": row.prediction,
             "sentence_bleu": float(row.sentence_bleu), "chrf": float(row.sentence_chrf)}
            for row in per_sample.itertuples(index=False)]
    return corpus, rows
