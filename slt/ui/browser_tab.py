"""Tab 3, Predictions browser: a run's (or an uploaded file's) samples, their videos, epochs and mode collapse."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import pandas as pd

from analysis import (
    collapse_by_epoch,
    collapse_report,
    list_epochs,
    load_predictions,
    plot_metric_by_epoch,
    plot_rank_frequency,
)
from analysis.metrics import sentence_scores
from slt.data.manifest import read_manifest
from slt.demo.examples import COLLAPSE_EXAMPLES, collapse_example_runs
from slt.errors import InvalidArgumentError, ManifestError, ModelUnavailableError
from slt.modelset import read_demo_bundle
from slt.ui.common import markdown_text, user_errors
from slt.ui.limits import check_allowed_path
from slt.ui.media import browser_playable
from slt.ui.settings import DEMO_RUN_NAMES, AppSettings, gradio_upload_dir
from slt.ui.state import AppState

TABLE_COLUMNS = ["id", "reference", "prediction", "sentence_bleu", "sentence_chrf", "ref_len", "hyp_len"]


HISTORY_COLUMNS = ["epoch", "prediction", "sentence_bleu", "sentence_chrf"]
FIGURE_COLUMNS = ["figure", "value"]
GENERIC_COLUMNS = ["text", "inputs", "correct_for", "in_references"]
DEMO_PREFIX = "demo/"  # choice values of the demo set's example runs (never a server path in the page)
DEMO_RUNS = DEMO_RUN_NAMES  # shipped with the demo set, so the browser has runs to show on a first visit
EXAMPLE_PREFIX = "example/"  # choice values of the shipped collapse examples (slt/demo/collapse_examples)


def list_runs(runs_dir: Path) -> list[str]:
    """Run folders (newest first) that hold predictions files."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and any(p.glob("predictions_*.jsonl"))]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def demo_runs(demo_root: Path) -> dict[str, Path]:
    """The demo set's example runs that exist (name -> folder)."""
    found = {name: Path(demo_root) / "work" / name for name in DEMO_RUNS}
    return {name: path for name, path in found.items() if any(path.glob("predictions_*.jsonl"))}


def run_choices(settings) -> list[tuple[str, str]]:
    """(label, value) of every browsable run: the runs folder's (newest first), the demo's example runs, then the
    shipped mode-collapse case (the same recipe with two bridges: one collapsed, one healthy)."""
    choices = [(name, name) for name in list_runs(settings.runs_dir)]
    choices += [(f"{name}: {DEMO_RUNS[name]} (demo example)", DEMO_PREFIX + name)
                for name in demo_runs(settings.demo_dir)]
    choices += [(f"{name}: {what} (example)", EXAMPLE_PREFIX + name) for name, what in COLLAPSE_EXAMPLES.items()]
    return choices


def resolve_run(settings, value: str) -> Path:
    """A run choice's folder: a demo example run, or a folder of the runs directory (checked by the caller)."""
    if value.startswith(DEMO_PREFIX) and value[len(DEMO_PREFIX):] in DEMO_RUNS:
        return Path(settings.demo_dir) / "work" / value[len(DEMO_PREFIX):]
    if value.startswith(EXAMPLE_PREFIX) and value[len(EXAMPLE_PREFIX):] in COLLAPSE_EXAMPLES:
        return collapse_example_runs()[value[len(EXAMPLE_PREFIX):]]
    return settings.runs_dir / value


def refresh_runs_for(state: AppState):
    """An event handler that re-lists the runs (a run started from the Train tab appears once it has predictions)."""

    def refresh():
        return gr.update(choices=run_choices(state.settings))

    return refresh


def samples_table(df: pd.DataFrame) -> pd.DataFrame:
    """The browser table: per-sample BLEU/chrF and lengths, scores rounded for reading."""
    scored = sentence_scores(df)
    table = scored[TABLE_COLUMNS].copy()
    for column in ("sentence_bleu", "sentence_chrf"):
        table[column] = table[column].round(2)
    return table


class VideoIndex:
    """Sample id -> video file, from the manifests the app knows (shipped samples, the demo set's corpora)."""

    def __init__(self, manifests: list[Path]):
        self._manifests = manifests
        self._index: dict[str, Path] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, samples_dir: Path, demo_root: Path) -> VideoIndex:
        manifests = [samples_dir / "samples.tsv"]
        try:
            manifests += [path for splits in read_demo_bundle(demo_root).corpora.values() for path in splits.values()]
        except ModelUnavailableError:
            pass  # no demo set: only the shipped samples have videos
        return cls(manifests)

    def find(self, sample_id: str) -> Path | None:
        with self._lock:
            if self._index is None:
                self._index = {}
                for manifest in self._manifests:
                    try:
                        rows = read_manifest(manifest, check_files=False).rows
                    except ManifestError:
                        continue
                    self._index.update({row.id: row.video_path for row in rows})
        path = self._index.get(str(sample_id))
        return path if path is not None and path.is_file() else None


