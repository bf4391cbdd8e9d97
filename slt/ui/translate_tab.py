"""Tab 1, Translate: a clip (upload, webcam or example) -> the crop the model sees, translations, timings."""

from __future__ import annotations

import csv
import html
from dataclasses import replace
from pathlib import Path

import gradio as gr

from slt.errors import Cancelled
from slt.ui import live, zerogpu
from slt.ui.common import engine_progress, run_cancellable, timings_rows, user_errors
from slt.ui.languages import language_choices
from slt.ui.limits import check_frame_size, check_upload
from slt.ui.state import AppState
from slt.ui.systems import use_encoder

CANCELLED_HTML = "<div class='slt-cancelled'><b>Cancelled.</b> The translation was stopped.</div>"


def sample_clips(samples_dir: Path) -> list[tuple[Path, str]]:
    """(clip, label) of the shipped sample clips, from samples.tsv when present."""
    index = samples_dir / "samples.tsv"
    if index.is_file():
        with index.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        return [(samples_dir / row["video_path"], f"{row.get('domain', '')}: “{row['translation']}”")
                for row in rows if (samples_dir / row["video_path"]).is_file()]
    return [(path, path.stem) for path in sorted(samples_dir.glob("*.webm"))]


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "api"


def decoding_options(beam_size: int, max_len: int, no_repeat: int):
    from slt.text import DecodingOptions

    return DecodingOptions(beam_size=int(beam_size), max_len=int(max_len), no_repeat_ngram_size=int(no_repeat))


def translations_html(translations: dict[str, dict[str, str]]) -> str:
    """Every (encoder, language) translation, escaped."""
    rows = []
    for encoder, by_language in translations.items():
        for language, text in by_language.items():
            rows.append(f"<div class='slt-translation'><b>{html.escape(encoder)}</b> · "
                        f"<code>{html.escape(language)}</code>: "
                        f"<span class='slt-text'>{html.escape(text)}</span></div>")
    return "\n".join(rows)


def summary_markdown(result) -> str:
    crop = "centre crop (no signer found)" if result.used_center_crop else f"signer box {list(result.box)}"
    return (f"{crop} · face in {result.faces_found}/{result.frames_sampled} sampled frames · "
            f"features {list(result.feature_shape)} · device **{result.device}** ({result.dtype}) · "
            f"model set **{result.model_set}**")


async def translate_clip(state: AppState, video_path, languages_chosen, encoder_name, centre, beam, max_tokens,
                         no_repeat_size, session: str, progress: gr.Progress | None = None) -> tuple:
    """Translate one clip with one encoder into the chosen languages: (translations HTML, crop preview, summary,
    timings rows, result dict). A cancel (the Cancel button, /cancel_translation, or Gradio cancelling the request)
    stops the work within a decoded frame and returns the "Cancelled" outputs instead of an error."""
    settings = state.settings
    path = check_upload(video_path, settings)
    check_frame_size(path, settings)
    cancel = state.cancel_flag(session)
    report = progress if progress is not None else (lambda fraction, desc=None: None)  # (a gr.Progress is falsy)

    def work():
        engine = state.engine(progress=engine_progress(report))  # waits here, in the app, while models load
        preprocess = replace(state.preprocess_config(engine), center_crop_fallback=bool(centre))
        # The GPU entry point (slt.ui.zerogpu): on ZeroGPU the call runs in another process, where a progress
        # callback and a cancel flag cannot follow.
        local = {} if zerogpu.on_zero_gpu() else {"progress": lambda stage, fraction: report(fraction, desc=stage),
                                          "cancel": cancel}
        # A model-set encoder, or a trained system of the runs folder (added to the engine on first use).
        labels = [use_encoder(state, engine, encoder_name)] if encoder_name else None
        return zerogpu.run_engine(
            state.engine_key, "translate_batch", [path], list(languages_chosen or ["eng_Latn"]),
            encoders=labels, decoding=decoding_options(beam, max_tokens, no_repeat_size), preprocess=preprocess,
            added=zerogpu.encoder_sources(engine, labels or []), **local,
        )[0]

    try:
        result = await run_cancellable(work, cancel)
    except Cancelled:
        return CANCELLED_HTML, None, "", [], {"cancelled": True}
    finally:
        state.release_flag(session, cancel)
    details = result.to_dict()
    details["video"] = Path(details["video"]).name  # the upload's name, not its server folder
    return (translations_html(result.translations), result.preview, summary_markdown(result),
            timings_rows(result.timings), details)


