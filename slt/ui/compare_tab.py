"""Tab 2, Compare: two encoders on one clip (features computed once, word diff) or on a whole evaluation split."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import pandas as pd

from analysis import compare_systems, load_predictions, plot_buckets, plot_pairwise_scatter
from slt.errors import Cancelled, InvalidArgumentError
from slt.ui.common import diff_html, engine_progress, markdown_text, run_cancellable, timings_rows, user_errors
from slt.ui.languages import language_choices
from slt.ui.limits import check_allowed_path, check_frame_size, check_upload
from slt.ui.settings import AppSettings, gradio_upload_dir
from slt.ui.split_eval import SplitPredictor, evaluation_splits
from slt.ui.state import AppState
from slt.ui.translate_tab import session_of

METRICS = ("bleu", "chrf", "rougeL", "wer", "length_ratio")
SIGNIFICANCE_KEYS = {"bleu": "BLEU", "chrf": "chrF2"}  # how analysis.significance names the tested metrics


def metrics_table(report) -> pd.DataFrame:
    """One row per corpus metric: both systems' scores (with 95 % CI half-widths) and the paired p-values."""
    a, b = report.names
    rows = []
    for metric in METRICS:
        row = {"metric": metric}
        for name in (a, b):
            scores = report.corpus[name]
            ci = scores.get("ci", {}).get(metric, {}).get("ci")
            row[name] = round(float(scores[metric]), 2) if ci is None else f"{scores[metric]:.2f} ± {ci:.2f}"
        for test, by_metric in report.significance.items():
            entry = by_metric.get(SIGNIFICANCE_KEYS.get(metric, ""))
            row[f"p ({test})"] = None if entry is None else round(float(entry["p_value"]), 4)
        rows.append(row)
    return pd.DataFrame(rows)


def wins_markdown(report) -> str:
    a, b = report.names
    w = report.wins
    return (f"**{report.n} samples**, per-sample {w['by']}: **{markdown_text(a)}** better on {w[f'{a}_wins']}, "
            f"**{markdown_text(b)}** better on {w[f'{b}_wins']}, ties {w['ties']}.")


def examples_table(report) -> pd.DataFrame:
    """Where each system wins: the largest per-sample differences, both ways."""
    rows = []
    for side, examples in report.examples.items():
        for ex in examples:
            rows.append({"better": side.replace("_better", ""), "id": ex["id"], "reference": ex["reference"],
                         report.names[0]: ex["prediction_a"], report.names[1]: ex["prediction_b"],
                         "delta": round(float(ex["delta"]), 2)})
    return pd.DataFrame(rows, columns=["better", "id", "reference", *report.names, "delta"])


def comparison_outputs(report):
    return (metrics_table(report), wins_markdown(report), plot_pairwise_scatter(report, "bleu"),
            plot_buckets(report, "length"), examples_table(report))


def _no_progress(fraction, desc=None) -> None:
    """Progress reports of a handler called without Gradio (tests, scripts)."""


async def compare_on_clip(state: AppState, video_path, name_a, name_b, lang, session: str,
                          progress: gr.Progress | None = None) -> tuple:
    """The same clip through two encoders, features extracted once and shared: (translations and word diff HTML,
    crop preview, timings rows). A cancel returns the "Cancelled" outputs instead of an error."""
    settings = state.settings
    if not name_a or not name_b or name_a == name_b:
        raise InvalidArgumentError("pick two different encoders to compare")
    path = check_upload(video_path, settings)
    check_frame_size(path, settings)
    lang = lang or "eng_Latn"
    cancel = state.cancel_flag(session)
    report = progress if progress is not None else _no_progress  # (a gr.Progress is falsy)

    def work():
        engine = state.engine(progress=engine_progress(report))
        return engine.translate_batch([path], [lang], encoders=[name_a, name_b],
                                      preprocess=state.preprocess_config(engine),
                                      progress=lambda stage, f: report(f, desc=stage), cancel=cancel)[0]

    try:
        result = await run_cancellable(work, cancel)
    except Cancelled:
        return "<div class='slt-cancelled'><b>Cancelled.</b></div>", None, []
    finally:
        state.release_flag(session, cancel)
    text_a, text_b = result.translations[name_a][lang], result.translations[name_b][lang]
    body = "".join(f"<div class='slt-translation'><b>{html.escape(name)}</b>: "
                   f"<span class='slt-text'>{html.escape(text)}</span></div>"
                   for name, text in ((name_a, text_a), (name_b, text_b)))
    body += f"<div class='slt-diff'><b>diff A → B</b>: {diff_html(text_a, text_b)}</div>"
    return body, result.preview, timings_rows(result.timings)


def compare_on_split(state: AppState, predictor: SplitPredictor, split_label, name_a, name_b,
                     progress: gr.Progress | None = None) -> tuple:
    """Both encoders over a whole evaluation split, then analysis.compare_systems (see comparison_outputs)."""
    if not name_a or not name_b or name_a == name_b:
        raise InvalidArgumentError("pick two different encoders to compare")
    report = progress if progress is not None else _no_progress
    engine = state.engine(progress=engine_progress(report))
    splits = evaluation_splits(engine.model_set.name, state.settings.demo_dir)
    if split_label not in splits:
        raise InvalidArgumentError(
            f"no evaluation split {split_label!r} for model set '{engine.model_set.name}'"
            + (f"; choose one of {list(splits)}" if splits else "; compare two predictions files instead"))
    tables = [predictor.predict(engine, splits[split_label], name, progress=lambda f, desc: report(f, desc=desc))
              for name in (name_a, name_b)]
    report(0.95, desc="significance tests")
    return comparison_outputs(compare_systems(tables[0], tables[1], names=(name_a, name_b), n_bs=1000, n_ar=1000))