class EpochCache:
    """Each epoch's predictions of a run, loaded once per file version, for the per-sample history."""

    def __init__(self):
        self._frames: dict[tuple[str, int, int], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def history(self, run_dir: Path, sample_id: str) -> pd.DataFrame:
        rows = []
        for epoch in list_epochs(run_dir):
            path = run_dir / f"predictions_epoch{epoch}.jsonl"
            key = (str(path), epoch, path.stat().st_mtime_ns)
            with self._lock:
                if key not in self._frames:
                    scored = sentence_scores(load_predictions(run_dir, epoch=epoch))
                    self._frames[key] = scored.set_index("id", drop=False)
                frame = self._frames[key]
            if sample_id in frame.index:
                hit = frame.loc[sample_id]
                hit = hit.iloc[0] if isinstance(hit, pd.DataFrame) else hit
                rows.append({"epoch": epoch, "prediction": hit["prediction"],
                             "sentence_bleu": round(float(hit["sentence_bleu"]), 2),
                             "sentence_chrf": round(float(hit["sentence_chrf"]), 2)})
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def collapse_outputs(df: pd.DataFrame, run_dir: Path | None):
    """Verdict (markdown), figures table, generic predictions table, rank/frequency plot, figures-by-epoch plot."""
    report = collapse_report(df)
    # Reasons quote predictions: user data, shown as text (a prediction "<img src=x>" must not become an element).
    verdict = (f"### Mode collapse: **{markdown_text(report.verdict)}**\n"
               + "\n".join(f"- {markdown_text(r)}" for r in report.reasons + report.notes))
    figures = pd.DataFrame([{"figure": k, "value": v if not isinstance(v, float) else round(v, 4)}
                            for k, v in report.figures.items() if v is not None and not k.startswith("ref_")])
    generic = pd.DataFrame(report.generic_details, columns=GENERIC_COLUMNS)
    by_epoch = None
    if run_dir is not None and len(list_epochs(run_dir)) > 0:
        table = collapse_by_epoch(run_dir)
        metrics = [c for c in ("bleu", "chrf", "unique_ratio", "top_share", "entropy_norm") if c in table.columns]
        by_epoch = plot_metric_by_epoch(table, metrics)
    return verdict, figures, generic, plot_rank_frequency(df), by_epoch


def run_values(settings: AppSettings) -> list[str]:
    """Names of the runs with predictions (what the Run dropdown offers; the /list_runs endpoint)."""
    return [value for _, value in run_choices(settings)]


def epoch_choices(settings: AppSettings, run_name):
    """The Epoch dropdown's update for a chosen run: "last" and each epoch with a predictions file."""
    if not run_name:
        return gr.update(choices=["last"], value="last")
    run_dir = check_allowed_path(resolve_run(settings, run_name), settings)
    return gr.update(choices=["last", *map(str, list_epochs(run_dir))], value="last")


OPENED_OUTPUTS = 8  # open_run's outputs: label, samples table, source, and collapse_outputs' five


def open_run(settings: AppSettings, run_name, epoch_choice, typed, uploaded) -> tuple:
    """Load a run's (or file's) predictions: (label, samples table, the loaded source, *collapse_outputs)."""
    chosen = uploaded or (typed or "").strip() or (str(resolve_run(settings, run_name)) if run_name else "")
    if not chosen:
        raise InvalidArgumentError("choose a run, type a path or upload a predictions file")
    target = check_allowed_path(chosen, settings)
    ep = None if epoch_choice in (None, "", "last") or not target.is_dir() else (
        "test" if epoch_choice == "test" else int(epoch_choice))
    df = load_predictions(target, epoch=ep)
    run_dir = target if target.is_dir() else None
    outputs = collapse_outputs(df, run_dir)
    label = (f"**{markdown_text(target.name)}**" + (f", epoch {ep}" if ep is not None else "")
             + f": {len(df)} samples")
    return (label, samples_table(df), str(target), *outputs)


def first_visit_updates(settings: AppSettings, loaded_source) -> list:
    """On opening the tab: the Run dropdown re-listed, and, if nothing is open yet, the first run opened (the demo's
    example run): [run dropdown update, *open_run outputs] (no-change updates when something is open)."""
    choices = run_choices(settings)
    if loaded_source or not choices:
        return [gr.update(choices=choices)] + [gr.update()] * OPENED_OUTPUTS
    first = choices[0][1]
    return [gr.update(choices=choices, value=first), *open_run(settings, first, "last", "", None)]


def sample_details(videos: VideoIndex, epochs_cache: EpochCache, loaded_source, row) -> tuple:
    """A clicked row's (values) video, playable in a browser when a manifest knows it, and its predictions across
    the loaded run's epochs: (video path or None, history table)."""
    if not row:
        return None, pd.DataFrame()
    sample_id = str(row[0])
    clip = videos.find(sample_id)
    run_dir = Path(loaded_source) if loaded_source and Path(loaded_source).is_dir() else None
    past = epochs_cache.history(run_dir, sample_id) if run_dir else pd.DataFrame()
    playable = browser_playable(clip, gradio_upload_dir() / "slt-playable") if clip else None
    return (str(playable) if playable else None), past


def build(state: AppState) -> dict[str, gr.components.Component]:
    settings = state.settings
    videos = VideoIndex.for_settings(settings.samples_dir, settings.demo_dir)
    epochs_cache = EpochCache()
    source = gr.State(None)  # the loaded run dir or file (a string)
    with gr.Row():
        run = gr.Dropdown(choices=run_choices(settings), label="Run (from the runs directory)",
                          allow_custom_value=True)
        refresh = gr.Button("↻ Refresh runs", size="sm")
        epoch = gr.Dropdown(choices=["last"], value="last", label="Epoch", allow_custom_value=True)
        path = gr.Textbox(label="or a path (run dir or predictions file)")
        upload = gr.File(label="or upload predictions", file_types=[".jsonl", ".json", ".csv", ".tsv"], type="filepath")
        load = gr.Button("Open", variant="primary")
    loaded = gr.Markdown()
    # Empty tables start with their real column names (not Gradio's placeholder 1, 2, 3).
    table = gr.Dataframe(value=pd.DataFrame(columns=TABLE_COLUMNS), interactive=False, show_search="search",
                         label="Samples (click a row; sort by a column header; search)", wrap=True, max_height=420)
    with gr.Row():
        video = gr.Video(label="Sample video", interactive=False, height=260)
        history = gr.Dataframe(value=pd.DataFrame(columns=HISTORY_COLUMNS), interactive=False, wrap=True,
                               label="This sample's predictions across epochs")
    with gr.Accordion("Mode collapse", open=True):
        verdict = gr.Markdown()
        with gr.Row():
            figures = gr.Dataframe(value=pd.DataFrame(columns=FIGURE_COLUMNS), label="Figures", interactive=False)
            generic = gr.Dataframe(value=pd.DataFrame(columns=GENERIC_COLUMNS), interactive=False, wrap=True,
                                   label="Generic predictions (how many inputs each covers)")
        with gr.Row():
            rank_plot = gr.Plot(label="Rank / frequency")
            epoch_plot = gr.Plot(label="Figures by epoch")

    refresh.click(refresh_runs_for(state), None, run, api_visibility="private", queue=False)

    def runs() -> list[str]:
        """Names of the runs with predictions (what the Run dropdown offers)."""
        return run_values(settings)

    gr.api(runs, api_name="list_runs", concurrency_id="light", concurrency_limit=8)  # API only: no component

    @user_errors
    def pick_epochs(run_name):
        return epoch_choices(settings, run_name)

    run.change(pick_epochs, run, epoch, api_visibility="private")

    @user_errors
    def open_predictions(run_name, epoch_choice, typed, uploaded):
        """Load a run's (or file's) predictions: samples table, collapse panel."""
        return open_run(settings, run_name, epoch_choice, typed, uploaded)

    opened = [loaded, table, source, verdict, figures, generic, rank_plot, epoch_plot]
    assert len(opened) == OPENED_OUTPUTS
    load.click(open_predictions, [run, epoch, path, upload], opened, api_name="load_predictions")

    @user_errors
    def first_visit(loaded_source):
        """On opening the tab: re-list the runs; if nothing is open yet, open the first run (the demo's example)."""
        return first_visit_updates(settings, loaded_source)

    @user_errors
    def select_sample(loaded_source, evt: gr.SelectData):
        """A clicked row: its video (when a manifest knows it) and its predictions across the run's epochs."""
        return sample_details(videos, epochs_cache, loaded_source, evt.row_value)

    table.select(select_sample, [source], [video, history], api_visibility="private")
    return {"run": run, "first_visit": (first_visit, [source], [run, *opened])}