def build(state: AppState) -> dict[str, gr.components.Component]:
    """Lay out the tab (inside a gr.Blocks context) and wire its events; returns components the app updates."""
    settings = state.settings
    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Video(label="Signed clip", sources=["upload", "webcam"],
                             webcam_options=gr.WebcamOptions(mirror=False), height=320)
            samples = sample_clips(settings.samples_dir)
            if samples:
                gr.Examples(examples=[[str(path)] for path, _ in samples], inputs=[video],
                            example_labels=[label for _, label in samples], label="Sample clips")
            # Filled with the loaded decoder's languages once the models are ready (app.py): never one it lacks.
            languages = gr.Dropdown(choices=language_choices(["eng_Latn"]), value=["eng_Latn"], multiselect=True,
                                    filterable=True, label="Target languages (type to search)")
            encoder = gr.Dropdown(choices=[], value=None, label="Encoder", allow_custom_value=True)
            with gr.Accordion("Preprocessing and decoding", open=False):
                center_crop = gr.Checkbox(value=False, label="Use a centre crop when no signer is found")
                beam_size = gr.Slider(1, 10, value=5, step=1, label="Beam size")
                max_len = gr.Slider(8, 256, value=128, step=1, label="Max tokens")
                # 1 is not offered: it would forbid the end of sentence (slt.text.options.check_sonar_options).
                no_repeat = gr.Dropdown(choices=[("off", 0)] + [(str(n), n) for n in range(2, 7)], value=0,
                                        label="No-repeat n-gram size")
            gr.Markdown(f"Clips up to {settings.max_upload_mb:g} MB and {settings.max_clip_seconds:g} s.")
            with gr.Row():
                run = gr.Button("Translate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column(scale=1):
            output = gr.HTML(label="Translations", value="<em>Translations appear here.</em>")
            gr.Markdown("**What the model sees:** the first frame with the signer box, then sampled crops")
            # No fixed height: the strip is wide (a frame and 6 crops) and a fixed height cut its right end off.
            preview = gr.Image(show_label=False, type="numpy", interactive=False, elem_id="slt-preview")
            summary = gr.Markdown()
            timings = gr.Dataframe(headers=["stage", "seconds"], label="Timings", interactive=False)
            details = gr.JSON(label="Result (JSON)")
    live.build(state, languages, encoder)  # the Live mode: webcam frames -> captions as sentences end

    @user_errors
    async def translate(video_path, languages_chosen, encoder_name, centre, beam, max_tokens, no_repeat_size,
                        request: gr.Request, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """Translate one clip with one encoder into the chosen languages."""
        return await translate_clip(state, video_path, languages_chosen, encoder_name, centre, beam, max_tokens,
                                    no_repeat_size, session_of(request), progress)

    event = run.click(translate, [video, languages, encoder, center_crop, beam_size, max_len, no_repeat],
                      [output, preview, summary, timings, details], api_name="translate",
                      concurrency_limit=settings.gpu_concurrency, concurrency_id="gpu")

    def stop(request: gr.Request):
        """Cancel this session's running translation (it stops within a decoded frame)."""
        return CANCELLED_HTML if state.cancel(session_of(request)) else gr.update()

    # `cancels` makes Gradio cancel the request (run_cancellable then stops its thread); `stop` also serves API
    # clients, which cancel by session. Queued like every API endpoint (see app.py).
    cancel.click(stop, None, output, cancels=[event], api_name="cancel_translation", concurrency_id="light",
                 concurrency_limit=8, show_progress="hidden")
    return {"languages": languages, "encoder": encoder}
