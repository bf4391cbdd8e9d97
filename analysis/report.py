"""One analysis of a predictions set (optionally against a second system) as a dict or a self-contained HTML page."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.collapse import CollapseReport, collapse_by_epoch, collapse_report
from analysis.compare import ComparisonReport, compare_systems, word_diff
from analysis.errors import AnalysisError
from analysis.metrics import corpus_metrics, sample_stats, sentence_scores
from analysis.plots import plot_buckets, plot_metric_by_epoch, plot_pairwise_scatter, plot_rank_frequency
from slt.utils.io import atomic_write_text

__all__ = ["AnalysisReport", "build_report", "render_html", "write_html_report", "to_jsonable"]

_VERDICT_COLOURS = {"healthy": "#1a7f37", "suspicious": "#9a6700", "collapsed": "#cf222e"}
_EPOCH_COLUMNS = ("epoch", "verdict", "bleu", "chrf", "unique_ratio", "top_share", "entropy_norm", "distinct_2",
                  "self_bleu", "embedding_cosine", "train_copy_share", "generic_count")
_SHOWN_METRICS = ("bleu", "bleu1", "bleu2", "bleu3", "chrf", "rougeL", "wer", "cer", "cider", "meteor")


@dataclass
class AnalysisReport:
    """Everything one report shows; ``to_dict()`` is what ``--json`` writes."""

    title: str
    source: str
    metrics: dict
    collapse: CollapseReport
    samples: pd.DataFrame
    comparison: ComparisonReport | None = None
    by_epoch: pd.DataFrame | None = None
    run_dir: str | None = None

    def to_dict(self, max_samples: int | None = None) -> dict:
        """JSON-ready dict (NaN/inf become null); ``max_samples`` limits per-sample rows."""
        samples = self.samples.drop(columns=["embedding"], errors="ignore")
        if max_samples is not None:
            samples = samples.head(max_samples)
        return to_jsonable({
            "title": self.title, "source": self.source, "run_dir": self.run_dir,
            "verdict": self.collapse.verdict, "metrics": self.metrics, "collapse": self.collapse.to_dict(),
            "by_epoch": None if self.by_epoch is None else self.by_epoch.to_dict("records"),
            "comparison": None if self.comparison is None else self.comparison.to_dict(max_samples),
            "samples": samples.to_dict("records"),
        })


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy/pandas values into JSON types; NaN and inf become None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def build_report(
    df: pd.DataFrame,
    against: pd.DataFrame | None = None,
    names: tuple[str, str] = ("A", "B"),
    train_texts: list[str] | None = None,
    run_dir: str | Path | None = None,
    bootstrap: int = 1000,
    title: str | None = None,
) -> AnalysisReport:
    """Metrics, collapse diagnosis, and (with ``against``) a comparison where ``df`` is the baseline A.

    ``run_dir`` adds how the collapse figures and scores move across the run's epochs.
    """
    stats = sample_stats(df)
    by_epoch = None
    if run_dir is not None and any(Path(run_dir).glob("predictions_epoch*.jsonl")):
        by_epoch = collapse_by_epoch(run_dir, train_texts=train_texts)
    return AnalysisReport(
        title=title or f"Error analysis: {df.attrs.get('source', names[0])}",
        source=str(df.attrs.get("source", "")),
        metrics=corpus_metrics(df, bootstrap=bootstrap, stats=stats),
        collapse=collapse_report(df, train_texts=train_texts),
        samples=sentence_scores(df, stats=stats),
        comparison=None if against is None else compare_systems(df, against, names=names, bootstrap=bootstrap,
                                                                stats_a=stats),
        by_epoch=by_epoch,
        run_dir=None if run_dir is None else str(run_dir),
    )


# --- HTML --------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top;max-width:420px;overflow-wrap:anywhere}th{background:#f6f8fa}.verdict{font-size:1.6em;font-weight:bold}
del{background:#ffebe9;text-decoration:line-through}ins{background:#dafbe1;text-decoration:none}.muted{color:#656d76}
"""


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"
    return html.escape(str(v))


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _diff_html(a: str, b: str) -> str:
    tags = {"equal": "{}", "delete": "<del>{}</del>", "insert": "<ins>{}</ins>"}
    return " ".join(tags[op].format(html.escape(text)) for op, text in word_diff(a, b))


