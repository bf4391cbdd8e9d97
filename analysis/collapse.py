"""Mode-collapse diagnostics: is the model reading the video, or saying the same thing for everything?

Each figure is computed on the predictions and, for scale, on the references of the same samples; a figure
only counts against the model when it crosses its threshold *and* is clearly worse than the references
(a corpus whose references repeat is allowed predictions that repeat).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from analysis.errors import EmbeddingError, LengthMismatchError, RunDirectoryError
from analysis.loading import list_epochs, load_predictions
from analysis.metrics import texts_of

__all__ = ["CollapseThresholds", "CollapseReport", "collapse_report", "collapse_by_epoch", "text_figures"]

VERDICTS = ("healthy", "suspicious", "collapsed")
_TOKENIZE = Tokenizer13a()


@dataclass(frozen=True)
class CollapseThresholds:
    """(suspicious, collapsed) limits of each figure; the defaults suit test sets of ~50+ sentences."""

    top_share: tuple[float, float] = (0.2, 0.5)  # share of the single most frequent prediction (higher = worse)
    # unique-prediction ratio / unique-reference ratio (lower = worse)
    unique_vs_refs: tuple[float, float] = (0.6, 0.25)
    entropy_norm: tuple[float, float] = (0.8, 0.5)  # entropy / log(n) (lower = worse)
    distinct2_vs_refs: tuple[float, float] = (0.5, 0.2)  # distinct-2 / references' distinct-2 (lower = worse)
    self_bleu: tuple[float, float] = (60.0, 85.0)  # mean self-BLEU of predictions (higher = worse)
    embedding_cosine: tuple[float, float] = (0.85, 0.95)  # mean pairwise cosine of sentence embeddings
    train_copy_share: tuple[float, float] = (0.5, 0.9)  # share of predictions that are verbatim training targets
    min_generic_inputs: int = 3  # a prediction repeated for this many inputs (more than in the refs) is 'generic'
    min_samples: int = 20  # below this the verdict carries a small-sample warning
    worse_margin: float = 1.1  # a figure must be this factor worse than the references' to count
    # Self-BLEU must be this factor above the references' own: a small-vocabulary corpus has high self-BLEU in its
    # references already (the synthetic corpus: 46.5), and a healthy model there sits at ~1.3x (docs/COLLAPSE.md).
    self_bleu_margin: float = 1.5


@dataclass
class CollapseReport:
    """Result of :func:`collapse_report`: a verdict, the reasons for it, and every figure behind it."""

    verdict: str
    reasons: list[str]
    figures: dict[str, float | int | str | None]
    generic: list[tuple[str, int]]
    generic_details: list[dict] = field(default_factory=list)
    train_copies: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["generic"] = [list(g) for g in self.generic]
        d["train_copies"] = [list(g) for g in self.train_copies]
        return d


def _key(text: str) -> str:
    """Identity of a sentence for counting: whitespace-normalised, case kept."""
    return " ".join(text.split())


def _distinct(tokens: list[list[str]], n: int) -> float:
    grams = [tuple(t[i : i + n]) for t in tokens for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: Sequence[str], sample: int = 300, n_refs: int = 32, seed: int = 0) -> float:
    """Mean sentence BLEU of (up to ``sample``) texts, each against ``n_refs`` other sampled texts.

    Sampling keeps this O(sample * n_refs) instead of O(n^2); the references of sample ``i`` are the
    next ``n_refs`` samples in a fixed random order, so a text is never its own reference.
    """
    if len(texts) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    picked = [texts[i] for i in rng.permutation(len(texts))[:sample]]
    k = min(n_refs, len(picked) - 1)
    ref_streams = [picked[j:] + picked[:j] for j in range(1, k + 1)]
    stats = BLEU()._extract_corpus_statistics(picked, ref_streams)
    scorer = BLEU(effective_order=True)
    return float(np.mean([scorer._compute_score_from_stats(s).score for s in stats]))


def text_figures(texts: Sequence[str], self_bleu_sample: int = 300) -> dict[str, float | int | str]:
    """Diversity figures of one list of sentences (used for predictions and references alike)."""
    keys = [_key(t) for t in texts]
    counts = Counter(keys)
    n = len(keys)
    top_text, top_count = counts.most_common(1)[0]
    p = np.array(list(counts.values()), dtype=np.float64) / n
    entropy = float(-(p * np.log(p)).sum())
    tokens = [_TOKENIZE(k).split() for k in keys]
    return {
        "n": n,
        "unique": len(counts),
        "unique_ratio": len(counts) / n,
        "top_share": top_count / n,
        "top_text": top_text,
        "entropy_norm": entropy / math.log(n) if n > 1 else 1.0,
        "distinct_1": _distinct(tokens, 1),
        "distinct_2": _distinct(tokens, 2),
        "self_bleu": self_bleu(keys, sample=self_bleu_sample),
        "mean_len": float(np.mean([len(t) for t in tokens])),
    }


def mean_pairwise_cosine(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over all pairs i != j, in O(n*d): (|sum u_i|^2 - n) / (n(n-1))."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or len(emb) < 2:
        raise EmbeddingError(f"Need at least two embeddings as an [n, d] array, got shape {emb.shape}.")
    if not np.isfinite(emb).all():
        raise EmbeddingError("Embeddings contain NaN or inf values.")
    norms = np.linalg.norm(emb, axis=1)
    if (norms == 0).any():
        raise EmbeddingError(f"{int((norms == 0).sum())} embedding(s) are all zeros; cosine is undefined for them.")
    unit = emb / norms[:, None]
    total = unit.sum(axis=0)
    n = len(unit)
    return float((total @ total - n) / (n * (n - 1)))


def _embeddings_from(df: pd.DataFrame) -> np.ndarray | None:
    if "embedding" not in df.columns:
        return None
    col = df["embedding"]
    if col.dtype != object:
        missing = int(col.isna().sum())
    else:
        missing = sum(v is None or (isinstance(v, float) and np.isnan(v)) for v in col)
    if missing:
        raise EmbeddingError(f"{missing} of {len(df)} samples have no 'embedding'; save embeddings for all or none.")
    dims = {np.shape(v) for v in col}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise EmbeddingError(f"Embeddings must all be 1-D vectors of one size; found shapes {sorted(dims)[:5]}.")
    return np.stack([np.asarray(v, dtype=np.float32) for v in col])


def _judge(
    name: str, value: float, limits: tuple[float, float], higher_is_worse: bool, ref_value: float | None, margin: float
) -> int:
    """0 healthy, 1 suspicious, 2 collapsed; a figure no worse than the references' never counts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    if ref_value is not None and not (isinstance(ref_value, float) and math.isnan(ref_value)):
        worse = value > ref_value * margin if higher_is_worse else value * margin < ref_value
        if not worse:
            return 0
    sus, col = limits
    if higher_is_worse:
        return 2 if value >= col else 1 if value >= sus else 0
    return 2 if value <= col else 1 if value <= sus else 0


