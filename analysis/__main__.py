"""``python -m analysis {report,metrics,collapse,compare} ...``: the analysis library from the command line.

Exit status: 0 on success, 2 when an input is bad (the message says which and why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from analysis.collapse import collapse_by_epoch, collapse_report
from analysis.compare import compare_systems
from analysis.errors import AnalysisError
from analysis.loading import load_predictions, load_train_texts
from analysis.metrics import corpus_metrics
from analysis.report import build_report, to_jsonable, write_html_report, write_json_report
from slt.errors import os_error_message

_COLUMN_KEYS = {"id": "id", "ref": "reference", "reference": "reference", "pred": "prediction",
                "prediction": "prediction", "hyp": "prediction", "hypothesis": "prediction"}


def _columns(spec: str | None) -> dict[str, str] | None:
    """Parse ``reference=tgt,prediction=hyp`` into a columns mapping."""
    if not spec:
        return None
    out = {}
    for part in spec.split(","):
        key, sep, name = part.partition("=")
        if not sep or key.strip().lower() not in _COLUMN_KEYS or not name.strip():
            raise AnalysisError(
                f"Bad --columns entry {part!r}; use e.g. --columns reference=tgt,prediction=hyp,id=seg.")
        out[_COLUMN_KEYS[key.strip().lower()]] = name.strip()
    return out


def _bootstrap_count(text: str) -> int:
    """--bootstrap: resamples for the 95 % intervals; 0 turns them off, a negative number is a mistake."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of resamples, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = no confidence intervals), got {value}")
    return value


def _epoch(value: str | None) -> int | str | None:
    if value is None or value == "test":
        return value
    if not value.isdigit():
        raise AnalysisError(f"--epoch must be a whole number or 'test', got {value!r}.")
    return int(value)


def _load(path: str, epoch: str | None, args: argparse.Namespace, refs: str | None = None) -> pd.DataFrame:
    return load_predictions(path, epoch=_epoch(epoch), columns=_columns(args.columns), references=refs)


def _emit_json(obj: dict, target: str) -> None:
    text = json.dumps(to_jsonable(obj), ensure_ascii=False, indent=1, allow_nan=False)
    if target == "-":
        print(text)
    else:
        Path(target).write_text(text, encoding="utf-8")


def _add_input(p: argparse.ArgumentParser, name: str = "pred") -> None:
    p.add_argument(name, help="predictions file (.jsonl/.json/.csv/.tsv/.txt) or run directory")
    p.add_argument("--epoch", help="epoch number (or 'test') when PRED is a run directory; default: the last")
    p.add_argument("--refs", help="reference file, one sentence a line (for plain-text predictions)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Error analysis of translation predictions: scores, mode collapse, system comparison, reports.",
    )
    parser.add_argument("--columns", help="column names, e.g. reference=tgt,prediction=hyp,id=seg")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="full report: scores, collapse verdict, optional comparison, as HTML/JSON")
    _add_input(p)
    p.add_argument("--against", help="second system (B) to compare with PRED (A, the baseline)")
    p.add_argument("--against-epoch", help="epoch of --against when it is a run directory")
    p.add_argument("--against-refs", help="reference file for plain-text --against predictions")
    p.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"))
    p.add_argument("--train-manifest", help="training manifest TSV (enables the verbatim-copy check)")
    p.add_argument("--bootstrap", type=_bootstrap_count, default=1000,
                   help="bootstrap resamples for 95%% confidence intervals (0: none)")
    p.add_argument("--html", help="write a self-contained HTML report here")
    p.add_argument("--json", nargs="?", const="-", help="write JSON here ('-' or no value: stdout)")

    p = sub.add_parser("metrics", help="corpus BLEU-1..4, chrF, ROUGE-L, WER, CER with bootstrap CIs")
    _add_input(p)
    p.add_argument("--bootstrap", type=_bootstrap_count, default=1000,
                   help="bootstrap resamples for 95%% confidence intervals (0: none)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("collapse", help="mode-collapse verdict and figures (or their course across epochs)")
    _add_input(p)
    p.add_argument("--train-manifest")
    p.add_argument("--by-epoch", action="store_true", help="one row per epoch of a run directory")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compare", help="significance and per-sample comparison of two systems")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--epoch-a")
    p.add_argument("--epoch-b")
    p.add_argument("--refs", help="reference file when both systems are plain text")
    p.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"))
    p.add_argument("--test", nargs="+", choices=("bs", "ar"), default=["bs", "ar"])
    p.add_argument("--json", action="store_true")
    return parser


def _print_metrics(m: dict) -> None:
    for k in ("bleu", "bleu1", "bleu2", "bleu3", "chrf", "rougeL", "wer", "cer", "cider", "meteor"):
        if k not in m:
            continue
        ci = m["ci"].get(k)
        extra = f"  (95% CI {ci['low']:.2f}-{ci['high']:.2f})" if ci else ""
        print(f"{k:>8}: {m[k]:7.2f}{extra}")
    print(f"{'ratio':>8}: {m['length_ratio']:7.3f}   n = {m['n']}")
    for why in m.get("unavailable", {}).values():
        print(why)


def _run(args: argparse.Namespace) -> int:
    train = load_train_texts(args.train_manifest) if getattr(args, "train_manifest", None) else None
    if args.command == "metrics":
        m = corpus_metrics(_load(args.pred, args.epoch, args, args.refs), bootstrap=args.bootstrap)
        _emit_json(m, "-") if args.json else _print_metrics(m)
    elif args.command == "collapse":
        if args.by_epoch:
            table = collapse_by_epoch(args.pred, train_texts=train)
            if args.json:
                print(json.dumps(to_jsonable(table.to_dict("records")), indent=1))
            else:
                print(table.to_string(index=False))
            return 0
        rep = collapse_report(_load(args.pred, args.epoch, args, args.refs), train_texts=train)
        if args.json:
            _emit_json(rep.to_dict(), "-")
        else:
            print(f"verdict: {rep.verdict}")
            for r in rep.reasons + rep.notes:
                print(f"  - {r}")
            for text, count in rep.generic[:10]:
                print(f"  generic x{count}: {text[:100]}")
    elif args.command == "compare":
        cmp = compare_systems(_load(args.a, args.epoch_a, args, args.refs),
                              _load(args.b, args.epoch_b, args, args.refs), names=tuple(args.names), tests=args.test)
        if args.json:
            _emit_json(cmp.to_dict(), "-")
        else:
            for test, res in cmp.significance.items():
                for metric, r in res.items():
                    print(f"{test} {metric}: {args.names[0]} {r['score_a']:.2f}  {args.names[1]} {r['score_b']:.2f}  "
                          f"delta {r['delta']:+.2f}  p = {r['p_value']:.4f}")
            print("wins:", cmp.wins)
    else:  # report
        df = _load(args.pred, args.epoch, args, args.refs)
        other = _load(args.against, args.against_epoch, args, args.against_refs) if args.against else None
        run_dir = args.pred if Path(args.pred).is_dir() else None
        report = build_report(df, against=other, names=tuple(args.names), train_texts=train, run_dir=run_dir,
                              bootstrap=args.bootstrap)
        if args.html:
            write_html_report(args.html, report)
            print(f"HTML report: {args.html}", file=sys.stderr)
        if args.json:
            if args.json == "-":
                _emit_json(report.to_dict(), "-")
            else:
                write_json_report(args.json, report)
        if not args.html and not args.json:
            print(f"verdict: {report.collapse.verdict}")
            _print_metrics(report.metrics)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unreadable input, an unwritable --html/--json target, a full disk
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
