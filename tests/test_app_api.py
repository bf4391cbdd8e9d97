"""The app through its API (gradio_client) against the real launched app on the demo model set, offline, on CPU."""

from __future__ import annotations

import base64
import html
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import plotly.io
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.helpers.app import (
    ADMIN_TOKEN,
    MAX_UPLOAD_MB,
    app_settings,
    app_subprocess,
    free_port,
    launched_app,
    wait_ready,
)
from tests.helpers.predictions import collapsed_rows, write_predictions
from tests.helpers.video import SAMPLES, write_long_video, write_noise_video


@pytest.fixture(scope="module")
def app(demo_bundle_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    settings = app_settings(demo_bundle_dir, runs, free_port())
    with launched_app(settings) as (url, state):
        yield url, state, Client(url, verbose=False)


def _values(array) -> np.ndarray:
    """Plot data as numbers (plotly sends arrays base64-encoded as {"dtype", "bdata"})."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def _translate(client, clip, encoder="fine-tuned", beam=2, max_len=32):
    return client.predict(handle_file(str(clip)), ["eng_Latn"], encoder, False, beam, max_len, 0, api_name="/translate")


def test_translate_shipped_clip_matches_the_engine(app):
    from slt.engine import TranslationEngine
    from slt.text import DecodingOptions

    _, state, client = app
    clip = SAMPLES / "instructional_1.webm"
    text_html, preview, summary, timings, details = _translate(client, clip)
    engine = state.loader.wait()
    expected = engine.translate(clip, ["eng_Latn"], encoders=["fine-tuned"], preprocess=state.preprocess_config(engine),
                                decoding=DecodingOptions(beam_size=2, max_len=32))
    text = expected.translations["fine-tuned"]["eng_Latn"]
    assert text.strip()
    assert details["translations"] == {"fine-tuned": {"eng_Latn": text}}
    assert html.escape(text) in text_html
    assert details["box"] == list(expected.box) and details["faces_found"] == expected.faces_found > 0
    stages = {row[0] for row in timings["data"]}
    assert {"preprocess", "signhiera", "encoder:fine-tuned", "decode"} <= stages
    assert "device **cpu**" in summary and "model set **demo**" in summary
    image = cv2.imread(preview)  # the crop strip the model sees: first frame with the box + sampled crops
    assert image is not None and image.shape[:2] == expected.preview.shape[:2]
    # One engine (one copy of the models) serves every request of the process.
    assert list(TranslationEngine._shared.values()) == [engine]


CLASS_NAMES = ("Error:", "NoSignerError", "VideoReadError", "VideoTooLongError", "PathNotAllowedError",
               "AccessDeniedError", "Traceback")


def assert_public(message: str, *private: str) -> None:
    """A message a visitor may read: no Python class names, no server folders."""
    for text in CLASS_NAMES + private:
        assert text not in message, (text, message)


@pytest.mark.parametrize("case, expected", [
    ("noise", "No signer found"),
    ("text", "notes.mp4"),
    ("long", "longer than the limit of 3 s"),
])
def test_bad_clips_get_specific_messages(app, tmp_path, case, expected):
    _, _, client = app
    if case == "noise":
        clip = write_noise_video(tmp_path / "noise.mp4")
    elif case == "text":
        clip = tmp_path / "notes.mp4"
        clip.write_text("this is not a video\n" * 50)
    else:
        clip = SAMPLES / "studio_1.webm"  # 3.2 s, the app allows 3 s
    with pytest.raises(AppError) as caught:
        _translate(client, clip)
    message = str(caught.value)
    assert expected in message
    assert_public(message, str(tmp_path), "/tmp/", str(SAMPLES))
    if case == "noise":  # the advice names the app's checkbox, not a command-line flag
        assert "Use a centre crop when no signer is found" in message and "--" not in message


def test_4k_clip_is_refused_before_decoding(app, tmp_path):
    _, _, client = app
    clip = tmp_path / "uhd.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (3840, 2160))
    for shade in range(10):  # flat frames: a small file, so only the frame size is refused
        writer.write(np.full((2160, 3840, 3), 20 * shade, dtype=np.uint8))
    writer.release()
    assert clip.stat().st_size < MAX_UPLOAD_MB * 2**20
    with pytest.raises(AppError) as caught:
        _translate(client, clip)
    message = str(caught.value)
    assert "3840x2160" in message and "megapixels" in message and "ffmpeg" in message
    assert_public(message, str(tmp_path), "/tmp/")
    with pytest.raises(AppError, match="3840x2160"):
        client.predict(handle_file(str(clip)), "zero-shot", "fine-tuned", "eng_Latn", api_name="/compare_clip")


def test_too_large_upload_is_refused(app, tmp_path):
    from slt.errors import VideoTooLongError
    from slt.ui.limits import check_upload

    _, state, client = app
    # noise compresses badly: > 1 MB; written where the app may read, so only the size is refused
    big = write_noise_video(Path(state.settings.runs_dir) / "big.mp4", frames=25, size=400)
    assert big.stat().st_size > MAX_UPLOAD_MB * 2**20
    with pytest.raises(Exception) as caught:  # gradio refuses it at upload, before any work
        _translate(client, big)
    assert "size" in str(caught.value).lower() or "large" in str(caught.value).lower()
    with pytest.raises(VideoTooLongError, match=f"{MAX_UPLOAD_MB:g} MB"):  # and our own check says why
        check_upload(big, state.settings)


def test_compare_clip_computes_features_once(app):
    _, state, client = app
    clip = SAMPLES / "instructional_2.webm"
    body, preview, timings = client.predict(handle_file(str(clip)), "zero-shot", "fine-tuned", "eng_Latn",
                                            api_name="/compare_clip")
    engine = state.loader.wait()
    expected = engine.translate(clip, ["eng_Latn"], encoders=["zero-shot", "fine-tuned"],
                                preprocess=state.preprocess_config(engine))
    for label in ("zero-shot", "fine-tuned"):
        assert html.escape(expected.translations[label]["eng_Latn"]) in body
    assert "slt-diff" in body
    stages = [row[0] for row in timings["data"]]
    assert stages.count("signhiera") == 1 and {"encoder:zero-shot", "encoder:fine-tuned"} <= set(stages)
    with pytest.raises(AppError, match="two different encoders"):
        client.predict(handle_file(str(clip)), "zero-shot", "zero-shot", "eng_Latn", api_name="/compare_clip")


def test_compare_on_evaluation_split(app, demo_bundle_dir):
    from slt.data.features import read_features_manifest
    from slt.ui.split_eval import evaluation_splits

    _, _, client = app
    splits = evaluation_splits("demo", demo_bundle_dir)
    label = next(iter(splits))
    assert label.startswith("test") and "domain B" in label
    n = len(read_features_manifest(splits[label]))
    started = time.perf_counter()
    table, wins, scatter, buckets, examples = client.predict(label, "zero-shot", "fine-tuned",
                                                             api_name="/compare_split")
    first = time.perf_counter() - started
    metrics = {row[0]: row for row in table["data"]}
    assert set(metrics) == {"bleu", "chrf", "rougeL", "wer", "length_ratio"}
    assert table["headers"][:3] == ["metric", "zero-shot", "fine-tuned"]
    p_columns = [i for i, h in enumerate(table["headers"]) if h.startswith("p (")]
    assert len(p_columns) == 2 and all(0.0 <= metrics["bleu"][i] <= 1.0 for i in p_columns)
    assert f"**{n} samples**" in wins
    counts = [int(x) for x in wins.split("better on ")[1:] for x in [x.split(",")[0]]]
    ties = int(wins.split("ties ")[1].rstrip("."))
    assert sum(counts) + ties == n
    figure = plotly.io.from_json(scatter["plot"])
    assert len(_values(figure.data[0].x)) == n  # one point per sample
    # Results are cached per split: the second comparison reuses both systems' predictions.
    started = time.perf_counter()
    again = client.predict(label, "zero-shot", "fine-tuned", api_name="/compare_split")
    assert again[0] == table and time.perf_counter() - started < first
    with pytest.raises(AppError, match="no evaluation split"):
        client.predict("no such split", "zero-shot", "fine-tuned", api_name="/compare_split")


def test_compare_two_prediction_files(app, tmp_path):
    _, state, client = app
    rows = collapsed_rows()
    perfect = [{**r, "prediction": r["reference"]} for r in rows]
    path_a = write_predictions(state.settings.runs_dir / "cmp_perfect", 1, perfect)
    path_b = write_predictions(state.settings.runs_dir / "cmp_collapsed", 1, rows)
    table, wins, _, _, examples = client.predict(None, None, str(path_a), str(path_b), api_name="/compare_files")
    bleu = next(row for row in table["data"] if row[0] == "bleu")
    assert bleu[1].startswith("100.00")  # A is the references themselves
    assert "better on 20" in wins and "ties 4" in wins  # B only matches on its 4 non-generic samples
    assert all(row[0] == "cmp_perfect/predictions_epoch1.jsonl" for row in examples["data"])
    # Uploaded files are named by their file name, not by the upload's hash folder.
    upload_a = write_predictions(tmp_path / "a", 1, perfect)
    upload_b = write_predictions(tmp_path / "b", 2, rows)
    table, wins, _, _, examples = client.predict(handle_file(str(upload_a)), handle_file(str(upload_b)), "", "",
                                                 api_name="/compare_files")
    assert table["headers"][1:3] == ["predictions_epoch1.jsonl", "predictions_epoch2.jsonl"]
    assert "**predictions\\_epoch1\\.jsonl** better on 20" in wins


def test_load_predictions_table_and_collapse_panel(app, tmp_path):
    _, state, client = app
    run = state.settings.runs_dir / "collapsed_run"
    rows = collapsed_rows()
    write_predictions(run, 1, [{**r, "prediction": "the man is happy"} for r in rows])
    write_predictions(run, 2, rows)
    runs = client.predict(api_name="/list_runs")
    assert "collapsed_run" in runs  # then the demo's example runs and the shipped collapse case
    assert runs[-4:] == ["demo/run_b", "demo/run_a", "example/collapse-attention-bridge",
                         "example/collapse-linear-bridge"]
    for name, expected in (("collapse-attention-bridge", "collapsed"), ("collapse-linear-bridge", "healthy")):
        label, _, verdict, *_ = client.predict(f"example/{name}", "last", "", None, api_name="/load_predictions")
        assert "64 samples" in label and f"Mode collapse: **{expected}**" in verdict
    label, table, *_ = client.predict("demo/run_b", "last", "", None, api_name="/load_predictions")
    assert label.startswith("**run\\_b**") and len(table["data"]) > 0
    label, table, verdict, figures, generic, rank_plot, epoch_plot = client.predict(  # (the State output is not sent)
        "collapsed_run", "last", "", None, api_name="/load_predictions")
    assert "24 samples" in label and len(table["data"]) == 24
    columns = table["headers"]
    assert columns == ["id", "reference", "prediction", "sentence_bleu", "sentence_chrf", "ref_len", "hyp_len"]
    by_id = {row[0]: dict(zip(columns, row, strict=True)) for row in table["data"]}
    assert by_id["s023"]["sentence_bleu"] == 100.0 and by_id["s000"]["sentence_bleu"] < 20
    assert "collapsed" in verdict
    assert generic["data"][0][:2] == ["the man is happy", 20]
    by_epoch = plotly.io.from_json(epoch_plot["plot"])  # figures by epoch, one point per epoch
    assert by_epoch.data and all(list(_values(trace.x)) == [1, 2] for trace in by_epoch.data)
    # An uploaded file (from outside the allowed folders: gradio copies it into its upload dir).
    upload = write_predictions(tmp_path / "elsewhere", 5, rows[:10])
    label, table, *_ = client.predict("", "last", "", handle_file(str(upload)), api_name="/load_predictions")
    assert len(table["data"]) == 10


@pytest.mark.parametrize("typed", ["/etc/passwd", "../../../../etc/hostname", "escape_link"])
def test_paths_outside_allowed_dirs_are_refused(app, typed):
    _, state, client = app
    link = state.settings.runs_dir / "escape_link"
    if not link.exists():
        link.symlink_to("/etc")  # a link inside the runs dir must not open the rest of the disk
    with pytest.raises(AppError, match="outside the directories this app may read") as caught:
        client.predict("", "last", typed, None, api_name="/load_predictions")
    assert_public(str(caught.value), str(state.settings.runs_dir), str(state.settings.demo_dir), "/tmp/gradio")
    with pytest.raises(AppError, match="outside the directories this app may read"):
        client.predict(None, None, typed, typed, api_name="/compare_files")


def _form(demo_dir: Path, name: str, epochs: int) -> list:
    from slt.ui.train_tab import default_fields

    d = default_fields(demo_dir)
    return [name, "sonar-finetune", d["train_features"], d["val_features"], d["base_encoder"], epochs, 4, 1e-3, 8,
            "cpu",
            2, d["decoder"], d["tokenizer"], d["asset_cards"], d["signhiera_checkpoint"], 0.8, False, True, 0]


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def test_training_start_stop_resume_and_browse(app):
    _, state, client = app
    form = _form(state.settings.demo_dir, "tiny-ui-run", 12)
    preview = client.predict(ADMIN_TOKEN, *form, api_name="/preview_training")
    assert preview.startswith(f"{sys.executable} -m slt train --config ") and '"epochs": 12' in preview
    with pytest.raises(AppError, match="training is locked: enter the admin token") as caught:
        client.predict("wrong", *form, api_name="/start_training")
    assert_public(str(caught.value))
    job, command = client.predict(ADMIN_TOKEN, *form, api_name="/start_training")
    assert job["value"] == "tiny-ui-run" and command.endswith("config.json")  # (a dropdown update: new choices)
    run_dir = state.settings.runs_dir / "tiny-ui-run"
    with pytest.raises(AppError, match="already running|limit is 1"):  # one job at a time
        client.predict(ADMIN_TOKEN, *_form(state.settings.demo_dir, "second-run", 2), api_name="/start_training")
    _wait(lambda: (run_dir / "predictions_epoch1.jsonl").exists(), 120, "the first epoch")
    stopped = client.predict(ADMIN_TOKEN, "tiny-ui-run", api_name="/stop_training")
    assert "tiny-ui-run" in stopped
    _wait(lambda: state.jobs.state(state.jobs.get("tiny-ui-run")) == "stopped", 60, "a graceful stop")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and (run_dir / "last.pt").exists() and status["epoch"] < 12
    text, curves, log_tail, history = client.predict("tiny-ui-run", ADMIN_TOKEN, api_name="/job_status")
    assert "state **stopped**" in text and "SIGTERM" in log_tail and str(run_dir) in text
    assert f"epochs done **{status['epoch'] - 1}** of 12" in text  # status.json holds the epoch in progress
    anonymous = client.predict("tiny-ui-run", "", api_name="/job_status")  # no token: no log, no server paths
    assert anonymous[2] == "" and "state **stopped**" in anonymous[0]
    assert str(state.settings.runs_dir) not in json.dumps(anonymous)
    assert plotly.io.from_json(curves["plot"]).data[0].name == "train loss"
    assert history["data"][0][:2] == ["tiny-ui-run", "stopped"]
    # The registry survives an app restart: a fresh manager reads the same history.
    from slt.ui.jobs import JobManager

    assert JobManager(state.settings.runs_dir).rows()[0]["state"] == "stopped"
    resumed = client.predict(ADMIN_TOKEN, "tiny-ui-run", api_name="/resume_training")
    assert "resumed" in resumed
    _wait(lambda: state.jobs.state(state.jobs.get("tiny-ui-run")) == "finished", 150, "the resumed run to finish")
    assert (run_dir / "predictions_epoch12.jsonl").exists()
    # The finished run appears in the predictions browser with its predictions.
    assert "tiny-ui-run" in client.predict(api_name="/list_runs")
    label, table, *_ = client.predict("tiny-ui-run", "last", "", None, api_name="/load_predictions")
    assert "8 samples" in label and len(table["data"]) == 8


def test_app_stays_responsive_during_a_translation_and_cancel_stops_it(demo_bundle_dir, tmp_path):
    """`python app.py` as a real process: a browse request answers while a long translation runs; cancelling the
    request stops the server's work, not only the client's wait.

    Cancelled with gradio_client's own `job.cancel()` (a plain POST /cancel): a second SSE request on the same
    client that completes at once (as /cancel_translation does) can finish before the client has registered it,
    which makes gradio_client drop the stream and fail every pending job with CancelledError."""
    port = free_port()
    long_clip = write_long_video(tmp_path / "long.mp4", repeats=12)  # long enough to still run when asked
    env = {"SLT_DEMO_DIR": str(demo_bundle_dir), "SLT_RUNS_DIR": str(tmp_path / "runs")}
    write_predictions(tmp_path / "runs" / "r1", 1, collapsed_rows())
    log = tmp_path / "app.log"
    with app_subprocess(port, env, log) as url:
        client, other = Client(url, verbose=False), Client(url, verbose=False)
        wait_ready(client)
        job = client.submit(handle_file(str(long_clip)), ["eng_Latn"], "zero-shot", False, 2, 32, 0,
                            api_name="/translate")
        _wait(lambda: job.status().code.name in ("PROCESSING", "PROGRESS"), 60, "the translation to start")

        def preprocessing_progress() -> bool:  # the bar moves while the clip is decoded (it sat at 0 % before)
            units = job.status().progress_data or []
            return any(u.desc.startswith("preprocessing:") and (u.progress or 0) > 0 for u in units)

        _wait(preprocessing_progress, 60, "progress during preprocessing")
        started = time.perf_counter()
        label, table, *_ = other.predict("r1", "last", "", None, api_name="/load_predictions")
        answered = time.perf_counter() - started
        assert len(table["data"]) == 24 and answered < 10
        assert not job.done(), "the translation ended before the other request was answered; use a longer clip"
        assert "cancelled work stopped" not in log.read_text()
        job.cancel()
        _wait(job.done, 60, "the cancelled translation to end")
        assert job.status().code.name == "CANCELLED"
        # The server's worker thread saw the cancel and stopped decoding (a sync handler would run on unseen).
        _wait(lambda: "cancelled work stopped in its thread" in log.read_text(), 60, "the worker thread to stop")
        assert "Traceback" not in log.read_text()
        # The app still serves the same client afterwards.
        assert wait_ready(client)["phase"] == "ready"


def test_settings_and_admin_lock_from_the_environment(tmp_path):
    from slt.errors import AccessDeniedError, InvalidArgumentError
    from slt.ui.limits import check_admin
    from slt.ui.settings import AppSettings

    local = AppSettings.from_env({"SLT_RUNS_DIR": str(tmp_path), "SLT_MAX_CLIP_SECONDS": "30"})
    assert not local.public and not local.launcher_locked and local.max_clip_seconds == 30.0
    check_admin(None, local)  # a laptop without a token: open
    space = AppSettings.from_env({"SPACE_ID": "me/slt"})
    assert space.public and space.host == "0.0.0.0"
    with pytest.raises(AccessDeniedError, match="public Space"):
        check_admin("anything", space)  # no token configured: nobody may train
    guarded = AppSettings.from_env({"SPACE_ID": "me/slt", "SLT_ADMIN_TOKEN": "s3cret"})
    with pytest.raises(AccessDeniedError, match="admin token"):
        check_admin("guess", guarded)
    check_admin(" s3cret ", guarded)
    with pytest.raises(InvalidArgumentError, match="SLT_MAX_UPLOAD_MB"):
        AppSettings.from_env({"SLT_MAX_UPLOAD_MB": "0"})
    with pytest.raises(InvalidArgumentError, match="bad app setting"):
        AppSettings.from_env({"SLT_MAX_TRAIN_JOBS": "many"})


@pytest.fixture(scope="module")
def public_app(demo_bundle_dir, tmp_path_factory):
    """The app as a public Space (SPACE_ID) whose owner set an admin token, with a finished-looking run on disk."""
    runs = tmp_path_factory.mktemp("public_runs")
    run = runs / "secret-run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"weights")
    (run / "console.log").write_text("Traceback (most recent call last):\n  File \"/srv/app/slt/train.py\"\n")
    (run / "config.json").write_text(json.dumps({"epochs": 3}))
    (run / "status.json").write_text(json.dumps({"state": "failed", "epoch": 2, "step": 8, "pid": 1,
                                                 "message": "cannot read /srv/data/train.tsv"}))
    (runs / "jobs.json").write_text(json.dumps({"jobs": [{"id": "secret-run", "run_dir": str(run), "pid": 1,
                                                          "command": ["python", "-m", "slt", "train"],
                                                          "started_at": time.time()}]}))
    settings = app_settings(demo_bundle_dir, runs, free_port(), public=True)
    with launched_app(settings) as (url, state):
        yield url, state, Client(url, verbose=False)


def test_public_space_serves_no_run_files(public_app):
    import urllib.error
    import urllib.request

    url, state, _ = public_app
    runs = state.settings.runs_dir
    for path in (runs / "secret-run" / "best.pt", runs / "jobs.json", runs / "secret-run" / "console.log"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
        assert caught.value.code == 403, path
    # What the pages need is still served: the sample clips.
    with urllib.request.urlopen(f"{url}gradio_api/file={SAMPLES / 'instructional_1.webm'}", timeout=30) as response:
        assert response.status == 200


def test_public_space_job_status_hides_logs_and_paths_from_visitors(public_app):
    _, state, client = public_app
    text, _, log_tail, history = client.predict("secret-run", "", api_name="/job_status")
    assert log_tail == "" and "state **failed**" in text and "epochs done **1** of 3" in text
    shown = json.dumps([text, log_tail, history])
    for private in (str(state.settings.runs_dir), "/srv/", "Traceback"):
        assert private not in shown, private
    assert "train.tsv" in text  # the reason stays, without its folder
    assert history["headers"][0] == "job" and "run_dir" not in history["headers"]
    text, _, log_tail, _ = client.predict("secret-run", ADMIN_TOKEN, api_name="/job_status")
    assert "Traceback" in log_tail and "/srv/data/train.tsv" in text  # the owner sees everything


def test_public_space_training_form_shows_no_server_paths_and_preview_needs_the_token(public_app):
    """The form is the same for every visitor: its defaults name demo files relative to the demo set, and the
    preview (which prints the server's paths) needs the admin token like starting a run."""
    import urllib.request

    url, state, client = public_app
    demo = state.settings.demo_dir
    with urllib.request.urlopen(f"{url}config", timeout=30) as response:
        config = json.loads(response.read())
    values = {c["props"].get("label"): c["props"].get("value") for c in config["components"] if "props" in c}
    labels = {"train_features": "Training features manifest (features.tsv)",
              "val_features": "Validation features manifest",
              "base_encoder": "Base encoder checkpoint (empty: the official zero-shot encoder)",
              "asset_cards": "Asset cards YAML (local decoders)", "decoder": "Decoder asset",
              "tokenizer": "Tokenizer asset", "signhiera_checkpoint": "SignHiera checkpoint to adapt"}
    shown = {field: values[label] for field, label in labels.items()}
    assert shown["train_features"] == "work/features_B/train/features.tsv"
    assert shown["base_encoder"] == "encoder_zero_shot.pt" and shown["asset_cards"] == "text/text_assets.yaml"
    assert shown["signhiera_checkpoint"] == "signhiera.pt"
    assert not any(str(demo) in value for value in shown.values())
    form = ["public-run", "sonar-finetune", shown["train_features"], shown["val_features"], shown["base_encoder"], 1,
            4, 1e-3, 8, "cpu", 2, shown["decoder"], shown["tokenizer"], shown["asset_cards"],
            shown["signhiera_checkpoint"], 0.8, False, True, 0]
    for token in ("", "guess"):
        with pytest.raises(AppError, match="training is locked: enter the admin token") as caught:
            client.predict(token, *form, api_name="/preview_training")
        assert str(demo) not in str(caught.value)
    # The owner's preview resolves the relative names against the demo set, server-side.
    preview = client.predict(ADMIN_TOKEN, *form, api_name="/preview_training")
    assert f'"train_features": "{demo / "work/features_B/train/features.tsv"}"' in preview
    assert f'"base_encoder": "{demo / "encoder_zero_shot.pt"}"' in preview


def test_collapse_verdict_shows_predictions_as_text(app):
    _, state, client = app
    rows = collapsed_rows()
    hostile = '<img src=x onerror="alert(1)">'
    write_predictions(state.settings.runs_dir / "hostile_run", 1, [{**r, "prediction": hostile} for r in rows])
    label, table, verdict, *_ = client.predict("hostile_run", "last", "", None, api_name="/load_predictions")
    assert "collapsed" in verdict and "<img" not in verdict and "&lt;img" in verdict