def collapse_report(
    df: pd.DataFrame,
    train_texts: Sequence[str] | None = None,
    embeddings: np.ndarray | None = None,
    thresholds: CollapseThresholds = CollapseThresholds(),
    self_bleu_sample: int = 300,
) -> CollapseReport:
    """Diagnose mode collapse in a predictions table (see :func:`analysis.load_predictions`).

    ``train_texts`` (training targets) enables the verbatim-copy check; ``embeddings`` ([n, d], or an
    ``embedding`` column in ``df``) enables the mean pairwise cosine check. The verdict is the worst
    level any figure reaches; ``reasons`` says which figures and why.
    """
    refs, preds = texts_of(df)
    t = thresholds
    pf, rf = text_figures(preds, self_bleu_sample), text_figures(refs, self_bleu_sample)
    figures: dict[str, float | int | str | None] = {k: v for k, v in pf.items()}
    figures.update({f"ref_{k}": v for k, v in rf.items()})
    figures["unique_vs_refs"] = pf["unique_ratio"] / rf["unique_ratio"]
    figures["distinct2_vs_refs"] = pf["distinct_2"] / rf["distinct_2"] if rf["distinct_2"] else float("nan")
    findings: list[tuple[int, str]] = []

    def check(name: str, value, limits, higher_is_worse: bool, ref_value, message: str,
              margin: float = t.worse_margin) -> None:
        level = _judge(name, value, limits, higher_is_worse, ref_value, margin)
        if level:
            bound = limits[level - 1]
            findings.append((level, f"{message}; {VERDICTS[level]} at {'≥' if higher_is_worse else '≤'} {bound:g}."))

    check("top_share", pf["top_share"], t.top_share, True, rf["top_share"],
          f"{pf['top_share']:.0%} of predictions are the same sentence {pf['top_text'][:80]!r} "
          f"(most frequent reference: {rf['top_share']:.0%})")
    check("unique_vs_refs", figures["unique_vs_refs"], t.unique_vs_refs, False, None,
          f"only {pf['unique']} distinct predictions for {pf['n']} inputs ({pf['unique_ratio']:.0%} unique vs "
          f"{rf['unique_ratio']:.0%} for the references; ratio {figures['unique_vs_refs']:.2f})")
    check("entropy_norm", pf["entropy_norm"], t.entropy_norm, False, rf["entropy_norm"],
          f"normalised entropy of the predictions is {pf['entropy_norm']:.2f} (references {rf['entropy_norm']:.2f})")
    check("distinct2_vs_refs", figures["distinct2_vs_refs"], t.distinct2_vs_refs, False, None,
          f"distinct-2 is {pf['distinct_2']:.2f} vs {rf['distinct_2']:.2f} for the references")
    check("self_bleu", pf["self_bleu"], t.self_bleu, True, rf["self_bleu"],
          f"self-BLEU of the predictions is {pf['self_bleu']:.1f} (references {rf['self_bleu']:.1f})",
          margin=t.self_bleu_margin)

    emb = _embeddings_from(df) if embeddings is None else np.asarray(embeddings)
    figures["embedding_cosine"] = None
    if emb is not None:
        if len(emb) != len(df):
            raise LengthMismatchError(f"{len(emb)} embeddings for {len(df)} samples.")
        figures["embedding_cosine"] = mean_pairwise_cosine(emb)
        check("embedding_cosine", figures["embedding_cosine"], t.embedding_cosine, True, None,
              f"sentence embeddings of different inputs have mean pairwise cosine {figures['embedding_cosine']:.3f} "
              "(collapse shows here before decoding)")

    train_copies: list[tuple[str, int]] = []
    figures["train_copy_share"] = figures["ref_train_copy_share"] = None
    if train_texts is not None:
        train = {_key(s) for s in train_texts}
        copied = Counter(k for k in map(_key, preds) if k in train)
        figures["train_copy_share"] = sum(copied.values()) / len(preds)
        figures["ref_train_copy_share"] = sum(_key(r) in train for r in refs) / len(refs)
        train_copies = copied.most_common(20)
        check("train_copy_share", figures["train_copy_share"], t.train_copy_share, True,
              figures["ref_train_copy_share"],
              f"{figures['train_copy_share']:.0%} of predictions repeat a training target verbatim "
              f"(references: {figures['ref_train_copy_share']:.0%})")

    generic, details = _generic(df, t.min_generic_inputs)
    notes = []
    if len(df) < t.min_samples:
        notes.append(f"Only {len(df)} samples: figures are noisy below {t.min_samples}; read the verdict with care.")
    level = max((lvl for lvl, _ in findings), default=0)
    reasons = [msg for lvl, msg in sorted(findings, key=lambda f: -f[0])]
    if not reasons:
        reasons = [
            f"No figure crosses a threshold: {pf['unique_ratio']:.0%} unique predictions, most frequent "
            f"{pf['top_share']:.0%}, normalised entropy {pf['entropy_norm']:.2f}, self-BLEU {pf['self_bleu']:.1f}."
        ]
    return CollapseReport(VERDICTS[level], reasons, figures, generic, details, train_copies, notes)


