"""Paired significance tests of two systems, computed the way sacrebleu's ``PairedTest`` computes them.

Same random draws (seed, call order), same statistics, same p-value and CI formulas (sacrebleu's own
``_compute_p_value`` and ``estimate_ci``), so p-values equal ``sacrebleu --paired-bs/--paired-ar``. The
difference is memory and speed: sacrebleu materialises ``n_samples x n x d`` float arrays (0.7 GB for
10k sentences) and multiplies boolean matrices without BLAS; here resamples are streamed in chunks as
count matrices and multiplied in float64 (sums of integer statistics, so exact).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import _compute_p_value, estimate_ci

from analysis.errors import AnalysisError
from analysis.metrics import SACREBLEU_SEED, SampleStats, bootstrap_indices

__all__ = ["paired_tests_from_stats", "DEFAULT_SAMPLES"]

DEFAULT_SAMPLES = {"bs": 1000, "ar": 10000}  # sacrebleu's defaults
_AR_CHUNK_CELLS = 4_000_000


def _metrics(a: SampleStats, b: SampleStats) -> dict[str, tuple[Callable[[np.ndarray], float], np.ndarray, np.ndarray]]:
    bleu, chrf = BLEU(), CHRF()
    return {
        "BLEU": (lambda s: float(bleu._compute_score_from_stats(s).score), a.bleu, b.bleu),
        "chrF2": (lambda s: float(chrf._compute_score_from_stats(s).score), a.chrf, b.chrf),
    }


def _paired_bs(score, bl: np.ndarray, sys: np.ndarray, n_samples: int, seed: int | None) -> dict:
    bl_scores, sys_scores = [], []
    for counts in bootstrap_indices(len(bl), n_samples, seed):
        # float32 like sacrebleu's resampled sums (exact for integer statistics).
        bl_scores.extend(score(r) for r in (counts @ bl).astype(np.float32))
        sys_scores.extend(score(r) for r in (counts @ sys).astype(np.float32))
    bl_arr, sys_arr = np.array(bl_scores), np.array(sys_scores)
    score_a, score_b = score(bl.sum(0)), score(sys.sum(0))
    diffs = np.abs(sys_arr - bl_arr)
    p = _compute_p_value(diffs - diffs.mean(), abs(score_a - score_b))
    # PairedTest's baseline CI resamples with the same seed, hence the same draws as the test itself.
    mean_a, ci_a = estimate_ci(bl_arr)
    mean_b, ci_b = estimate_ci(sys_arr)
    return {"score_a": score_a, "score_b": score_b, "p_value": float(p), "mean_a": float(mean_a), "ci_a": float(ci_a),
            "mean_b": float(mean_b), "ci_b": float(ci_b)}


def _paired_ar(score, bl: np.ndarray, sys: np.ndarray, n_trials: int, seed: int | None) -> dict:
    n = len(bl)
    # One call, as sacrebleu draws it (chunked boolean draws would give a different stream): n_trials x n bytes.
    pos_sel = np.random.default_rng(seed).integers(2, size=(n_trials, n), dtype=bool)
    delta = bl - sys
    total_sys, total_bl = sys.sum(0), bl.sum(0)
    chunk = max(1, _AR_CHUNK_CELLS // max(n, 1))
    diffs = np.empty(n_trials)
    for start in range(0, n_trials, chunk):
        sel = pos_sel[start : start + chunk].astype(np.float64)
        swapped = sel @ delta  # trial sums: a = sys + sel*(bl-sys), b = bl - sel*(bl-sys)
        shuf_a, shuf_b = np.rint(total_sys + swapped), np.rint(total_bl - swapped)
        diffs[start : start + len(sel)] = [abs(score(x) - score(y)) for x, y in zip(shuf_a, shuf_b)]
    score_a, score_b = score(total_bl), score(total_sys)
    p = _compute_p_value(diffs, abs(score_a - score_b))
    return {"score_a": score_a, "score_b": score_b, "p_value": float(p), "mean_a": None, "ci_a": None,
            "mean_b": None, "ci_b": None}


def paired_tests_from_stats(
    stats_a: SampleStats, stats_b: SampleStats, test: str = "bs", n_samples: int = 0, seed: int | None = SACREBLEU_SEED
) -> dict[str, dict]:
    """Paired bootstrap (``"bs"``) or approximate randomisation (``"ar"``) test of B against baseline A,
    for BLEU and chrF2. ``n_samples=0`` uses sacrebleu's defaults (1000 resamples / 10000 trials).

    Returns ``{"BLEU": {...}, "chrF2": {...}}`` with ``score_a, score_b, delta, p_value, n_samples``
    and (bootstrap only) ``mean_a, ci_a, mean_b, ci_b`` (95 % half-widths).
    """
    if test not in DEFAULT_SAMPLES:
        raise AnalysisError(f"Unknown paired test {test!r}; use 'bs' (bootstrap) or 'ar' (approximate randomisation).")
    if len(stats_a.bleu) != len(stats_b.bleu):
        raise AnalysisError(f"Paired tests need the same samples: {len(stats_a.bleu)} vs {len(stats_b.bleu)}.")
    n_samples = n_samples if n_samples > 0 else DEFAULT_SAMPLES[test]
    seed = seed if seed else None  # PairedTest passes a falsy seed on as "unseeded"
    run = _paired_bs if test == "bs" else _paired_ar
    out = {}
    for name, (score, bl, sys) in _metrics(stats_a, stats_b).items():
        res = run(score, bl, sys, n_samples, seed)
        out[name] = {**res, "delta": res["score_b"] - res["score_a"], "n_samples": n_samples}
    return out
