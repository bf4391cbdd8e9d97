"""Tab 4, Train: configure a run, preview its exact command, start/stop/resume it, follow its curves and log."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from analysis.collapse import read_metrics_log
from slt.errors import ModelUnavailableError
from slt.modelset import read_demo_bundle
from slt.text.options import DecodingOptions
from slt.train.config import RECIPES, TrainConfig
from slt.ui.common import redact_paths, user_errors
from slt.ui.limits import check_admin, check_allowed_path, is_admin
from slt.ui.state import AppState

HISTORY_COLUMNS = ["job", "state", "epochs_done", "step", "best_bleu", "started", "resumes"]
LOCKED_NO_TOKEN = ("🔒 **Training is locked.** This app is reachable from other machines (a public Space, a share link "
                   "or a non-local `--host`) and no admin token is set, so nobody can start runs here. The owner can "
                   "unlock it by setting `SLT_ADMIN_TOKEN`; run it locally to train.")


def default_fields(demo_root: Path, relative: bool = False) -> dict:
    """Form defaults: the demo set's domain-B features and zero-shot encoder, so a tiny real run works offline, and
    for signhiera-finetune (stage 1, whose two data fields take crop-cache folders) the demo set's SignHiera and the
    recipe's defaults.

    `relative`: the paths relative to the demo folder (an exposed app shows its form to every visitor, and server
    paths are not theirs to see); training_config resolves such names against the demo folder again."""
    stage1 = {"signhiera_freeze_fraction": TrainConfig.signhiera_freeze_fraction,
              "freeze_encoder": TrainConfig.freeze_encoder,
              "gradient_checkpointing": TrainConfig.gradient_checkpointing,
              "temporal_jitter": TrainConfig.temporal_jitter}
    try:
        bundle = read_demo_bundle(demo_root)
    except ModelUnavailableError:
        return {"train_features": "", "val_features": "", "base_encoder": "", "decoder": TrainConfig.decoder,
                "tokenizer": TrainConfig.tokenizer, "asset_cards": "", "signhiera_checkpoint": "", **stage1}
    features = bundle.features.get("B", {})

    def shown(path: Path | None) -> str:
        if path is None:
            return ""
        if relative:
            return str(path.relative_to(bundle.root)) if path.is_relative_to(bundle.root) else ""
        return str(path)

    return {
        "train_features": shown(features.get("train")), "val_features": shown(features.get("val")),
        "base_encoder": shown(bundle.files["encoder_zero_shot"]),
        "decoder": bundle.decoder, "tokenizer": bundle.tokenizer,
        "asset_cards": shown(bundle.files["decoder_cards"]),
        "signhiera_checkpoint": shown(bundle.files["signhiera"]), **stage1,
    }


def curves_figure(run_dir: Path) -> go.Figure:
    """Training loss by step (left axis) and validation BLEU by epoch (right axis), from metrics.jsonl."""
    log = read_metrics_log(run_dir)
    fig = go.Figure()
    if not log.empty and "train_loss" in log.columns:
        steps = log.dropna(subset=["train_loss"])
        fig.add_trace(go.Scatter(x=steps["step"], y=steps["train_loss"], mode="lines", name="train loss"))
    if not log.empty and "bleu" in log.columns:
        epochs = log.dropna(subset=["bleu"])
        fig.add_trace(go.Scatter(x=epochs["step"], y=epochs["bleu"], mode="lines+markers", name="val BLEU",
                                 yaxis="y2", text=[f"epoch {e}" for e in epochs["epoch"]]))
    fig.update_layout(title="Live training curves", xaxis_title="step", yaxis_title="loss",
                      yaxis2={"title": "BLEU", "overlaying": "y", "side": "right"}, legend={"orientation": "h"},
                      height=360)
    return fig


def history_table(state: AppState) -> pd.DataFrame:
    """Every launched run, newest first, without server paths (the table is shown to every visitor)."""
    return pd.DataFrame(state.jobs.rows(), columns=HISTORY_COLUMNS)


def job_status(state: AppState, job_id: str | None, admin_token: str | None = None) -> tuple:
    """(status markdown, curves figure, log tail, history table) of one job. The console log and the run folder
    hold server paths and tracebacks: only a caller who may control training (is_admin) sees them."""
    table = history_table(state)
    if not job_id:
        return "No job selected.", None, "", table
    match = next((row for row in state.jobs.rows() if row["job"] == job_id), None)
    if match is None:
        return f"No job named '{html.escape(str(job_id))}'.", None, "", table
    job = state.jobs.get(job_id)
    status = state.jobs.status(job)
    admin = is_admin(admin_token, state.settings)
    total = _configured_epochs(Path(job.run_dir))
    done = match["epochs_done"]
    text = (f"job **{job_id}** · state **{match['state']}** · epochs done **{'–' if done is None else done}**"
            + (f" of {total}" if total else "") + f" · step {status.get('step', '–')} · best BLEU "
            + ("–" if match["best_bleu"] is None else f"{match['best_bleu']}"))
    if status.get("message"):
        message = str(status["message"]) if admin else redact_paths(str(status["message"]))
        text += f" · {html.escape(message)}"
    if admin:
        text += f"\n\nrun folder: `{job.run_dir}`"
    log_tail = state.jobs.log_tail(job_id) if admin else ""
    return text, curves_figure(Path(job.run_dir)), log_tail, table


def _configured_epochs(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


FORM_FIELDS = ("name", "recipe", "train_features", "val_features", "base_encoder", "epochs", "batch_size", "lr",
               "max_samples", "device", "beam", "decoder", "tokenizer", "asset_cards",
               # signhiera-finetune (stage 1 from video); ignored by the other recipes
               "signhiera_checkpoint", "signhiera_freeze_fraction", "freeze_encoder", "gradient_checkpointing",
               "temporal_jitter")  # the API's parameter order
STAGE1_RECIPE = "signhiera-finetune"


def training_config(state: AppState, form: dict) -> TrainConfig:
    """The validated TrainConfig of a training form (a dict keyed by FORM_FIELDS); paths must be allowed ones."""
    settings = state.settings

    def allowed(text: str | None) -> str | None:
        if not text or not str(text).strip():
            return None
        name = Path(str(text).strip())
        # A relative name is read under the runs folder; failing that, under the demo folder (the exposed form's
        # defaults are names relative to it, see default_fields).
        if not name.is_absolute() and not (settings.runs_dir / name).exists() and (settings.demo_dir / name).exists():
            return str(check_allowed_path(settings.demo_dir / name, settings))
        return str(check_allowed_path(text, settings))

    limit = int(form["max_samples"]) if form.get("max_samples") else None
    stage1 = form["recipe"] == STAGE1_RECIPE
    fraction = form.get("signhiera_freeze_fraction")
    jitter = form.get("temporal_jitter")
    return TrainConfig(
        signhiera_checkpoint=allowed(form.get("signhiera_checkpoint")) if stage1 else None,
        signhiera_freeze_fraction=TrainConfig.signhiera_freeze_fraction if fraction in (None, "") else float(fraction),
        freeze_encoder=bool(form.get("freeze_encoder")) if stage1 else False,
        gradient_checkpointing=bool(form.get("gradient_checkpointing", TrainConfig.gradient_checkpointing)),
        temporal_jitter=int(jitter) if jitter not in (None, "") and stage1 else 0,
        recipe=form["recipe"], train_features=allowed(form["train_features"]),
        val_features=allowed(form["val_features"]), base_encoder=allowed(form["base_encoder"]),
        decoder=form.get("decoder") or TrainConfig.decoder, tokenizer=form.get("tokenizer") or TrainConfig.tokenizer,
        asset_cards=allowed(form.get("asset_cards")), epochs=int(form.get("epochs") or 1),
        batch_size=int(form.get("batch_size") or 1), lr=float(form["lr"]), max_samples=limit, max_val_samples=limit,
        device=form.get("device") or "auto", run_dir=str(settings.runs_dir / (form.get("name") or "")),
        decoding=DecodingOptions(beam_size=int(form.get("beam") or 1), max_len=64),
    ).validate()


def preview_text(state: AppState, form: dict) -> str:
    """The exact subprocess argv of a training form and the config.json it will read (nothing is written)."""
    cfg = training_config(state, form)
    config_path, argv = state.jobs.prepare(cfg, form["name"])
    return f"{shlex.join(argv)}\n\n# {config_path}\n{json.dumps(cfg.to_dict(), indent=2)}"


def build(state: AppState) -> dict[str, gr.components.Component]:
    settings = state.settings
    jobs = state.jobs
    if settings.launcher_locked and settings.admin_token is None:
        return build_locked(state)
    defaults = default_fields(settings.demo_dir, relative=settings.exposed)
    if settings.launcher_locked:
        gr.Markdown("🔒 The launcher is locked: enter the admin token to start, stop or resume runs and to read "
                    "their logs.")
    with gr.Row():
        with gr.Column(scale=1):
            name = gr.Textbox(label="Run name (folder under the runs directory)", value="ui-run")
            recipe = gr.Dropdown(choices=list(RECIPES), value="sonar-finetune", label="Recipe")
            train_features = gr.Textbox(label="Training features manifest (features.tsv)",
                                        value=defaults["train_features"])
            val_features = gr.Textbox(label="Validation features manifest", value=defaults["val_features"])
            base_encoder = gr.Textbox(label="Base encoder checkpoint (empty: the official zero-shot encoder)",
                                      value=defaults["base_encoder"])
            with gr.Row():
                epochs = gr.Number(value=2, precision=0, minimum=1, label="Epochs")
                batch_size = gr.Number(value=8, precision=0, minimum=1, label="Batch size")
                lr = gr.Number(value=1e-3, label="Learning rate")
            with gr.Row():
                max_samples = gr.Number(value=0, precision=0, minimum=0, label="Max samples (0 = all)")
                device = gr.Dropdown(choices=["auto", "cpu", "cuda"], value="auto", label="Device")
                beam = gr.Number(value=2, precision=0, minimum=1, label="Eval beam size")
            with gr.Accordion("Decoder (frozen)", open=False):
                decoder = gr.Textbox(label="Decoder asset", value=defaults["decoder"])
                tokenizer = gr.Textbox(label="Tokenizer asset", value=defaults["tokenizer"])
                asset_cards = gr.Textbox(label="Asset cards YAML (local decoders)", value=defaults["asset_cards"])
            with gr.Accordion("Stage 1 from video (signhiera-finetune)", open=False):
                gr.Markdown("Trains SignHiera's last blocks end to end from crop caches (`python -m slt "
                            "crop-cache`): set the training and validation fields above to crop-cache folders. A "
                            "fine-tuned SignHiera makes its own features: its encoder.pt only works with its "
                            "signhiera.pt (both named in the run's system.json).")
                signhiera_checkpoint = gr.Textbox(label="SignHiera checkpoint to adapt",
                                                  value=defaults["signhiera_checkpoint"])
                with gr.Row():
                    freeze_fraction = gr.Number(value=defaults["signhiera_freeze_fraction"], minimum=0, maximum=1,
                                                label="Frozen fraction of SignHiera's blocks")
                    temporal_jitter = gr.Number(value=defaults["temporal_jitter"], precision=0, minimum=0,
                                                label="Temporal jitter (sampled frames)")
                with gr.Row():
                    freeze_encoder = gr.Checkbox(value=defaults["freeze_encoder"], label="Freeze the SONAR encoder")
                    gradient_checkpointing = gr.Checkbox(value=defaults["gradient_checkpointing"],
                                                         label="Gradient checkpointing (less memory)")
            token = gr.Textbox(label="Admin token", type="password", visible=settings.launcher_locked)
            with gr.Row():
                preview_btn = gr.Button("Preview command")
                start_btn = gr.Button("Start", variant="primary")
            command = gr.Code(label="Command and config", language="shell", interactive=False)
        with gr.Column(scale=1):
            job = gr.Dropdown(choices=[row["job"] for row in jobs.rows()], label="Job", allow_custom_value=True)
            with gr.Row():
                stop_btn = gr.Button("Stop (checkpoint and exit)", variant="stop")
                resume_btn = gr.Button("Resume")
                refresh_btn = gr.Button("↻")
            job_status_md = gr.Markdown()
            curves = gr.Plot(label="Curves")
            log_tail = gr.Textbox(label="Log (tail)", lines=12, max_lines=12, autoscroll=True, interactive=False)
    history = gr.Dataframe(value=history_table(state), headers=HISTORY_COLUMNS, interactive=False,
                           label="Runs launched from this app (survives restarts)")
    timer = gr.Timer(2.0)
    # The form by field name: handlers get and give dicts keyed by these names, never positions.
    fields = {"name": name, "recipe": recipe, "train_features": train_features, "val_features": val_features,
              "base_encoder": base_encoder, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "max_samples": max_samples, "device": device, "beam": beam, "decoder": decoder, "tokenizer": tokenizer,
              "asset_cards": asset_cards, "signhiera_checkpoint": signhiera_checkpoint,
              "signhiera_freeze_fraction": freeze_fraction, "freeze_encoder": freeze_encoder,
              "gradient_checkpointing": gradient_checkpointing, "temporal_jitter": temporal_jitter}
    assert tuple(fields) == FORM_FIELDS
    form = list(fields.values())

    @user_errors
    def preview(admin_token, *values):
        """The exact subprocess argv and the config.json it will read (server paths: admins only, like start)."""
        check_admin(admin_token, settings)
        return preview_text(state, dict(zip(FORM_FIELDS, values, strict=True)))

    preview_btn.click(preview, [token, *form], command, api_name="preview_training")

    @user_errors
    def start(admin_token, *values):
        """Start a training run as a subprocess; returns the job name."""
        check_admin(admin_token, settings)
        values = dict(zip(FORM_FIELDS, values, strict=True))
        started = jobs.start(training_config(state, values), values["name"])
        gr.Info(f"Started job '{started.id}' (pid {started.pid}).")
        return gr.update(choices=[row["job"] for row in jobs.rows()], value=started.id), shlex.join(started.command)

    start_btn.click(start, [token, *form], [job, command], api_name="start_training")

    @user_errors
    def stop(admin_token, job_id):
        """SIGTERM the job: the trainer saves last.pt and writes status 'stopped'."""
        check_admin(admin_token, settings)
        if not job_id:
            raise gr.Error("choose a job to stop")
        return f"job **{job_id}**: {jobs.stop(job_id, wait_s=1.0)} (stopping: it checkpoints, then exits)"

    stop_btn.click(stop, [token, job], job_status_md, api_name="stop_training")

    @user_errors
    def resume(admin_token, job_id):
        """Continue a stopped run from last.pt (`--resume`)."""
        check_admin(admin_token, settings)
        if not job_id:
            raise gr.Error("choose a job to resume")
        resumed = jobs.resume(job_id)
        return f"job **{job_id}** resumed (pid {resumed.pid}, resume #{resumed.resumes})"

    resume_btn.click(resume, [token, job], job_status_md, api_name="resume_training")

    @user_errors
    def poll(job_id, admin_token=None):
        """Status, curves, log tail (for admins) and the history table; called by the timer every 2 s."""
        return job_status(state, job_id, admin_token)

    outputs = [job_status_md, curves, log_tail, history]
    refresh_btn.click(poll, [job, token], outputs, api_name="job_status")
    job.change(poll, [job, token], outputs, api_visibility="private")
    timer.tick(poll, [job, token], outputs, api_visibility="private", show_progress="hidden", concurrency_id="light",
               concurrency_limit=8)
    return {"job": job}


def build_locked(state: AppState) -> dict[str, gr.components.Component]:
    """The tab when nobody may train: the reason and the read-only history; no form, no training endpoints."""
    gr.Markdown(LOCKED_NO_TOKEN, elem_id="slt-train-locked")
    history = gr.Dataframe(value=history_table(state), headers=HISTORY_COLUMNS, interactive=False,
                           label="Runs launched from this app")
    gr.Timer(5.0).tick(lambda: history_table(state), None, history, api_visibility="private",
                       show_progress="hidden", concurrency_id="light", concurrency_limit=8)
    return {}
