"""Translation metrics with sacrebleu: corpus BLEU (13a) with BLEU-1..4, chrF, and per-sentence scores."""

from __future__ import annotations

import math
from collections import Counter

from sacrebleu.metrics import BLEU, CHRF


def corpus_metrics(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a), cumulative BLEU-1..4 from sacrebleu's n-gram precisions, chrF, distinct-output share.

    BLEU-n is brevity penalty x geometric mean of the first n precisions, so `bleu4 == bleu`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = BLEU(tokenize="13a").corpus_score(hypotheses, [references])
    result: dict[str, float] = {"bleu": float(bleu.score)}
    for n in range(1, 5):
        precisions = bleu.precisions[:n]
        if min(precisions) <= 0:
            result[f"bleu{n}"] = 0.0
        else:
            log_mean = sum(math.log(p / 100.0) for p in precisions) / n
            result[f"bleu{n}"] = 100.0 * bleu.bp * math.exp(log_mean)
    result["chrf"] = float(CHRF().corpus_score(hypotheses, [references]).score)
    result.update(diversity(hypotheses))
    return result


def diversity(hypotheses: list[str]) -> dict[str, float]:
    """How varied the outputs are: share of distinct predictions and of the most frequent one (mode collapse)."""
    if not hypotheses:
        return {"distinct_ratio": 0.0, "top_prediction_share": 0.0}
    counts = Counter(h.strip() for h in hypotheses)
    return {
        "distinct_ratio": len(counts) / len(hypotheses),
        "top_prediction_share": counts.most_common(1)[0][1] / len(hypotheses),
    }


_SENT_BLEU = BLEU(tokenize="13a", effective_order=True)
_SENT_CHRF = CHRF()


def sentence_scores(hypothesis: str, reference: str) -> dict[str, float]:
    """Sentence BLEU (effective order) and chrF of one prediction."""
    return {
        "sentence_bleu": float(_SENT_BLEU.sentence_score(hypothesis, [reference]).score),
        "chrf": float(_SENT_CHRF.sentence_score(hypothesis, [reference]).score),
    }
