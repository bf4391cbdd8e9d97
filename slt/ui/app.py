"""The Gradio Blocks app: a status line over four tabs, all backed by the process's one TranslationEngine."""

from __future__ import annotations

import gradio as gr

from slt.ui import browser_tab, compare_tab, systems, train_tab, translate_tab, zerogpu
from slt.ui.common import CSS
from slt.ui.languages import language_choices
from slt.ui.split_eval import SplitPredictor, evaluation_splits
from slt.ui.state import AppState

TITLE = "SLT Studio: sign language video → text (SONAR ASL)"
DEMO_NOTICE = ("\n\n⚠️ **These are the offline demo models.** They were trained only on this project's synthetic "
               "corpus (a drawn signer signing sentences of a small English grammar, like the sample clips) and "
               "translate only English: they do not understand real signing. Meta's released models are used "
               "when they are cached or can be downloaded (`--model-set official`).")


def model_status_updates(state: AppState) -> dict:
    """The status line and timer and, once the models are ready, the choices of every encoder, language and split
    box, keyed by box name (testable without building the UI)."""
    current = state.loader.status
    icon = {"ready": "✅", "failed": "❌"}.get(current.phase, "⏳")
    line = f"{icon} **Models:** {current.message}"
    if current.phase != "ready":
        return {"status": line, "timer": gr.Timer(active=current.phase != "failed")}
    engine = state.loader.wait()
    if engine.model_set.name == "demo":
        line += DEMO_NOTICE
    names = engine.encoder_names
    second = names[1] if len(names) > 1 else names[0]
    choices = systems.compare_choices(state.settings, engine)  # plus the runs folder's trained systems
    languages = language_choices(engine.languages)
    default_language = "eng_Latn" if "eng_Latn" in engine.languages else engine.languages[0]
    splits = list(evaluation_splits(engine.model_set.name, state.settings.demo_dir))
    return {
        "status": line, "timer": gr.Timer(active=False),
        "translate_encoder": gr.update(choices=choices, value=names[0]),
        "encoder_a": gr.update(choices=choices, value=names[0]), "encoder_b": gr.update(choices=choices, value=second),
        "split_a": gr.update(choices=names, value=names[0]), "split_b": gr.update(choices=names, value=second),
        "translate_languages": gr.update(choices=languages, value=[default_language]),
        "compare_language": gr.update(choices=languages, value=default_language),
        "split": gr.update(choices=splits, value=splits[0] if splits else None),
    }


def build_app(state: AppState) -> gr.Blocks:
    """Lay out the whole UI; the model loader must be started separately (see :func:`launch`)."""
    predictor = SplitPredictor()
    with gr.Blocks(title="SLT Studio") as demo:
        gr.Markdown(f"# {TITLE}")
        status = gr.Markdown(elem_id="slt-model-status")
        with gr.Tabs():
            with gr.Tab("Translate", id="translate"):
                translate = translate_tab.build(state)
            with gr.Tab("Compare", id="compare"):
                compare = compare_tab.build(state, predictor)
            with gr.Tab("Predictions browser", id="browser") as browser_tab_item:
                browser = browser_tab.build(state)
            with gr.Tab("Train", id="train"):
                train_tab.build(state)
        ready_timer = gr.Timer(1.0)
        boxes = {"status": status, "timer": ready_timer, "translate_encoder": translate["encoder"],
                 "encoder_a": compare["encoder_a"], "encoder_b": compare["encoder_b"], "split_a": compare["split_a"],
                 "split_b": compare["split_b"], "translate_languages": translate["languages"],
                 "compare_language": compare["language"], "split": compare["split"]}

        def model_status():
            """{component: update}: only what changed (Gradio leaves the other outputs as they are)."""
            updates = model_status_updates(state)
            return {boxes[name]: update for name, update in updates.items()}

        outputs = list(boxes.values())
        ready_timer.tick(model_status, None, outputs, api_visibility="private", queue=False, show_progress="hidden")
        # Hidden progress: components in tabs not yet shown would otherwise keep a spinner until their next update.
        demo.load(model_status, None, outputs, api_visibility="private", queue=False, show_progress="hidden")

        def model_info() -> dict:
            """What the app runs on: loader state and, when ready, the model set, encoders (and the SignHiera each
            reads), the runs folder's trained systems, languages, device."""
            current = state.loader.status
            info = {"phase": current.phase, "message": current.message}
            if current.phase == "ready":
                engine = state.loader.wait()
                info.update(model_set=engine.model_set.name, encoders=engine.encoder_names,
                            signhiera=compare_tab.signhiera_by_entry(state.settings, engine),
                            systems=systems.system_choices(state.settings), device=str(engine.device),
                            languages=engine.languages[:10], n_languages=len(engine.languages))
            return info

        # An API-only endpoint (no hidden component). Queued: a queue=False event completes inside its own join
        # request, before gradio_client has registered it, which breaks a client with another request running.
        gr.api(model_info, api_name="model_info", concurrency_id="light", concurrency_limit=8)
        # The first visit opens the demo's example run; the run list may have grown (a training run finished).
        first_visit, visit_inputs, visit_outputs = browser["first_visit"]
        browser_tab_item.select(first_visit, visit_inputs, visit_outputs, api_visibility="private",
                                concurrency_id="light", concurrency_limit=8)
    return demo


def launch(state: AppState, prevent_thread_lock: bool = False, **kwargs):
    """Start loading models in the background, then serve the app with the queue, limits and allowed paths."""
    settings = state.settings
    state.loader.start()
    if zerogpu.on_zero_gpu():
        # ZeroGPU packs the weights the app has moved to "cuda" when the app launches and hands them to each GPU
        # call's worker process: the models must be loaded before launch (elsewhere they load in the background).
        state.loader.wait()
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    demo = build_app(state)
    # Light events (browsing, status) get their own small pools; GPU work shares the "gpu" concurrency id.
    demo.queue(default_concurrency_limit=4, max_size=64)
    demo.launch(
        server_name=kwargs.pop("server_name", settings.host), server_port=kwargs.pop("server_port", settings.port),
        share=settings.share, prevent_thread_lock=prevent_thread_lock,
        # Served: sample clips and demo corpus videos only; the runs folder (checkpoints, jobs.json, console logs)
        # is never served, even when it lies inside a served or temporary folder.
        allowed_paths=[str(p) for p in settings.served_roots], blocked_paths=[str(p) for p in settings.blocked_roots],
        max_file_size=settings.max_upload_bytes,
        css=CSS, theme=gr.themes.Soft(), show_error=True, **kwargs,
    )
    return demo