def _generic(df: pd.DataFrame, min_inputs: int) -> tuple[list[tuple[str, int]], list[dict]]:
    """Predictions produced for many different inputs, more often than the sentence occurs among references."""
    keys = df["prediction"].map(_key)
    ref_counts = Counter(df["reference"].map(_key))
    inputs = pd.DataFrame({"key": keys, "id": df["id"], "correct": keys == df["reference"].map(_key)})
    grouped = inputs.groupby("key", sort=False).agg(inputs=("id", "nunique"), correct=("correct", "sum"))
    grouped = grouped[grouped["inputs"] >= min_inputs].sort_values("inputs", ascending=False)
    generic, details = [], []
    for text, row in grouped.iterrows():
        if row["inputs"] > ref_counts.get(text, 0):
            generic.append((str(text), int(row["inputs"])))
            details.append({"text": str(text), "inputs": int(row["inputs"]), "correct_for": int(row["correct"]),
                            "in_references": int(ref_counts.get(text, 0))})
    return generic, details


def read_metrics_log(run_dir: str | Path) -> pd.DataFrame:
    """``metrics.jsonl`` of a run as a DataFrame (empty if absent); the last record of each epoch with a BLEU."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return pd.DataFrame()
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written while we read; the other records still count
            if isinstance(rec, dict):
                rows.append(rec)
    return pd.DataFrame(rows)


def collapse_by_epoch(
    run_dir: str | Path, train_texts: Sequence[str] | None = None, self_bleu_sample: int = 200
) -> pd.DataFrame:
    """One row per epoch with predictions: every collapse figure, the verdict, and BLEU/chrF from the log.

    Columns include ``epoch, verdict, unique_ratio, top_share, entropy_norm, distinct_1, distinct_2,
    self_bleu, embedding_cosine, train_copy_share`` and, when ``metrics.jsonl`` has them, ``bleu, chrf``.
    """
    rows = []
    for epoch in list_epochs(run_dir):
        df = load_predictions(run_dir, epoch=epoch)
        rep = collapse_report(df, train_texts=train_texts, self_bleu_sample=self_bleu_sample)
        keep = {k: v for k, v in rep.figures.items() if not k.startswith("ref_") and k != "top_text"}
        rows.append({"epoch": epoch, "verdict": rep.verdict, **keep, "generic_count": len(rep.generic)})
    if not rows:
        raise RunDirectoryError(f"{run_dir} has no predictions_epoch*.jsonl files to follow across epochs.")
    table = pd.DataFrame(rows)
    log = read_metrics_log(run_dir)
    if not log.empty and "epoch" in log.columns:
        scored = [c for c in ("bleu", "chrf") if c in log.columns]
        if scored:
            last = log.dropna(subset=scored, how="all").groupby("epoch", as_index=False)[scored].last()
            table = table.merge(last, on="epoch", how="left")
    return table
