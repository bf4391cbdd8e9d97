"""Tab 2, Compare: two encoders on one clip (features computed once, word diff) or on a whole evaluation split.

Besides the model set's encoders, a trained system can be picked: a two-stage (or stage-1) run of the runs folder
with a ``system.json`` (listed as ``system:<run>``), or, for admins only, a typed path to such a run. A system reads
its own SignHiera, so its features cannot be shared with an encoder of the set: the tab says so, and the clip goes
through both video models (the timings show both passes).
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import pandas as pd

from analysis import compare_systems, load_predictions, plot_buckets, plot_pairwise_scatter
from slt.errors import Cancelled, InvalidArgumentError, SLTError
from slt.ui import zerogpu
from slt.ui.common import diff_html, engine_progress, markdown_text, run_cancellable, timings_rows, user_errors
from slt.ui.languages import language_choices
from slt.ui.limits import check_allowed_path, check_frame_size, check_upload
from slt.ui.settings import AppSettings, gradio_upload_dir
from slt.ui.split_eval import SplitPredictor, evaluation_splits
from slt.ui.state import AppState
from slt.ui.systems import SYSTEM_PREFIX, compare_choices, pick_system, use_encoder
from slt.ui.translate_tab import session_of

METRICS = ("bleu", "chrf", "rougeL", "wer", "length_ratio")
SIGNIFICANCE_KEYS = {"bleu": "BLEU", "chrf": "chrF2"}  # how analysis.significance names the tested metrics
NOT_SHARED = ("features cannot be shared: this system runs its own SignHiera, so the clip goes through the video "
              "model twice")


def pair_notice(state: AppState, name_a, name_b, token: str | None = None) -> str:
    """What the tab says about a pair before it runs: both read one SignHiera (features shared), or not."""
    if not name_a or not name_b or state.loader.status.phase != "ready":
        return ""
    engine = state.loader.wait()

    def signhiera(name: str) -> str:
        name = name.strip()
        if name in engine.encoder_names and not name.startswith(SYSTEM_PREFIX):
            return engine.signhiera_key(name)
        return str(pick_system(state.settings, name, token).signhiera.resolve())

    try:
        shared = signhiera(name_a) == signhiera(name_b)
    except SLTError:  # an unknown or refused choice: running the comparison says why
        return ""
    if shared:
        return "Both read the same SignHiera: the clip's features are computed once and shared."
    return f"⚠️ **Features cannot be shared**: {NOT_SHARED.split(': ', 1)[1]}."


def refresh_choices(state: AppState) -> tuple:
    """The clip comparison's choices again (a run may have finished and written its system.json since)."""
    if state.loader.status.phase != "ready":
        return gr.update(), gr.update()
    choices = compare_choices(state.settings, state.loader.wait())
    return gr.update(choices=choices), gr.update(choices=choices)


def signhiera_by_entry(settings: AppSettings, engine) -> dict[str, str]:
    """Encoder label -> the SignHiera it reads: "model set", or its checkpoint relative to the runs folder (else the
    file name on an exposed app, which shows no server paths)."""
    runs = settings.runs_dir.resolve()
    shown = {}
    for label in engine.encoder_names:
        described = engine.signhiera_description(label)
        source = engine.model_set.signhiera_of(label)
        if described != "model set" and isinstance(source, Path):
            path = source.resolve()
            described = (path.relative_to(runs).as_posix() if path.is_relative_to(runs)
                         else path.name if settings.exposed else str(path))
        shown[label] = described
    return shown


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
                          progress: gr.Progress | None = None, token: str | None = None) -> tuple:
    """The same clip through two encoders or systems: (translations, word diff and SignHiera notice HTML, crop
    preview, timings rows). Features are extracted once and shared when both read the same SignHiera; a system with
    its own SignHiera costs a second SignHiera pass, which the notice and the timings show. A cancel returns the
    "Cancelled" outputs instead of an error."""
    settings = state.settings
    name_a, name_b = (name_a or "").strip(), (name_b or "").strip()
    if not name_a or not name_b or name_a == name_b:
        raise InvalidArgumentError("pick two different encoders to compare")
    path = check_upload(video_path, settings)
    check_frame_size(path, settings)
    lang = lang or "eng_Latn"
    cancel = state.cancel_flag(session)
    report = progress if progress is not None else _no_progress  # (a gr.Progress is falsy)
    labels: list[str] = []

    def work():
        engine = state.engine(progress=engine_progress(report))  # waits here, in the app, while models load
        labels.extend(use_encoder(state, engine, name, token) for name in (name_a, name_b))
        local = {} if zerogpu.on_zero_gpu() else {"progress": lambda stage, f: report(f, desc=stage), "cancel": cancel}
        return zerogpu.run_engine(state.engine_key, "translate_batch", [path], [lang], encoders=labels,
                                  preprocess=state.preprocess_config(engine),
                                  added=zerogpu.encoder_sources(engine, labels), **local)[0]

    try:
        result = await run_cancellable(work, cancel)
    except Cancelled:
        return "<div class='slt-cancelled'><b>Cancelled.</b></div>", None, []
    finally:
        state.release_flag(session, cancel)
    label_a, label_b = labels
    text_a, text_b = result.translations[label_a][lang], result.translations[label_b][lang]
    body = "".join(f"<div class='slt-translation'><b>{html.escape(name)}</b>: "
                   f"<span class='slt-text'>{html.escape(text)}</span></div>"
                   for name, text in ((label_a, text_a), (label_b, text_b)))
    body += f"<div class='slt-diff'><b>diff A → B</b>: {diff_html(text_a, text_b)}</div>"
    body += signhiera_notice(result, label_a, label_b)
    return body, result.preview, timings_rows(result.timings)


