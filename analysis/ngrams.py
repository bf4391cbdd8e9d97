"""Which n-grams a system over- and under-produces relative to the references (in the spirit of compare-mt)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

__all__ = ["ngram_counts", "production_table", "over_under", "matched_ngrams"]

_TOKENIZE = Tokenizer13a()
_SMOOTH = 1.0  # add-one smoothing so unseen n-grams give finite ratios


def _grams(text: str, n: int) -> Iterable[str]:
    toks = _TOKENIZE(text.lower()).split()
    return (" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))


def ngram_counts(texts: Sequence[str], n: int) -> Counter[str]:
    """Corpus counts of lowercased 13a-token n-grams."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(_grams(t, n))
    return counts


def production_table(predictions: Sequence[str], references: Sequence[str],
                     orders: Sequence[int] = (1, 2)) -> pd.DataFrame:
    """One row per n-gram: ``ngram, n, hyp_count, ref_count, ratio`` with ratio = (hyp+1)/(ref+1)."""
    frames = []
    for n in orders:
        hyp, ref = ngram_counts(predictions, n), ngram_counts(references, n)
        keys = list(hyp.keys() | ref.keys())
        frames.append(pd.DataFrame({
            "ngram": keys,
            "n": n,
            "hyp_count": [hyp.get(k, 0) for k in keys],
            "ref_count": [ref.get(k, 0) for k in keys],
        }))
    table = pd.concat(frames, ignore_index=True)
    table["ratio"] = (table["hyp_count"] + _SMOOTH) / (table["ref_count"] + _SMOOTH)
    return table


def over_under(
    predictions: Sequence[str], references: Sequence[str], top: int = 15, min_count: int = 3,
    orders: Sequence[int] = (1, 2),
) -> dict[str, list[dict]]:
    """The ``top`` n-grams produced most above (``over``) and below (``under``) their reference frequency.

    Only n-grams seen at least ``min_count`` times on the relevant side are ranked, so single accidents
    do not crowd out systematic habits.
    """
    table = production_table(predictions, references, orders)
    over = table[(table["hyp_count"] >= min_count) & (table["ratio"] > 1)]
    over = over.sort_values(["ratio", "hyp_count"], ascending=[False, False])
    under = table[(table["ref_count"] >= min_count) & (table["ratio"] < 1)]
    under = under.sort_values(["ratio", "ref_count"], ascending=[True, False])
    return {"over": over.head(top).to_dict("records"), "under": under.head(top).to_dict("records")}


def matched_ngrams(
    preds_a: Sequence[str], preds_b: Sequence[str], references: Sequence[str], top: int = 15, min_count: int = 3,
    n: int = 1,
) -> dict[str, list[dict]]:
    """Reference n-grams that system A matches more often than B (``a_better``) and the reverse.

    A match is counted per sentence, clipped by the reference count (as in BLEU).
    """
    matched_a: Counter[str] = Counter()
    matched_b: Counter[str] = Counter()
    for pa, pb, r in zip(preds_a, preds_b, references):
        ref = Counter(_grams(r, n))
        matched_a.update(ref & Counter(_grams(pa, n)))
        matched_b.update(ref & Counter(_grams(pb, n)))
    keys = [k for k in matched_a.keys() | matched_b.keys() if matched_a[k] + matched_b[k] >= min_count]
    rows = [{"ngram": k, "n": n, "matched_a": matched_a[k], "matched_b": matched_b[k],
             "ratio": (matched_a[k] + _SMOOTH) / (matched_b[k] + _SMOOTH)} for k in keys]
    rows.sort(key=lambda r: (r["ratio"], r["matched_a"]), reverse=True)
    a_better = [r for r in rows if r["ratio"] > 1][:top]
    b_better = sorted((r for r in rows if r["ratio"] < 1), key=lambda r: (r["ratio"], -r["matched_b"]))[:top]
    return {"a_better": a_better, "b_better": b_better}
