"""TranslationEngine and `python -m slt translate`, through the real classes with tiny models and real videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slt.engine import TranslationEngine
from slt.errors import (
    CheckpointError,
    DecodingOptionsError,
    ModelUnavailableError,
    NoSignerError,
    UnknownLanguageError,
    VideoReadError,
)
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint
from slt.modelset import ModelSet
from slt.runtime import pick_dtype
from slt.text import DecodingOptions
from slt.video import PreprocessConfig
from tests.helpers.models import count_clip_passes
from tests.helpers.process import REPO_ROOT
from tests.helpers.text import TINY_LANGS
from tests.helpers.video import astronaut_video, carphone_path, write_video


@pytest.fixture(scope="module")
def tiny_set(tiny_text_model, tmp_path_factory) -> ModelSet:
    """A tiny SignHiera, two differently initialised tiny encoders, and the tiny trained text decoder."""
    folder = tmp_path_factory.mktemp("tiny_set")
    torch.manual_seed(0)
    signhiera = SignHiera(SignHieraConfig.tiny())
    save_model_checkpoint(signhiera, folder / "signhiera.pt")
    config = SonarSignEncoderConfig.tiny(input_dim=signhiera.config.feature_dim, d_model=32,
                                         output_dim=tiny_text_model.decoder.model_dim)
    for seed, name in ((1, "a"), (2, "b")):
        torch.manual_seed(seed)
        save_model_checkpoint(SonarSignEncoder(config), folder / f"encoder_{name}.pt")
    return ModelSet(name="tiny", description="test set", signhiera=folder / "signhiera.pt",
                    encoders={"a": folder / "encoder_a.pt", "b": folder / "encoder_b.pt"},
                    decoder=tiny_text_model.decoder_name, tokenizer=tiny_text_model.tokenizer_name,
                    detector="hog", languages=list(TINY_LANGS))


@pytest.fixture(scope="module")
def engine(tiny_set) -> TranslationEngine:
    return TranslationEngine(tiny_set, device="cpu")


@pytest.fixture(scope="module")
def face_clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [astronaut_video(folder / f"face{i}.mp4", n_frames=30 + 20 * i)[0] for i in range(2)]


def test_translate_real_face_video_with_two_encoders_and_two_languages(engine):
    result = engine.translate(carphone_path(), ["eng_Latn", "fra_Latn"], encoders=["a", "b"])
    assert set(result.translations) == {"a", "b"}
    for by_lang in result.translations.values():
        assert set(by_lang) == {"eng_Latn", "fra_Latn"}
        assert all(isinstance(text, str) for text in by_lang.values())
    assert result.feature_shape[1] == 128 and result.feature_shape[0] > 0
    assert result.faces_found >= 0.3 * result.frames_sampled and not result.used_center_crop
    assert result.device == "cpu" and result.dtype == "float32"
    assert result.preview.dtype == np.uint8 and result.preview.ndim == 3
    assert {"preprocess", "signhiera", "encoder:a", "encoder:b", "decode"} <= set(result.timings)
    json.dumps(result.to_dict())  # the --json form is serialisable


def test_engine_text_equals_decoder_on_engine_embeddings(engine, face_clips):
    """The engine computes exactly decoder(encoder(SignHiera(clip))) with no hidden extra step."""
    result = engine.translate(face_clips[0], ["eng_Latn"], encoders=["a"])
    features = engine.extract(face_clips[0]).features
    embedding = engine.embed([features], "a")
    direct = engine.decoder.decode(embedding, ["eng_Latn"])["eng_Latn"][0]
    assert result.translations["a"]["eng_Latn"] == direct


def test_features_are_extracted_once_for_several_encoders_and_cached(tiny_set, face_clips):
    engine = TranslationEngine(tiny_set, device="cpu")
    calls = count_clip_passes(engine.signhiera)
    engine.translate(face_clips[1], encoders=["a", "b"])
    first = calls[0]
    n_clips = len(engine.extract(face_clips[1]).preprocessed.paddings)
    assert first == n_clips, "two encoders must share one SignHiera pass per clip"
    engine.translate(face_clips[1], encoders=["a"])
    assert calls[0] == first, "an unchanged file must reuse its cached features"


def test_batched_translation_equals_one_at_a_time(engine, face_clips):
    together = engine.translate_batch(face_clips, ["eng_Latn", "fra_Latn"], encoders=["a", "b"])
    for clip, batched in zip(face_clips, together):
        single = engine.translate(clip, ["eng_Latn", "fra_Latn"], encoders=["a", "b"])
        assert batched.translations == single.translations
    features = [engine.extract(clip).features for clip in face_clips]
    assert features[0].shape[0] != features[1].shape[0], "clips of different lengths exercise padding"
    batch = engine.embed(features, "a")
    for row, f in enumerate(features):
        torch.testing.assert_close(batch[row], engine.embed([f], "a")[0], atol=1e-5, rtol=1e-4)


def test_unknown_language_fails_before_any_model_work(tiny_set, face_clips):
    engine = TranslationEngine(tiny_set, device="cpu")
    with pytest.raises(UnknownLanguageError, match="eng_Latn"):
        engine.translate(face_clips[0], ["eng_latn"])
    with pytest.raises(UnknownLanguageError, match="deu_Latn"):
        engine.translate(face_clips[0], ["deu_Latn"])  # a FLORES code this decoder does not have
    with pytest.raises(DecodingOptionsError, match="no_repeat_ngram_size=1"):
        engine.translate(face_clips[0], decoding=DecodingOptions(no_repeat_ngram_size=1))
    assert engine._signhieras == {} and engine._decoder is None and not engine._feature_cache


def test_unknown_encoder_is_named(engine, face_clips):
    with pytest.raises(ModelUnavailableError, match="unknown encoder 'c'.*a, b"):
        engine.translate(face_clips[0], encoders=["c"])


def test_no_signer_error_and_centre_crop_fallback(engine, tmp_path):
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 255, size=(64, 120, 160, 3), dtype=np.uint8) for _ in range(1))
    video = write_video(tmp_path / "noface.mp4", next(frames), fps=25.0)
    with pytest.raises(NoSignerError, match="in 0 of"):
        engine.translate(video)
    result = engine.translate(video, preprocess=PreprocessConfig(detector="hog", center_crop_fallback=True))
    assert result.used_center_crop and result.faces_found == 0


def test_unreadable_video_is_a_clear_error(engine, tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(VideoReadError):
        engine.translate(bogus)


def test_concurrent_callers_get_the_same_results(engine, face_clips):
    expected = engine.translate(face_clips[0], encoders=["a", "b"]).translations
    engine._feature_cache.clear()
    results, errors = [], []

    def work():
        try:
            results.append(engine.translate(face_clips[0], encoders=["a", "b"]).translations)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [expected] * 3


def test_cpu_runs_float32_and_refuses_half_precision():
    assert pick_dtype(torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="CUDA"):
        pick_dtype(torch.device("cpu"), "fp16")


def test_encoder_checkpoint_with_missing_key_is_refused_by_name(tiny_set, tmp_path, face_clips):
    checkpoint = torch.load(tiny_set.encoders["a"], weights_only=True)
    removed = sorted(checkpoint["model"])[0]
    del checkpoint["model"][removed]
    torch.save(checkpoint, tmp_path / "broken.pt")
    engine = TranslationEngine(tiny_set, device="cpu")
    engine.add_encoder("broken", tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=removed.split(".")[0]):
        engine.translate(face_clips[0], encoders=["broken"])


# ---------------------------------------------------------------------------- the CLI, end to end, as a user runs it
def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "slt", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_translates_real_face_video_with_demo_models(demo_bundle_dir, tmp_path):
    import dlib

    preview = tmp_path / "crop.png"
    out = run_cli("translate", str(carphone_path()), "--model-set", "demo", "--json", "--preview", str(preview),
                  env_extra={"SLT_DEMO_DIR": str(demo_bundle_dir)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result["translations"]) == {"zero-shot", "fine-tuned"}
    assert all(text.strip() for text in (v["eng_Latn"] for v in result["translations"].values()))
    assert result["model_set"] == "demo" and result["device"] == "cpu"
    image = cv2.cvtColor(cv2.imread(str(preview)), cv2.COLOR_BGR2RGB)
    faces = dlib.get_frontal_face_detector()(image, 2)
    assert len(faces) >= 1, "the crop preview must show the signer's face"


def test_cli_plain_output_and_errors(demo_bundle_dir, tmp_path):
    env = {"SLT_DEMO_DIR": str(demo_bundle_dir)}
    video, _ = astronaut_video(tmp_path / "signer.mp4", n_frames=40)
    out = run_cli("translate", str(video), "--model-set", "demo", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert "[zero-shot] eng_Latn:" in out.stdout and "[fine-tuned] eng_Latn:" in out.stdout
    bad_lang = run_cli("translate", str(video), "--model-set", "demo", "--lang", "french", env_extra=env)
    assert bad_lang.returncode == 1 and "french" in bad_lang.stderr and "Traceback" not in bad_lang.stderr
    missing = run_cli("translate", str(tmp_path / "missing.mp4"), "--model-set", "demo", env_extra=env)
    assert missing.returncode == 1 and "missing.mp4" in missing.stderr and "Traceback" not in missing.stderr


def test_clips_of_several_videos_share_signhiera_batches(tiny_set, face_clips):
    """With a batch of 4 clips, short videos are batched together; the features equal one-clip-at-a-time."""
    one = TranslationEngine(tiny_set, device="cpu", clip_batch_size=1)
    four = TranslationEngine(tiny_set, device="cpu", clip_batch_size=4)
    calls = count_clip_passes(four.signhiera)
    batches = []
    real = four.signhiera.extract_features
    four.signhiera.extract_features = lambda clips, *a, **k: (batches.append(clips.shape[0]), real(clips, *a, **k))[1]
    together = four.extract_many(face_clips)
    n_clips = [len(item.preprocessed.paddings) for item in together]
    assert calls[0] == sum(n_clips) and max(batches) == 4 and len(batches) == -(-sum(n_clips) // 4)
    for item, clip in zip(together, face_clips):
        torch.testing.assert_close(item.features, one.extract(clip).features, atol=1e-5, rtol=1e-4)


def test_shared_engine_is_one_per_set_device_and_backend(tiny_set, monkeypatch):
    """Callers that leave the decoder backend out and callers that name the one it resolves to share one engine
    (one copy of the models); another backend is another engine."""
    monkeypatch.delenv("SLT_DECODER_BACKEND", raising=False)
    monkeypatch.setattr(TranslationEngine, "_shared", {})
    default = TranslationEngine.shared(tiny_set, device="cpu")
    assert TranslationEngine.shared(tiny_set, device="cpu", decoder_backend="auto") is default
    assert TranslationEngine.shared(tiny_set, device="cpu", decoder_backend="transformers") is not default
    monkeypatch.setenv("SLT_DECODER_BACKEND", "transformers")
    assert TranslationEngine.shared(tiny_set, device="cpu").decoder_backend == "transformers"
    assert len(TranslationEngine._shared) == 2


def test_preprocessing_does_not_wait_for_a_signhiera_still_loading(tiny_set, face_clips):
    """Preprocessing needs only the SignHiera's clip size: it reads that from the file while another thread holds
    the model lock (a background loader), and the crops are the ones the loaded model's config gives."""
    engine = TranslationEngine(tiny_set, device="cpu")
    key = engine.base_signhiera_key
    held, release = threading.Event(), threading.Event()

    def loader() -> None:
        with engine._model_lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=loader)
    thread.start()
    held.wait(10)
    try:
        box = {}
        worker = threading.Thread(target=lambda: box.update(config=engine.signhiera_config(key)))
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "signhiera_config waited for the model lock"
        assert not engine._signhieras, "reading the config must not build the model"
    finally:
        release.set()
        thread.join()
    assert box["config"] == engine.signhiera_for("a").config == SignHieraConfig.tiny()
    features = engine.extract(face_clips[0])
    assert features.features.shape[-1] == engine.signhiera.config.feature_dim


