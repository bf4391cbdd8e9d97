"""Captioning metrics the sign-language translation papers report next to BLEU: CIDEr-D and METEOR.

CIDEr-D (Vedantam et al. 2015, the variant the COCO caption evaluation computes) weighs each n-gram (n = 1..4) by
TF-IDF, where the document frequency counts how many samples' references contain it: n-grams every reference
shares count little, rare content words count a lot. Each order's score is the clipped cosine between the
hypothesis and reference TF-IDF vectors times a Gaussian length penalty (sigma 6); the sample score is the mean
over orders and references x 10, and the corpus score the mean over samples. Because the document frequencies
come from the scored corpus, a sample's CIDEr-D depends on the other samples: scores are comparable only between
systems scored on the same references. The arithmetic follows the COCO evaluation code exactly (including its
quirks: the length that the penalty compares is the hypothesis/reference *bigram* count, and the log corpus size
is the IDF numerator), so values equal ``pycocoevalcap.cider.Cider`` on the same tokens (tested).

Tokens: sacreBLEU's 13a tokenisation (the one BLEU uses here), lowercased. The COCO toolkit tokenises with the
Stanford PTB tokenizer (Java) instead, so absolute values can differ slightly from papers that used it.

METEOR (nltk's implementation: exact, Porter-stem and WordNet-synonym matches, fragmentation penalty) needs the
WordNet corpus, which pip does not install; it is computed when ``nltk`` finds it (``python -m nltk.downloader
wordnet`` on a machine with internet, or ``$NLTK_DATA`` pointing to a copy) and reported unavailable otherwise.
The corpus METEOR is the mean of sentence scores (as nltk and most SLT papers compute it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from analysis.errors import AnalysisError

__all__ = ["MetricUnavailable", "cider_d", "meteor", "tokenize", "load_wordnet"]

_CIDER_ORDER = 4
_CIDER_SIGMA = 6.0
_TOKENIZER = Tokenizer13a()


class MetricUnavailable(AnalysisError):
    """A metric cannot be computed on this machine (its data is missing); the message says how to get it."""


def tokenize(text: str) -> list[str]:
    """13a tokens, lowercased: the tokens both CIDEr-D and METEOR score."""
    return _TOKENIZER(text.strip()).lower().split()


def _ngram_counts(tokens: list[str]) -> Counter:
    counts: Counter = Counter()
    for n in range(1, _CIDER_ORDER + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def _tfidf(counts: Counter, doc_freq: Counter, log_docs: float) -> tuple[list[dict], np.ndarray, int]:
    """TF-IDF vector per order, its norm per order [4], and the bigram count (the length the penalty compares)."""
    vec: list[dict] = [{} for _ in range(_CIDER_ORDER)]
    norm = np.zeros(_CIDER_ORDER)
    length = 0
    for gram, tf in counts.items():
        order = len(gram) - 1
        weight = float(tf) * (log_docs - math.log(max(1.0, doc_freq[gram])))
        vec[order][gram] = weight
        norm[order] += weight * weight
        if order == 1:
            length += tf
    return vec, np.sqrt(norm), length


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sample CIDEr-D [n] of ``hypotheses[i]`` against its references ``references[i]`` (one or more each).

    The corpus CIDEr-D is the mean of the returned array. Needs at least one reference per sample.
    """
    if len(hypotheses) != len(references):
        raise AnalysisError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(len(refs) == 0 for refs in references):
        raise AnalysisError("CIDEr-D needs at least one reference per sample.")
    hyp_counts = [_ngram_counts(tokenize(h)) for h in hypotheses]
    ref_counts = [[_ngram_counts(tokenize(r)) for r in refs] for refs in references]
    doc_freq: Counter = Counter()
    for refs in ref_counts:
        doc_freq.update(set().union(*(r.keys() for r in refs)))
    log_docs = math.log(float(len(hypotheses))) if hypotheses else 0.0
    scores = np.zeros(len(hypotheses))
    for i, (hyp, refs) in enumerate(zip(hyp_counts, ref_counts)):
        h_vec, h_norm, h_len = _tfidf(hyp, doc_freq, log_docs)
        total = np.zeros(_CIDER_ORDER)
        for ref in refs:
            r_vec, r_norm, r_len = _tfidf(ref, doc_freq, log_docs)
            penalty = math.exp(-((h_len - r_len) ** 2) / (2 * _CIDER_SIGMA ** 2))
            for order in range(_CIDER_ORDER):
                # Clipped dot product: a hypothesis n-gram counts at most as often as the reference has it.
                dot = sum(min(w, r_vec[order].get(g, 0.0)) * r_vec[order].get(g, 0.0)
                          for g, w in h_vec[order].items())
                if h_norm[order] != 0 and r_norm[order] != 0:
                    dot /= h_norm[order] * r_norm[order]
                total[order] += dot * penalty
        scores[i] = total.mean() / len(refs) * 10.0
    return scores


def load_wordnet() -> Any:
    """nltk's WordNet reader, loaded; :class:`MetricUnavailable` (with the way to get it) when the data is missing."""
    # Imported here: nltk takes ~1 s to import and only METEOR needs it.
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError as exc:
        raise MetricUnavailable(
            "METEOR is unavailable: it needs the WordNet corpus, which is not installed with pip and was not "
            "found in nltk's data path. Install it with `python -m nltk.downloader wordnet` (needs internet) "
            "or point $NLTK_DATA at a directory holding corpora/wordnet.") from exc
    return wordnet


def meteor(hypotheses: Sequence[str], references: Sequence[Sequence[str]], wordnet: Any = None) -> np.ndarray:
    """Per-sample METEOR [n] x 100 (nltk's ``meteor_score`` on 13a tokens, several references: the best).

    ``wordnet`` is nltk's WordNet reader (default: :func:`load_wordnet`, which raises
    :class:`MetricUnavailable` where the corpus is missing).
    """
    # Imported here: nltk takes ~1 s to import and only METEOR needs it.
    from nltk.translate.meteor_score import meteor_score

    if len(hypotheses) != len(references):
        raise AnalysisError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    wn = wordnet if wordnet is not None else load_wordnet()
    return np.array([100.0 * meteor_score([tokenize(r) for r in refs], tokenize(h), wordnet=wn)
                     for h, refs in zip(hypotheses, references)])
