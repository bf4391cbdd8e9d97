"""Error analysis of sign-language translation predictions: metrics, mode collapse, system comparison, reports.

Usable on its own (``python -m analysis ...``) on files from SLT Studio runs and from other tools.
"""

from analysis.collapse import CollapseReport, CollapseThresholds, collapse_by_epoch, collapse_report
from analysis.compare import ComparisonReport, align_systems, compare_systems, paired_significance, word_diff
from analysis.errors import (
    AlignmentError,
    AnalysisError,
    EmbeddingError,
    FileEncodingError,
    LengthMismatchError,
    ManifestReadError,
    MissingColumnError,
    PredictionsFileError,
    RunDirectoryError,
)
from analysis.loading import list_epochs, load_predictions, load_train_texts
from analysis.metrics import corpus_metrics, sentence_scores
from analysis.plots import plot_buckets, plot_metric_by_epoch, plot_pairwise_scatter, plot_rank_frequency
from analysis.report import AnalysisReport, build_report, render_html, write_html_report

__all__ = [
    "AlignmentError", "AnalysisError", "AnalysisReport", "CollapseReport", "CollapseThresholds", "ComparisonReport",
    "EmbeddingError", "FileEncodingError", "LengthMismatchError", "ManifestReadError", "MissingColumnError",
    "PredictionsFileError", "RunDirectoryError", "align_systems", "build_report", "collapse_by_epoch",
    "collapse_report", "compare_systems", "corpus_metrics", "list_epochs", "load_predictions", "load_train_texts",
    "paired_significance", "plot_buckets", "plot_metric_by_epoch", "plot_pairwise_scatter", "plot_rank_frequency",
    "render_html", "sentence_scores", "word_diff", "write_html_report",
]
