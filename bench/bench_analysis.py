"""Benchmark of the analysis library on 1k and 10k synthetic samples: prints one row per step with seconds.

Run: ``python bench/bench_analysis.py [--sizes 1000 10000]``. Data are varied template sentences with
word-drop noise (one system healthy, one 60 % collapsed), written as JSONL and loaded back like user files.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import (
    build_report,
    collapse_report,
    compare_systems,
    corpus_metrics,
    load_predictions,
    render_html,
    sentence_scores,
)

WORDS = ("teacher brother girl man neighbour doctor student farmer tourist pilot bought painted found sold cleaned "
         "carried forgot repaired visited opened red small old blue wooden new heavy green broken big car house book "
         "door chair phone box bicycle lamp window coat table yesterday morning storm school river night").split()


def _records(n: int, collapse_share: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    ref_rng = random.Random(0)  # the same references for both systems
    out = []
    for i in range(n):
        ref = " ".join(ref_rng.choice(WORDS) for _ in range(ref_rng.randint(4, 16))) + "."
        words = [w for w in ref.split() if rng.random() > 0.25] or ref.split()[:1]
        pred = "the teacher bought a red car yesterday." if rng.random() < collapse_share else " ".join(words)
        out.append({"id": f"s{i}", "reference": ref, "prediction": pred})
    return out


def _write(path: Path, records: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path


def _timed(label: str, fn, rows: list[tuple[str, int, float]], n: int):
    start = time.perf_counter()
    result = fn()
    rows.append((label, n, time.perf_counter() - start))
    return result


def _bench_size(n: int, tmp: Path, rows: list[tuple[str, int, float]]) -> None:
    """Time each analysis step on `n` samples (a collapsed system a, a healthy one b), appending to `rows`."""
    a_path = _write(tmp / f"a{n}.jsonl", _records(n, 0.6, 1))
    b_path = _write(tmp / f"b{n}.jsonl", _records(n, 0.0, 2))
    a = _timed("load_predictions (jsonl)", lambda: load_predictions(a_path), rows, n)
    b = load_predictions(b_path)
    _timed("corpus_metrics (bootstrap 1000)", lambda: corpus_metrics(b, bootstrap=1000), rows, n)
    _timed("sentence_scores", lambda: sentence_scores(b), rows, n)
    rep = _timed("collapse_report", lambda: collapse_report(a), rows, n)
    assert rep.verdict == "collapsed", rep.reasons
    _timed("compare_systems (bs 1000 + ar 10000)", lambda: compare_systems(a, b, bootstrap=0), rows, n)
    report = _timed("build_report (with comparison)", lambda: build_report(a, against=b, bootstrap=1000), rows, n)
    _timed("render_html", lambda: render_html(report), rows, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000])
    args = parser.parse_args()
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            _bench_size(n, Path(tmp), rows)
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'samples':>8}  {'seconds':>8}  {'ms/sample':>9}")
    for label, n, secs in rows:
        print(f"{label:<{width}}  {n:>8}  {secs:>8.2f}  {1000 * secs / n:>9.3f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
