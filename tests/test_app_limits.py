"""The app's limits and protections without a browser: cancel reaching the decode loops, preprocessing progress,
messages without server paths or class names, user data shown as text, exposure locking the launcher, and the
handlers' concurrency groups (the Blocks are built, not launched)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from tests.helpers.video import SAMPLES

CLIP = SAMPLES / "instructional_1.webm"  # 2.5 s, 25 fps, the synthetic signer's face


def test_should_stop_ends_preprocessing_within_one_frame():
    from slt.errors import Cancelled
    from slt.video import PreprocessConfig, preprocess_video

    answers: list[bool] = []

    def should_stop() -> bool:  # asked by the decoding reader (each frame) and the detector (each batch)
        answers.append(len(answers) >= 9)
        return answers[-1]

    with pytest.raises(Cancelled, match="stopped on request"):
        preprocess_video(CLIP, PreprocessConfig(detector="hog"), should_stop=should_stop)
    # The reader stops at its first True, the detector at its next batch: nobody keeps going.
    assert answers.count(True) <= 2, answers


def test_preprocessing_reports_progress_through_both_passes():
    from slt.video import PreprocessConfig, preprocess_video

    seen: list[float] = []
    never = threading.Event()
    result = preprocess_video(CLIP, PreprocessConfig(detector="hog"), should_stop=never.is_set, progress=seen.append)
    assert result.n_clips >= 1
    assert len(seen) >= 4 and seen == sorted(seen) and 0.0 < seen[0] and seen[-1] <= 1.0
    assert any(f < 0.8 for f in seen) and any(f >= 0.8 for f in seen)  # the scan pass, then the crop pass


def test_engine_cancel_during_preprocessing_stops_decoding(demo_bundle_dir, tmp_path):
    """The cancel flag set while a video is being scanned ends the translation before the scan is through: the
    reader stops decoding and the detector skips the frames already queued."""
    from slt.engine import TranslationEngine
    from slt.errors import TranslationCancelled
    from slt.registry import resolve_model_set
    from tests.helpers.video import write_long_video

    engine = TranslationEngine.shared(resolve_model_set("demo"), device="cpu")
    cancel = threading.Event()
    reports: list[tuple[str, float]] = []

    def progress(stage: str, fraction: float) -> None:
        reports.append((stage, fraction))
        if stage.startswith("preprocessing:") and fraction > 0:
            cancel.set()  # the user presses Cancel once the first frames have been scanned

    clip = write_long_video(tmp_path / "long.mp4", repeats=4)  # ~30 sampled frames: several detector batches
    with pytest.raises(TranslationCancelled, match="stopped on request"):
        engine.translate(clip, ["eng_Latn"], encoders=["zero-shot"], progress=progress, cancel=cancel)
    scanned = [fraction for stage, fraction in reports if stage.startswith("preprocessing:")]
    assert scanned and max(scanned) < 0.4, reports  # the scan (0 .. 0.4 of the whole) never finished
    assert all(stage.startswith("preprocessing") for stage, _ in reports)  # SignHiera never ran


def test_messages_hide_server_paths_and_class_names():
    from slt.errors import NoSignerError, VideoReadError
    from slt.ui.common import public_message, redact_paths

    upload = "/tmp/gradio/3f9a1c0d2e/my clip.mp4"
    message = public_message(VideoReadError(f"The video {upload.replace(' ', '_')} cannot be opened"))
    assert message == "The video my_clip.mp4 cannot be opened"
    assert "VideoReadError" not in public_message(NoSignerError(0, 5, 0.3))
    assert "app's" in public_message(NoSignerError(0, 5, 0.3))  # points to the app's checkbox, not a CLI flag
    # URLs, relative paths and fractions are left alone.
    text = "see https://huggingface.co/facebook/x and runs/r1/best.pt, 3/4 of frames"
    assert redact_paths(text) == text
    assert redact_paths("(/work/x/runs/r1/console.log)") == "(console.log)"


def test_user_data_is_shown_as_text_in_markdown():
    from slt.ui.common import markdown_text

    shown = markdown_text('<img src=x onerror="alert(1)"> **bold** [link](http://x)')
    assert "<" not in shown and "&lt;img" in shown
    assert "\\*\\*bold\\*\\*" in shown and "\\[link\\]" in shown


@pytest.mark.parametrize("overrides, locked", [
    ({}, False),
    ({"host": "0.0.0.0"}, True),
    ({"host": "192.168.1.5"}, True),
    ({"share": True}, True),
    ({"public": True}, True),
    ({"host": "localhost"}, False),
])
def test_any_exposure_locks_the_launcher_without_a_token(tmp_path, overrides, locked):
    from slt.errors import AccessDeniedError
    from slt.ui.limits import check_admin, is_admin
    from slt.ui.settings import AppSettings

    settings = AppSettings(runs_dir=tmp_path, **overrides)
    assert settings.launcher_locked is locked
    if locked:
        with pytest.raises(AccessDeniedError, match="reachable from other machines.*SLT_ADMIN_TOKEN"):
            check_admin("anything", settings)
        assert not is_admin(None, settings)
    else:
        check_admin(None, settings)
        assert is_admin(None, settings)
    with_token = AppSettings(runs_dir=tmp_path, admin_token="s3cret", **overrides)
    assert with_token.launcher_locked and is_admin("s3cret", with_token) and not is_admin("guess", with_token)


def test_flags_set_the_exposure_and_frame_limit(tmp_path):
    import argparse

    from slt.ui import settings as app_settings

    parser = argparse.ArgumentParser()
    app_settings.add_arguments(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--max-frame-pixels", "1000000", "--runs-dir", str(tmp_path)])
    settings = app_settings.settings_from_args(args, app_settings.AppSettings())
    assert settings.exposed and settings.launcher_locked and settings.max_frame_pixels == 1_000_000
    # The runs folder is readable by the handlers but never served.
    assert tmp_path.resolve() in settings.allowed_roots and tmp_path.resolve() in settings.blocked_roots
    assert tmp_path.resolve() not in settings.served_roots


def test_decoder_backend_setting_from_the_environment_and_the_flag():
    import argparse

    from slt.errors import InvalidArgumentError
    from slt.ui import settings as app_settings

    assert app_settings.AppSettings.from_env({}).decoder_backend == "auto"
    from_env = app_settings.AppSettings.from_env({"SLT_DECODER_BACKEND": "transformers"})
    assert from_env.decoder_backend == "transformers"
    parser = argparse.ArgumentParser()
    app_settings.add_arguments(parser)
    args = parser.parse_args(["--decoder-backend", "fairseq2"])
    assert app_settings.settings_from_args(args, from_env).decoder_backend == "fairseq2"
    with pytest.raises(InvalidArgumentError, match="decoder backend must be one of auto, fairseq2, transformers"):
        app_settings.AppSettings.from_env({"SLT_DECODER_BACKEND": "onnx"})


def _endpoints(settings) -> dict:
    from slt.ui.app import build_app
    from slt.ui.state import AppState

    demo = build_app(AppState(settings))
    return {fn.api_name: fn for fn in demo.fns.values() if fn.api_name and fn.api_visibility == "public"}


def test_heavy_endpoints_share_one_concurrency_limit_and_all_are_queued(tmp_path, demo_bundle_dir):
    from slt.ui.settings import AppSettings

    endpoints = _endpoints(AppSettings(model_set="demo", runs_dir=tmp_path, demo_dir=demo_bundle_dir,
                                       gpu_concurrency=1))
    for name in ("translate", "compare_clip", "compare_split", "compare_files"):
        assert endpoints[name].concurrency_id == "gpu" and endpoints[name].concurrency_limit == 1, name
    # gradio_client loses a queue=False request that completes while another request of the client is running.
    assert all(fn.queue for fn in endpoints.values())
    assert {"model_info", "list_runs", "start_training", "job_status"} <= set(endpoints)


def test_locked_space_registers_no_training_endpoints(tmp_path, demo_bundle_dir):
    from slt.ui.settings import AppSettings

    endpoints = _endpoints(AppSettings(model_set="demo", runs_dir=tmp_path, demo_dir=demo_bundle_dir, public=True))
    assert not {"start_training", "stop_training", "resume_training", "preview_training"} & set(endpoints)
    assert "translate" in endpoints


def test_language_choices_name_the_decoders_languages():
    from slt.text import FLORES200_LANGUAGES
    from slt.ui.languages import language_choices

    assert language_choices(["eng_Latn"]) == [("English (eng_Latn)", "eng_Latn")]
    every = dict((code, label) for label, code in language_choices(FLORES200_LANGUAGES))
    assert len(every) == len(FLORES200_LANGUAGES) and all(label != code for code, label in every.items())
    assert every["zho_Hans"] == "Chinese, Simplified (zho_Hans)" and every["fra_Latn"] == "French (fra_Latn)"


def test_handlers_by_name_without_the_ui(tmp_path, demo_bundle_dir):
    """Module-level handlers take and give dicts keyed by name: no Blocks needed, no positional coupling."""
    from slt.errors import PathNotAllowedError
    from slt.ui.app import model_status_updates
    from slt.ui.settings import AppSettings
    from slt.ui.state import AppState
    from slt.ui.train_tab import FORM_FIELDS, default_fields, preview_text, training_config

    state = AppState(AppSettings(model_set="demo", device="cpu", runs_dir=tmp_path, demo_dir=demo_bundle_dir))
    form = {**default_fields(demo_bundle_dir), "name": "by-name", "recipe": "sonar-finetune", "epochs": 3,
            "batch_size": 4, "lr": 1e-3, "max_samples": 8, "device": "cpu", "beam": 2}
    assert set(form) == set(FORM_FIELDS)
    cfg = training_config(state, form)
    assert (cfg.epochs, cfg.batch_size, cfg.max_samples, cfg.decoding.beam_size) == (3, 4, 8, 2)
    assert cfg.run_dir == str(tmp_path / "by-name")
    assert preview_text(state, form).startswith(f"{sys.executable} -m slt train --config {tmp_path / 'by-name'}")
    with pytest.raises(PathNotAllowedError, match="outside the directories"):
        training_config(state, {**form, "train_features": "/etc/passwd"})

    state.loader.start()
    state.loader.wait(timeout=300)
    updates = model_status_updates(state)
    assert set(updates) == {"status", "timer", "translate_encoder", "encoder_a", "encoder_b", "split_a", "split_b",
                            "translate_languages", "compare_language", "split"}
    assert "offline demo models" in updates["status"]
    # Only the languages the loaded decoder has, by name (the demo decoder knows English only).
    assert updates["translate_languages"]["choices"] == [("English (eng_Latn)", "eng_Latn")]
    assert updates["encoder_a"]["value"] != updates["encoder_b"]["value"]


def test_training_form_stage1_fields_by_name(tmp_path, demo_bundle_dir):
    """signhiera-finetune from the form: crop caches in the data fields, the SignHiera to adapt, the frozen fraction,
    encoder freezing, checkpointing and jitter reach the TrainConfig; other recipes ignore them; bad values and
    paths outside the allowed folders are refused by name."""
    from slt.errors import PathNotAllowedError, TrainingError
    from slt.ui.settings import AppSettings
    from slt.ui.state import AppState
    from slt.ui.train_tab import FORM_FIELDS, default_fields, preview_text, training_config

    (tmp_path / "crops" / "train").mkdir(parents=True)
    (tmp_path / "crops" / "val").mkdir()
    state = AppState(AppSettings(model_set="demo", device="cpu", runs_dir=tmp_path, demo_dir=demo_bundle_dir))
    defaults = default_fields(demo_bundle_dir)
    assert defaults["signhiera_checkpoint"] == str(demo_bundle_dir / "signhiera.pt")
    assert default_fields(demo_bundle_dir, relative=True)["signhiera_checkpoint"] == "signhiera.pt"
    assert (defaults["signhiera_freeze_fraction"], defaults["gradient_checkpointing"]) == (0.8, True)
    form = {**defaults, "name": "stage1", "recipe": "signhiera-finetune", "epochs": 2, "batch_size": 2, "lr": 1e-5,
            "max_samples": 0, "device": "cpu", "beam": 1, "train_features": "crops/train", "val_features": "crops/val",
            "signhiera_freeze_fraction": 0.5, "freeze_encoder": True, "gradient_checkpointing": False,
            "temporal_jitter": 2}
    assert set(form) == set(FORM_FIELDS)
    cfg = training_config(state, form)
    assert (cfg.recipe, cfg.signhiera_freeze_fraction) == ("signhiera-finetune", 0.5)
    assert Path(cfg.signhiera_checkpoint).resolve() == (demo_bundle_dir / "signhiera.pt").resolve()
    assert (cfg.freeze_encoder, cfg.gradient_checkpointing, cfg.temporal_jitter) == (True, False, 2)
    crops = tmp_path / "crops"
    assert (cfg.train_features, cfg.val_features) == (str(crops / "train"), str(crops / "val"))
    assert '"signhiera_freeze_fraction": 0.5' in preview_text(state, form)
    other = training_config(state, {**defaults, **{k: form[k] for k in ("name", "epochs", "batch_size", "lr",
                                                                          "max_samples", "device", "beam")},
                                    "recipe": "sonar-finetune", "temporal_jitter": 2, "freeze_encoder": True})
    assert (other.signhiera_checkpoint, other.temporal_jitter, other.freeze_encoder) == (None, 0, False)
    with pytest.raises(PathNotAllowedError, match="outside the directories"):
        training_config(state, {**form, "signhiera_checkpoint": "/etc/passwd"})
    with pytest.raises(TrainingError, match=r"signhiera_freeze_fraction must be >= 0.0 and <= 1.0, got 1.5"):
        training_config(state, {**form, "signhiera_freeze_fraction": 1.5})


def test_compare_and_browser_handlers_without_the_ui(tmp_path):
    """The compare and browser tabs' handlers are plain functions of the settings and plain values: no Blocks."""
    from slt.errors import InvalidArgumentError
    from slt.ui.browser_tab import (
        OPENED_OUTPUTS,
        EpochCache,
        VideoIndex,
        epoch_choices,
        first_visit_updates,
        open_run,
        sample_details,
    )
    from slt.ui.compare_tab import compare_prediction_files
    from slt.ui.settings import AppSettings
    from tests.helpers.predictions import collapsed_rows, write_predictions

    runs = tmp_path / "runs"
    collapsed = collapsed_rows()  # 24 samples, 20 of them "the man is happy"
    write_predictions(runs / "r1", 1, [{**row, "prediction": row["reference"]} for row in collapsed])  # perfect
    write_predictions(runs / "r1", 2, collapsed)
    settings = AppSettings(runs_dir=runs.resolve(), demo_dir=tmp_path / "no-demo")

    assert epoch_choices(settings, "r1") == {"__type__": "update", "choices": ["last", "1", "2"], "value": "last"}
    label, table, source, verdict, *_ = open_run(settings, "r1", "1", "", None)
    assert label == "**r1**, epoch 1: 24 samples" and len(table) == 24 and (table["sentence_bleu"] == 100).all()
    assert "collapsed" not in verdict
    label, table, source, verdict, *_ = open_run(settings, "r1", "last", "", None)
    assert label == "**r1**: 24 samples" and source == str(runs.resolve() / "r1") and "collapsed" in verdict
    with pytest.raises(InvalidArgumentError, match="choose a run"):
        open_run(settings, None, "last", "", None)

    first = first_visit_updates(settings, None)  # nothing open yet: the newest run is opened
    assert len(first) == 1 + OPENED_OUTPUTS and first[0]["value"] == "r1" and first[1] == "**r1**: 24 samples"
    assert all(update == {"__type__": "update"} for update in first_visit_updates(settings, source)[1:])

    video, history = sample_details(VideoIndex([]), EpochCache(), source, ["s000", "ref", "pred"])
    assert video is None and list(history["epoch"]) == [1, 2]
    assert list(history["prediction"]) == [collapsed[0]["reference"], "the man is happy"]

    scores, wins, *_, examples = compare_prediction_files(settings, None, None, "r1/predictions_epoch1.jsonl",
                                                          " r1/predictions_epoch2.jsonl ")
    names = ["r1/predictions_epoch1.jsonl", "r1/predictions_epoch2.jsonl"]
    assert list(scores["metric"]) == ["bleu", "chrf", "rougeL", "wer", "length_ratio"] and set(names) <= set(scores)
    assert "**24 samples**" in wins and set(names) <= set(examples.columns)
    with pytest.raises(InvalidArgumentError, match="give predictions B"):
        compare_prediction_files(settings, None, None, "r1", "")
