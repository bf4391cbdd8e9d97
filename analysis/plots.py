"""Plotly figures for the app and the HTML report. Each function returns a ``plotly.graph_objects.Figure``."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analysis.collapse import read_metrics_log
from analysis.compare import ComparisonReport
from analysis.errors import AnalysisError

__all__ = ["plot_metric_by_epoch", "plot_rank_frequency", "plot_pairwise_scatter", "plot_buckets"]

_SHARE_COLUMNS = {"unique_ratio", "top_share", "entropy_norm", "distinct_1", "distinct_2", "embedding_cosine",
                  "train_copy_share"}  # figures in [0, 1]: drawn against a second axis


def _wrap(text: str, width: int = 80) -> str:
    """Hover text: escaped and cut, so a 10k-character prediction does not swamp the tooltip."""
    text = html.escape(text if len(text) <= 300 else text[:300] + "…")
    return "<br>".join(text[i : i + width] for i in range(0, len(text), width)) or "(empty)"


def plot_metric_by_epoch(source: str | Path | pd.DataFrame, metrics: Sequence[str] | None = None) -> go.Figure:
    """Lines of metrics by epoch from a run directory's ``metrics.jsonl`` or any table with an ``epoch`` column
    (e.g. :func:`analysis.collapse_by_epoch`). Scores (BLEU, chrF) use the left axis, shares in [0, 1] the right."""
    table = read_metrics_log(source) if not isinstance(source, pd.DataFrame) else source
    if table.empty or "epoch" not in table.columns:
        raise AnalysisError("No per-epoch metrics to plot (no metrics.jsonl records with an 'epoch').")
    if metrics is None:
        metrics = [c for c in ("bleu", "chrf", "val_loss", *sorted(_SHARE_COLUMNS))
                   if c in table.columns and table[c].notna().any()]
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise AnalysisError(f"Metric(s) {missing} not in the table; available: {sorted(map(str, table.columns))}.")
    per_epoch = table.groupby("epoch", as_index=False)[list(metrics)].last().sort_values("epoch")
    fig = go.Figure()
    for m in metrics:
        fig.add_trace(go.Scatter(x=per_epoch["epoch"], y=per_epoch[m], mode="lines+markers", name=m,
                                 yaxis="y2" if m in _SHARE_COLUMNS else "y"))
    fig.update_layout(title="Metrics by epoch", xaxis_title="epoch", yaxis_title="score",
                      yaxis2={"title": "share", "overlaying": "y", "side": "right", "range": [0, 1.05]},
                      legend={"orientation": "h"})
    return fig


def plot_rank_frequency(df: pd.DataFrame, with_references: bool = True, top: int = 200) -> go.Figure:
    """How often each distinct prediction occurs, by rank (log-log); a collapsed system has a towering rank 1."""
    fig = go.Figure()
    columns = ["prediction", "reference"] if with_references else ["prediction"]
    for col in columns:
        counts = Counter(" ".join(str(t).split()) for t in df[col]).most_common(top)
        fig.add_trace(go.Scatter(
            x=list(range(1, len(counts) + 1)), y=[c for _, c in counts], mode="lines+markers",
            name=f"{col}s", text=[_wrap(t) for t, _ in counts],
            hovertemplate="rank %{x}: %{y} inputs<br>%{text}<extra></extra>",
        ))
    fig.update_layout(title="Prediction frequency by rank", xaxis={"title": "rank", "type": "log"},
                      yaxis={"title": "number of inputs", "type": "log"})
    return fig


def plot_pairwise_scatter(report: ComparisonReport, metric: str = "bleu") -> go.Figure:
    """Per-sample score of system A (x) against system B (y); points above the diagonal are B's wins."""
    if metric not in ("bleu", "chrf"):
        raise AnalysisError(f"Scatter metric must be 'bleu' or 'chrf', not {metric!r}.")
    s = report.samples
    a, b = report.names
    hover = [f"id {html.escape(str(i))}<br>ref: {_wrap(r)}<br>"
             f"{html.escape(a)}: {_wrap(pa)}<br>{html.escape(b)}: {_wrap(pb)}"
             for i, r, pa, pb in zip(s["id"], s["reference"], s["prediction_a"], s["prediction_b"])]
    fig = go.Figure(go.Scatter(x=s[f"{metric}_a"], y=s[f"{metric}_b"], mode="markers", text=hover,
                               marker={"opacity": 0.6}, hovertemplate="%{text}<extra></extra>", name="samples"))
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line={"dash": "dot", "color": "grey"}, name="tie"))
    fig.update_layout(title=f"Sentence {metric.upper()}: {a} vs {b}", xaxis_title=f"{a}", yaxis_title=f"{b}",
                      xaxis={"range": [-2, 102]}, yaxis={"range": [-2, 102]})
    return fig


def plot_buckets(report: ComparisonReport, kind: str = "length") -> go.Figure:
    """Grouped bars: corpus BLEU by reference-length bucket (``kind="length"``) or the number of samples
    in each sentence-BLEU bucket (``kind="score"``), one bar per system."""
    a, b = report.names
    if kind == "length":
        rows, ka, kb = report.length_buckets, "bleu_a", "bleu_b"
        ytitle, xtitle = "corpus BLEU", "reference length (tokens)"
    elif kind == "score":
        rows, ka, kb, ytitle, xtitle = report.score_buckets, "count_a", "count_b", "samples", "sentence BLEU"
    else:
        raise AnalysisError(f"Bucket kind must be 'length' or 'score', not {kind!r}.")
    labels = [r["bucket"] for r in rows]
    fig = go.Figure([go.Bar(x=labels, y=[r[ka] for r in rows], name=a),
                     go.Bar(x=labels, y=[r[kb] for r in rows], name=b)])
    fig.update_layout(barmode="group", title=f"{ytitle} by {xtitle}", xaxis_title=xtitle, yaxis_title=ytitle)
    return fig