def test_signhiera_config_of_a_released_file_is_the_full_size(tmp_path):
    from slt.models.loading import read_signhiera_config

    torch.save({"model": {"pos_embed_spatial": torch.zeros(1)}}, tmp_path / "released.pt")
    assert read_signhiera_config(tmp_path / "released.pt") == SignHieraConfig()
    with pytest.raises(CheckpointError, match="not found"):
        read_signhiera_config(tmp_path / "missing.pt")


def test_commands_freeze_their_objects_before_the_interpreter_exits(tmp_path):
    """The last garbage collection at exit walked every object torch/transformers/fairseq2 made (~1 s per command
    on 2 cores): `python -m slt` freezes them once the command is done, also when it failed, so exit skips that
    walk. main() called from other code (tests, a program embedding it) leaves its caller's GC alone."""
    code = """
import gc, runpy, sys
from slt.__main__ import main
main(["models"])
embedded = gc.get_freeze_count()
codes = []
for argv in (["models"], ["translate", "no-such-clip.mp4", "--model-set", "official"]):
    gc.unfreeze()
    sys.argv = ["slt", *argv]
    try:
        runpy.run_module("slt", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        codes.append((done.code, gc.get_freeze_count() > 1000))
print("RESULT", embedded, codes)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "SLT_OFFLINE": "1",
                               "SLT_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout[done.stdout.index("RESULT"):].strip() == "RESULT 0 [(0, True), (1, True)]", (
        done.stdout + done.stderr[-2000:])