def signhiera_notice(result, label_a: str, label_b: str) -> str:
    """Whether the two read one SignHiera (features shared) or not (two video-model passes, with their times)."""
    own = [label for label in (label_a, label_b) if result.signhiera.get(label) != "model set"]
    if result.signhiera.get(label_a) == result.signhiera.get(label_b):
        return ("<div class='slt-notice'>Both read the same SignHiera: the clip's features were computed once and "
                "shared.</div>")
    passes = ", ".join(f"{html.escape(stage)} {seconds:.2f} s" for stage, seconds in result.timings.items()
                       if stage == "signhiera" or stage.startswith("signhiera:"))
    who = " and ".join(f"<b>{html.escape(label)}</b>" for label in own)
    return (f"<div class='slt-notice slt-not-shared'>⚠️ <b>Features cannot be shared</b>: {who} "
            f"{'runs its' if len(own) == 1 else 'run their'} own SignHiera, so the clip goes through the video "
            f"model twice (SignHiera passes: {passes}).</div>")


def compare_on_split(state: AppState, predictor: SplitPredictor, split_label, name_a, name_b,
                     progress: gr.Progress | None = None) -> tuple:
    """Both encoders over a whole evaluation split, then analysis.compare_systems (see comparison_outputs)."""
    if not name_a or not name_b or name_a == name_b:
        raise InvalidArgumentError("pick two different encoders to compare")
    report = progress if progress is not None else _no_progress
    engine = state.engine(progress=engine_progress(report))
    for name in (name_a, name_b):
        if name.startswith(SYSTEM_PREFIX) or name not in engine.encoder_names:
            raise InvalidArgumentError(
                f"{name!r} is not an encoder of the model set: a trained system runs its own SignHiera, and this "
                "split's features come from the set's. Score it with `python -m slt evaluate --system RUN` and "
                "compare its predictions file below")
    splits = evaluation_splits(engine.model_set.name, state.settings.demo_dir)
    if split_label not in splits:
        raise InvalidArgumentError(
            f"no evaluation split {split_label!r} for model set '{engine.model_set.name}'"
            + (f"; choose one of {list(splits)}" if splits else "; compare two predictions files instead"))
    on_device = zerogpu.device_engine(engine, state.engine_key)  # on ZeroGPU, each batch's model calls get the GPU
    tables = [predictor.predict(on_device, splits[split_label], name, progress=lambda f, desc: report(f, desc=desc))
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
                    encoder_b = gr.Dropdown(choices=[], label="Encoder B or a trained system",
                                            allow_custom_value=True,
                                            info="system:<run>: a trained run's encoder + its own SignHiera")
                    refresh = gr.Button("↻ systems", scale=0, min_width=90)
                admin_token = gr.Textbox(label="Token for a typed system path (SLT_ADMIN_TOKEN; not for the list)",
                                         type="password", visible=settings.admin_token is not None)
                pair_info = gr.Markdown(elem_classes=["slt-pair-notice"])
                language = gr.Dropdown(choices=language_choices(["eng_Latn"]), value="eng_Latn", label="Language")
                run_clip = gr.Button("Compare on this clip", variant="primary")
            with gr.Column():
                clip_result = gr.HTML(value="<em>Both translations and their word diff appear here.</em>")
                clip_preview = gr.Image(label="Crop the model sees", type="numpy", interactive=False)
                clip_timings = gr.Dataframe(headers=["stage", "seconds"],
                                            label="Timings (one SignHiera pass per distinct SignHiera)",
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
    async def compare_clip(video_path, name_a, name_b, lang, token: str | None = None, request: gr.Request = None,
                           progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """The same clip through two encoders or systems: features are shared when both read one SignHiera (the
        token is optional: only an admin's path to a system outside the list needs it)."""
        return await compare_on_clip(state, video_path, name_a, name_b, lang, session_of(request), progress, token)

    run_clip.click(compare_clip, [video, encoder_a, encoder_b, language, admin_token],
                   [clip_result, clip_preview, clip_timings], api_name="compare_clip",
                   concurrency_limit=settings.gpu_concurrency, concurrency_id="gpu")

    def describe_pair(name_a, name_b, token):
        return pair_notice(state, name_a, name_b, token)

    for box in (encoder_a, encoder_b):
        box.change(describe_pair, [encoder_a, encoder_b, admin_token], pair_info, api_visibility="private",
                   concurrency_id="light", concurrency_limit=8, show_progress="hidden")
    refresh.click(lambda: refresh_choices(state), None, [encoder_a, encoder_b], api_visibility="private",
                  concurrency_id="light", concurrency_limit=8)

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