def compare_prediction_files(settings: AppSettings, upload_a, upload_b, typed_a, typed_b) -> tuple:
    """Two predictions files (uploaded, or paths inside the allowed directories), compared (see comparison_outputs)."""
    sources = []
    for upload, typed, label in ((upload_a, typed_a, "A"), (upload_b, typed_b, "B")):
        chosen = upload or (typed or "").strip()
        if not chosen:
            raise InvalidArgumentError(f"give predictions {label}: upload a file or type a path")
        sources.append(check_allowed_path(chosen, settings))
    names = tuple(_display_name(p) for p in sources)
    if names[0] == names[1]:
        names = (f"A: {names[0]}", f"B: {names[1]}")
    frames = [load_predictions(p) for p in sources]
    return comparison_outputs(compare_systems(frames[0], frames[1], names=names, n_bs=1000, n_ar=1000))


def build(state: AppState, predictor: SplitPredictor) -> dict[str, gr.components.Component]:
    settings = state.settings
    with gr.Tab("One clip"):
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Signed clip", sources=["upload", "webcam"],
                                 webcam_options=gr.WebcamOptions(mirror=False), height=280)
                with gr.Row():
                    encoder_a = gr.Dropdown(choices=[], label="Encoder A (baseline)", allow_custom_value=True)
                    encoder_b = gr.Dropdown(choices=[], label="Encoder B", allow_custom_value=True)
                language = gr.Dropdown(choices=language_choices(["eng_Latn"]), value="eng_Latn", label="Language")
                run_clip = gr.Button("Compare on this clip", variant="primary")
            with gr.Column():
                clip_result = gr.HTML(value="<em>Both translations and their word diff appear here.</em>")
                clip_preview = gr.Image(label="Crop the model sees", type="numpy", interactive=False)
                clip_timings = gr.Dataframe(headers=["stage", "seconds"], label="Timings (features computed once)",
                                            interactive=False)
    with gr.Tab("Evaluation split"):
        gr.Markdown("Both encoders over a held-out split of the model set (from its pre-extracted features), or two "
                    "predictions files (upload, or a path under the runs directory).")
        with gr.Row():
            split = gr.Dropdown(choices=[], label="Evaluation split", allow_custom_value=True)
            split_a = gr.Dropdown(choices=[], label="Encoder A (baseline)", allow_custom_value=True)
            split_b = gr.Dropdown(choices=[], label="Encoder B", allow_custom_value=True)
            run_split = gr.Button("Compare on split", variant="primary")
        with gr.Row():
            file_a = gr.File(label="Predictions A", file_types=[".jsonl", ".json", ".csv", ".tsv"], type="filepath")
            file_b = gr.File(label="Predictions B", file_types=[".jsonl", ".json", ".csv", ".tsv"], type="filepath")
            with gr.Column():
                path_a = gr.Textbox(label="or path A (run dir or file)")
                path_b = gr.Textbox(label="or path B (run dir or file)")
                run_files = gr.Button("Compare files")
        wins = gr.Markdown()
        table = gr.Dataframe(value=pd.DataFrame(columns=["metric", "encoder A", "encoder B", "p (bs)", "p (ar)"]),
                             label="Corpus metrics (95 % CI) and paired significance (bootstrap, randomisation)",
                             interactive=False)
        with gr.Row():
            scatter = gr.Plot(label="Per-sample sentence BLEU")
            buckets = gr.Plot(label="BLEU by reference length")
        examples = gr.Dataframe(value=pd.DataFrame(columns=["better", "id", "reference", "A", "B", "delta"]),
                                label="Where each system wins", interactive=False, wrap=True)

    @user_errors
    async def compare_clip(video_path, name_a, name_b, lang, request: gr.Request, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """The same clip through two encoders: features are extracted once and shared."""
        return await compare_on_clip(state, video_path, name_a, name_b, lang, session_of(request), progress)

    run_clip.click(compare_clip, [video, encoder_a, encoder_b, language], [clip_result, clip_preview, clip_timings],
                   api_name="compare_clip", concurrency_limit=settings.gpu_concurrency, concurrency_id="gpu")

    @user_errors
    def compare_split(split_label, name_a, name_b, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """Both encoders over a whole evaluation split, then analysis.compare_systems."""
        return compare_on_split(state, predictor, split_label, name_a, name_b, progress)

    run_split.click(compare_split, [split, split_a, split_b], [table, wins, scatter, buckets, examples],
                    api_name="compare_split", concurrency_limit=settings.gpu_concurrency, concurrency_id="gpu")

    @user_errors
    def compare_files(upload_a, upload_b, typed_a, typed_b):
        """Two predictions files (uploaded, or paths inside the allowed directories)."""
        return compare_prediction_files(settings, upload_a, upload_b, typed_a, typed_b)

    # Scoring two files (bootstrap and randomisation tests) is CPU work: it shares the translations' limit.
    run_files.click(compare_files, [file_a, file_b, path_a, path_b], [table, wins, scatter, buckets, examples],
                    api_name="compare_files", concurrency_limit=settings.gpu_concurrency, concurrency_id="gpu")
    return {"encoder_a": encoder_a, "encoder_b": encoder_b, "split_a": split_a, "split_b": split_b, "split": split,
            "language": language}


def _display_name(path: Path) -> str:
    """A run's name, `run/file` for a file in a run, the file's own name for an upload (not its hash folder)."""
    if path.is_dir() or path.is_relative_to(gradio_upload_dir().resolve()):
        return path.name
    return f"{path.parent.name}/{path.name}"