class _Figures:
    """Inline plotly figures; plotly.js is embedded once (with the first figure) so the page works offline."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: go.Figure) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, default_height="420px")
        self.first = False
        return out


def _metrics_section(m: dict) -> str:
    rows = []
    for k in _SHOWN_METRICS:
        if k not in m:  # a metric this machine cannot compute (the reason is listed under the table)
            continue
        ci = m.get("ci", {}).get(k)
        rows.append({"metric": k, "score": m[k], "95% CI": f"{ci['low']:.2f} – {ci['high']:.2f}" if ci else "–"})
    rows.append({"metric": "length ratio (hyp/ref)", "score": m["length_ratio"], "95% CI": "–"})
    return (f"<h2>Scores</h2><p class='muted'>{m['n']} samples; sacreBLEU {html.escape(m['signature']['bleu'])}; "
            f"bootstrap {m['bootstrap']} resamples</p>" + _table(rows)
            + "".join(f"<p class='muted'>{html.escape(why)}</p>" for why in m.get("unavailable", {}).values()))


def _collapse_section(c: CollapseReport) -> str:
    colour = _VERDICT_COLOURS[c.verdict]
    keys = ["unique_ratio", "top_share", "entropy_norm", "distinct_1", "distinct_2", "self_bleu", "mean_len"]
    rows = [{"figure": k, "predictions": c.figures.get(k), "references": c.figures.get(f"ref_{k}")} for k in keys]
    for k in ("embedding_cosine", "train_copy_share"):
        if c.figures.get(k) is not None:
            rows.append({"figure": k, "predictions": c.figures[k], "references": c.figures.get(f"ref_{k}")})
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in c.reasons + c.notes)
    out = (f"<h2>Mode collapse</h2><p class='verdict' style='color:{colour}'>Verdict: {c.verdict}</p><ul>{reasons}</ul>"
           + _table(rows) + "<h3>Generic predictions (same text for many inputs)</h3>"
           + _table(c.generic_details[:20], ["text", "inputs", "correct_for", "in_references"]))
    if c.figures.get("train_copy_share") is not None:
        out += "<h3>Predictions copied verbatim from training targets</h3>" + _table(
            [{"text": t, "inputs": n} for t, n in c.train_copies])
    return out


def _comparison_section(cmp: ComparisonReport, fig: _Figures) -> str:
    a, b = cmp.names
    rows = []
    for test, res in cmp.significance.items():
        for metric, r in res.items():
            rows.append({"test": "paired bootstrap" if test == "bs" else "approx. randomisation", "metric": metric,
                         a: r["score_a"], b: r["score_b"], "delta": r["delta"], "p-value": r["p_value"]})
    out = f"<h2>Comparison: {html.escape(a)} (baseline) vs {html.escape(b)}</h2>" + _table(rows)
    out += "<h3>Per-sample wins</h3>" + _table([cmp.wins])
    for key, examples in cmp.examples.items():
        ex = [{"id": e["id"], "reference": e["reference"], "delta": e["delta"], "diff": e} for e in examples]
        body = "".join(
            f"<tr><td>{html.escape(str(e['id']))}</td><td>{html.escape(e['reference'])}</td><td>{e['delta']:+.1f}</td>"
            f"<td>{_diff_html(e['diff']['prediction_a'], e['diff']['prediction_b'])}</td></tr>" for e in ex)
        out += (f"<h3>Where {html.escape(key.replace('_better', ''))} wins most</h3>"
                "<table><tr><th>id</th><th>reference</th>"
                f"<th>Δ</th><th>diff {html.escape(a)} → {html.escape(b)}</th></tr>{body}</table>")
    out += fig(plot_pairwise_scatter(cmp)) + fig(plot_buckets(cmp, "length")) + fig(plot_buckets(cmp, "score"))
    for name in (a, b):
        out += f"<h3>N-grams {html.escape(name)} over-produces</h3>" + _table(cmp.ngrams[name]["over"])
        out += f"<h3>N-grams {html.escape(name)} under-produces</h3>" + _table(cmp.ngrams[name]["under"])
    return out


def render_html(report: AnalysisReport) -> str:
    """The report as one self-contained HTML page (plotly.js inlined, no network needed)."""
    fig = _Figures()
    parts = [f"<h1>{html.escape(report.title)}</h1><p class='muted'>{html.escape(report.source)}</p>",
             _collapse_section(report.collapse), _metrics_section(report.metrics),
             fig(plot_rank_frequency(report.samples))]
    if report.by_epoch is not None:
        table = report.by_epoch[[c for c in _EPOCH_COLUMNS if c in report.by_epoch.columns]].dropna(axis=1, how="all")
        parts.append("<h2>Across epochs</h2>" + _table(table.to_dict("records")))
        plotted = [c for c in ("bleu", "chrf", "unique_ratio", "top_share", "entropy_norm", "embedding_cosine")
                   if c in table]
        parts.append(fig(plot_metric_by_epoch(table, plotted)))
    if report.comparison is not None:
        parts.append(_comparison_section(report.comparison, fig))
    worst = report.samples.sort_values("sentence_bleu").head(20)
    parts.append("<h2>Lowest-scoring samples</h2>" + _table(
        worst.to_dict("records"), ["id", "reference", "prediction", "sentence_bleu", "sentence_chrf"]))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def write_html_report(path: str | Path, report_or_df: AnalysisReport | pd.DataFrame, **build_kwargs: Any) -> Path:
    """Write a self-contained HTML report to ``path`` (atomically) and return the path.

    Pass an :class:`AnalysisReport`, or a predictions DataFrame plus :func:`build_report` keyword
    arguments (``against``, ``names``, ``train_texts``, ``run_dir``, ``bootstrap``, ``title``).
    """
    if isinstance(report_or_df, pd.DataFrame):
        report = build_report(report_or_df, **build_kwargs)
    elif isinstance(report_or_df, AnalysisReport):
        report = report_or_df
    else:
        raise AnalysisError(
            f"write_html_report needs an AnalysisReport or a DataFrame, got {type(report_or_df).__name__}.")
    path = Path(path)
    atomic_write_text(path, render_html(report))
    return path


def write_json_report(path: str | Path, report: AnalysisReport) -> Path:
    """Write ``report.to_dict()`` as strict JSON (atomically)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(report.to_dict(), ensure_ascii=False, indent=1, allow_nan=False))
    return path
