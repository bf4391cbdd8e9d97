"""Serving a two-stage fine-tuning result (an encoder with its own, stage-1-adapted SignHiera) next to zero-shot:
system.json is read and checked; the engine loads each distinct SignHiera once, computes a clip's features once per
SignHiera (shared by entries that read the same one) and translates each encoder from its own SignHiera's features;
the translate CLI and the app's Compare tab put both side by side and say the features could not be shared.

The adapted SignHieras here come from real, short signhiera-finetune runs (the Trainer and the recipe's export)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from slt.data.crop_cache import build_crop_cache
from slt.engine import TranslationEngine
from slt.errors import (
    CheckpointError,
    InvalidArgumentError,
    ModelUnavailableError,
    PathNotAllowedError,
    SystemFileError,
)
from slt.models import (
    SignHiera,
    SignHieraConfig,
    load_signhiera,
    save_model_checkpoint,
)
from slt.modelset import ModelSet, find_systems, read_system
from slt.text import DecodingOptions
from slt.train.config import TrainConfig
from slt.train.trainer import Trainer
from slt.video import PreprocessConfig, preprocess_video
from slt.video.config import fit_preprocess_to_model
from tests.helpers.models import count_clip_passes
from tests.helpers.process import REPO_ROOT, child_env
from tests.helpers.stage1 import TINY_SIGNHIERA, write_stage1_inputs
from tests.helpers.text import TINY_LANGS
from tests.helpers.video import SAMPLES, astronaut_video

SIGNHIERA = TINY_SIGNHIERA


def train_stage1(run_dir: Path, manifest: Path, preprocess: PreprocessConfig, **config) -> Path:
    """A short real signhiera-finetune run (crop cache of `manifest`, the Trainer, the recipe's export), with the
    system.json a stage-1 run folder gets. Returns the run folder."""
    cache = run_dir.parent / f"{run_dir.name}_cache"
    build_crop_cache(manifest, cache, preprocess)
    values = dict(recipe="signhiera-finetune", train_features=str(cache), val_features=str(cache),
                  run_dir=str(run_dir), epochs=2, batch_size=2, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.0,
                  log_every=1, device="cpu", unfreeze_signhiera_layers=2,
                  decoding=DecodingOptions(beam_size=1, max_len=12))
    values.update(config)
    summary = Trainer(TrainConfig(**values).validate()).fit()
    assert summary["state"] == "finished"
    write_system(run_dir, signhiera="signhiera.pt", encoder="encoder.pt", detector="hog")
    return run_dir


def write_system(folder: Path, **fields) -> Path:
    path = folder / "system.json"
    path.write_text(json.dumps({"format": 1, **fields}), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ tiny models
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_text_model):
    """A tiny model set (SignHiera + zero-shot encoder + the tiny text decoder) and a stage-1 run adapted from it."""
    root = write_stage1_inputs(tmp_path_factory.mktemp("two_stage"), tiny_text_model, SIGNHIERA, crop_cache=False)
    preprocess = fit_preprocess_to_model(PreprocessConfig(detector="hog"), SIGNHIERA)
    run = train_stage1(root / "stage1", root / "manifest.tsv", preprocess,
                       signhiera_checkpoint=str(root / "signhiera.pt"), base_encoder=str(root / "encoder.pt"),
                       decoder=tiny_text_model.decoder_name, tokenizer=tiny_text_model.tokenizer_name,
                       target_lang=tiny_text_model.langs[0])
    model_set = ModelSet(name="tiny-two-stage", description="test set", signhiera=root / "signhiera.pt",
                         encoders={"zero-shot": root / "encoder.pt"}, decoder=tiny_text_model.decoder_name,
                         tokenizer=tiny_text_model.tokenizer_name, detector="hog", languages=list(TINY_LANGS))
    return {"root": root, "run": run, "set": model_set, "video": root / "v1.mp4"}


def test_read_system_resolves_paths_relative_to_its_folder(tiny):
    run = tiny["run"]
    system = read_system(run)
    assert system == read_system(run / "system.json")
    assert (system.signhiera, system.encoder, system.detector) == (run / "signhiera.pt", run / "encoder.pt", "hog")
    assert system.name == "stage1" and system.description == ""
    chain = tiny["root"] / "runs" / "chain"
    (chain / "stage1").mkdir(parents=True)
    write_system(chain, signhiera="../../stage1/signhiera.pt", encoder="../../stage1/encoder.pt",
                 description="two-stage")
    write_system(chain / "stage1", signhiera="../../../stage1/signhiera.pt", encoder="../../../stage1/encoder.pt")
    assert find_systems(tiny["root"] / "runs") == {"chain": chain, "chain/stage1": chain / "stage1"}
    assert read_system(chain).signhiera.resolve() == (run / "signhiera.pt").resolve()
    assert read_system(chain).description == "two-stage"


@pytest.mark.parametrize(("content", "message"), [
    (None, "has no system.json"),
    ("{not json", "is unreadable"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"signhiera": "signhiera.pt", "encoder": "encoder.pt"}', "has no 'format'"),
    ('{"format": 2, "signhiera": "signhiera.pt", "encoder": "encoder.pt"}', "has format 2; this version reads "
                                                                              "format 1"),
    ('{"format": 1, "signhiera": "signhiera.pt"}', "lacks 'encoder'"),
    ('{"format": 1, "signhiera": "", "encoder": 3}', "lacks 'signhiera' and 'encoder'"),
    ('{"format": 1, "signhiera": "signhiera.pt", "encoder": "stage2/encoder.pt"}',
     "names encoder checkpoint 'stage2/encoder.pt'"),
    ('{"format": 1, "signhiera": "signhiera.pt", "encoder": "encoder.pt", "detector": 5}', "'detector' must be"),
])
def test_bad_system_files_are_named_errors(tiny, tmp_path, content, message):
    for name in ("signhiera.pt", "encoder.pt"):
        (tmp_path / name).symlink_to(tiny["run"] / name)
    if content is not None:
        (tmp_path / "system.json").write_text(content, encoding="utf-8")
    with pytest.raises(SystemFileError, match=message) as caught:
        read_system(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert isinstance(caught.value, ModelUnavailableError)  # what the CLI and the app show as a user error


def test_features_once_per_signhiera_shared_where_equal(tiny):
    """One SignHiera pass per clip per distinct SignHiera; entries reading the same file share it; cached."""
    run, root, video = tiny["run"], tiny["root"], tiny["video"]
    engine = TranslationEngine(tiny["set"], device="cpu")
    engine.add_system("two-stage", read_system(run))
    engine.add_encoder("stage1-encoder-on-base", run / "encoder.pt")  # the same encoder on the set's SignHiera
    engine.add_encoder("zero-shot-again", root / "encoder.pt", signhiera=root / "signhiera.pt")  # the same file
    base, own = engine.signhiera, engine.signhiera_for("two-stage")
    assert own is not base and engine.signhiera_for("zero-shot-again") is base
    base_calls, own_calls = count_clip_passes(base), count_clip_passes(own)
    labels = ["zero-shot", "two-stage", "stage1-encoder-on-base", "zero-shot-again"]
    result = engine.translate(video, TINY_LANGS[:1], encoders=labels)
    n_clips = len(engine.extract(video).preprocessed.paddings)  # from the cache: no new pass
    assert (base_calls[0], own_calls[0]) == (n_clips, n_clips), "one pass per clip per distinct SignHiera"
    assert result.signhiera == {"zero-shot": "model set", "two-stage": str(run / "signhiera.pt"),
                                "stage1-encoder-on-base": "model set", "zero-shot-again": "model set"}
    assert {"preprocess", "signhiera", "signhiera:two-stage"} <= set(result.timings)
    assert result.translations["zero-shot-again"] == result.translations["zero-shot"]
    again = engine.translate(video, TINY_LANGS[:1], encoders=labels)
    assert (base_calls[0], own_calls[0]) == (n_clips, n_clips), "unchanged file: both features from the cache"
    assert again.translations == result.translations and again.timings["feature_cache_hit"] == 1.0
    json.dumps(result.to_dict())


def test_each_encoder_reads_its_own_signhieras_features(tiny):
    """The system's features are exactly its adapted SignHiera's (not the set's); its outputs differ from the same
    encoder on the set's SignHiera, and its translation is decoder(encoder(own SignHiera(clip)))."""
    run, video = tiny["run"], tiny["video"]
    engine = TranslationEngine(tiny["set"], device="cpu")
    engine.add_system("two-stage", read_system(run))
    engine.add_encoder("stage1-encoder-on-base", run / "encoder.pt")
    result = engine.translate(video, TINY_LANGS[:1], encoders=["two-stage", "stage1-encoder-on-base"])
    own = engine.extract(video, signhiera=engine.signhiera_key("two-stage")).features
    shared = engine.extract(video).features
    adapted = load_signhiera(run / "signhiera.pt")
    clips = preprocess_video(video, fit_preprocess_to_model(engine.preprocess_config, adapted.config))
    with torch.no_grad():
        expected = adapted.extract_video_features(clips.clips, clips.paddings)
    torch.testing.assert_close(own, expected, rtol=1e-5, atol=1e-6)
    assert own.shape == shared.shape and (own - shared).abs().max() > 1e-3, "stage 1 changed the features"
    a, b = engine.embed([own], "two-stage"), engine.embed([shared], "stage1-encoder-on-base")
    assert (a - b).abs().max() > 1e-4
    direct = engine.decoder.decode(a, TINY_LANGS[:1])[TINY_LANGS[0]][0]
    assert result.translations["two-stage"][TINY_LANGS[0]] == direct


def test_concurrent_mixed_requests(tiny):
    engine = TranslationEngine(tiny["set"], device="cpu")
    engine.add_system("two-stage", read_system(tiny["run"]))
    expected = engine.translate(tiny["video"], TINY_LANGS[:1], encoders=["zero-shot", "two-stage"]).translations
    engine._feature_cache.clear()
    results, errors = [], []

    def work(encoders):
        try:
            out = engine.translate(tiny["video"], TINY_LANGS[:1], encoders=encoders).translations
            results.append({label: out[label] for label in encoders})
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(encoders,))
               for encoders in (["zero-shot", "two-stage"], ["two-stage"], ["zero-shot"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for out in results:
        assert all(out[label] == expected[label] for label in out)


def test_broken_or_mismatched_signhiera_is_a_clear_error(tiny, tmp_path):
    run = tiny["run"]
    checkpoint = torch.load(run / "signhiera.pt", weights_only=True)
    removed = sorted(checkpoint["model"])[-1]
    del checkpoint["model"][removed]
    torch.save(checkpoint, tmp_path / "signhiera.pt")
    (tmp_path / "encoder.pt").symlink_to(run / "encoder.pt")
    write_system(tmp_path, signhiera="signhiera.pt", encoder="encoder.pt")
    engine = TranslationEngine(tiny["set"], device="cpu")
    engine.add_system("broken", read_system(tmp_path))
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'signhiera.pt'} does not match SignHiera.*"
                                              f"{removed.split('.')[0]}"):
        engine.translate(tiny["video"], TINY_LANGS[:1], encoders=["zero-shot", "broken"])
    # A SignHiera of another feature width than the encoder was trained on.
    torch.manual_seed(1)
    save_model_checkpoint(SignHiera(SignHieraConfig.tiny(num_frames=16, image_size=32, embed_dim=8)),
                          tmp_path / "narrow.pt")
    engine.add_encoder("mismatched", tiny["root"] / "encoder.pt", signhiera=tmp_path / "narrow.pt")
    with pytest.raises(ModelUnavailableError, match=r"encoder 'mismatched' .* takes 128-dim features but got "
                                                    r"64-dim ones .*narrow\.pt"):
        engine.translate(tiny["video"], TINY_LANGS[:1], encoders=["mismatched"])
    with pytest.raises(ModelUnavailableError, match="SignHiera checkpoint .*missing.pt.* does not exist"):
        engine.add_encoder("x", run / "encoder.pt", signhiera=tmp_path / "missing.pt")
    with pytest.raises(ModelUnavailableError, match="unknown encoder 'nope'"):
        engine.signhiera_for("nope")


# ------------------------------------------------------------------------------- the demo set, the CLI and the app
@pytest.fixture(scope="module")
def demo_system(demo_bundle_dir, tmp_path_factory) -> Path:
    """A runs folder holding `two-stage`: a short real stage-1 run adapted from the demo set's SignHiera and
    zero-shot encoder on four domain-B clips, with its system.json."""
    from slt.data.manifest import read_manifest
    from slt.modelset import read_demo_bundle

    bundle = read_demo_bundle(demo_bundle_dir)
    runs = tmp_path_factory.mktemp("runs")
    rows = read_manifest(bundle.corpora["B"]["train"]).rows[:4]
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    lines += [f"{row.id}\t{row.video_path}\t{row.n_frames}\t{row.translation}" for row in rows]
    (runs.parent / "four.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    signhiera = load_signhiera(bundle.files["signhiera"])
    preprocess = fit_preprocess_to_model(PreprocessConfig(detector="hog"), signhiera.config)
    return train_stage1(runs / "two-stage", runs.parent / "four.tsv", preprocess,
                        signhiera_checkpoint=str(bundle.files["signhiera"]),
                        base_encoder=str(bundle.files["encoder_zero_shot"]), decoder=bundle.decoder,
                        tokenizer=bundle.tokenizer, asset_cards=str(bundle.files["decoder_cards"]),
                        target_lang="eng_Latn", unfreeze_signhiera_layers=1, lr=1e-3)


def run_cli(*args: str, demo_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slt", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=child_env(SLT_DEMO_DIR=str(demo_dir)), timeout=600)


def test_cli_puts_zero_shot_next_to_the_two_stage_system(demo_bundle_dir, demo_system, tmp_path):
    video, _ = astronaut_video(tmp_path / "signer.mp4", n_frames=40)
    out = run_cli("translate", str(video), "--model-set", "demo", "--encoder", "zero-shot", str(demo_system),
                  str(demo_system / "encoder.pt"), "--json", demo_dir=demo_bundle_dir)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert list(result["translations"]) == ["zero-shot", "two-stage", "encoder"]
    assert result["signhiera"] == {"zero-shot": "model set", "two-stage": str(demo_system / "signhiera.pt"),
                                   "encoder": "model set"}
    assert {"preprocess", "signhiera", "signhiera:two-stage", "encoder:two-stage"} <= set(result["timings"])
    assert all(by_lang["eng_Latn"].strip() for by_lang in result["translations"].values())
    # The same, with the stage-1 checkpoints given one by one, in plain text.
    out = run_cli("translate", str(video), "--model-set", "demo", "--encoder", "zero-shot",
                  str(demo_system / "encoder.pt"), "--signhiera", str(demo_system / "signhiera.pt"),
                  demo_dir=demo_bundle_dir)
    assert out.returncode == 0, out.stderr
    assert f"[encoder] {demo_system / 'signhiera.pt'}" in out.stdout
    assert "features cannot be shared: the clip went through 2 SignHieras" in out.stdout
    assert "signhiera:encoder" in out.stdout and "[zero-shot] model set" in out.stdout
    alone = run_cli("translate", str(video), "--model-set", "demo", "--encoder", str(demo_system),
                    demo_dir=demo_bundle_dir)
    assert alone.returncode == 0, alone.stderr
    assert "(one SignHiera, features shared)" in alone.stdout and "signhiera:two-stage" in alone.stdout
    assert "[zero-shot]" not in alone.stdout
    # Errors: one line naming the file, no traceback.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "system.json").write_text('{"format": 7, "signhiera": "a.pt", "encoder": "b.pt"}')
    bad = run_cli("translate", str(video), "--model-set", "demo", "--encoder", str(tmp_path / "bad"),
                  demo_dir=demo_bundle_dir)
    assert bad.returncode == 1 and "has format 7" in bad.stderr and str(tmp_path / "bad") in bad.stderr
    assert "Traceback" not in bad.stderr
    lone = run_cli("translate", str(video), "--model-set", "demo", "--encoder", "zero-shot", "--signhiera",
                   str(demo_system / "signhiera.pt"), demo_dir=demo_bundle_dir)
    assert lone.returncode == 1 and "--signhiera applies to encoder checkpoints given by path" in lone.stderr
    twice = run_cli("translate", str(video), "--model-set", "demo", "--encoder", str(demo_system),
                    str(demo_system / "system.json"), demo_dir=demo_bundle_dir)
    assert twice.returncode == 1 and "'two-stage', which is already taken" in twice.stderr


def test_evaluate_scores_a_system_on_its_own_signhieras_features(demo_bundle_dir, demo_system, tmp_path):
    manifest = demo_system.parent.parent / "four.tsv"
    out = run_cli("evaluate", "--system", str(demo_system), "--manifest", str(manifest), "--out", str(tmp_path),
                  "--extract-workers", "0", demo_dir=demo_bundle_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["encoder"] == str(demo_system / "encoder.pt") and results["samples"] == 4
    assert results["signhiera"] == str(demo_system / "signhiera.pt")
    # The features it scored are the adapted SignHiera's (hog crops: the system's detector), not the set's.
    from slt.data.manifest import read_manifest

    row = read_manifest(manifest).rows[0]
    stored = torch.load(next((tmp_path / "features_test").rglob(f"{row.id}.pt")), weights_only=True)
    adapted = load_signhiera(demo_system / "signhiera.pt")
    video = preprocess_video(row.video_path, fit_preprocess_to_model(PreprocessConfig(detector="hog"), adapted.config))
    with torch.no_grad():
        torch.testing.assert_close(stored, adapted.extract_video_features(video.clips, video.paddings),
                                   rtol=1e-4, atol=1e-5)
    both = run_cli("evaluate", "--system", str(demo_system), "--manifest", str(manifest), "--signhiera",
                   str(demo_system / "signhiera.pt"), demo_dir=demo_bundle_dir)
    assert both.returncode == 1 and "drop --signhiera/--features" in both.stderr


def test_compare_tab_puts_zero_shot_next_to_a_system(demo_bundle_dir, demo_system, tmp_path):
    """The Compare handlers without the UI: the runs folder's system is offered, the pair is flagged before and after
    the run, the clip goes through both SignHieras once each, and the model info names each entry's SignHiera."""
    import html

    from slt.ui.compare_tab import compare_on_clip, compare_on_split, pair_notice, signhiera_by_entry
    from slt.ui.settings import AppSettings
    from slt.ui.split_eval import SplitPredictor, evaluation_splits
    from slt.ui.state import AppState
    from slt.ui.systems import compare_choices, system_choices, use_encoder

    settings = AppSettings(model_set="demo", device="cpu", runs_dir=demo_system.parent, demo_dir=demo_bundle_dir)
    state = AppState(settings)
    state.loader.start()
    engine = state.loader.wait(timeout=300)
    assert system_choices(settings) == ["system:two-stage"]
    assert compare_choices(settings, engine) == ["zero-shot", "fine-tuned", "system:two-stage"]
    assert "Features cannot be shared" in pair_notice(state, "zero-shot", "system:two-stage")
    assert "computed once and shared" in pair_notice(state, "zero-shot", "fine-tuned")

    label = use_encoder(state, engine, "system:two-stage")
    base_calls, own_calls = count_clip_passes(engine.signhiera), count_clip_passes(engine.signhiera_for(label))
    clip = SAMPLES / "instructional_2.webm"
    body, preview, timings = asyncio.run(compare_on_clip(state, str(clip), "zero-shot", "system:two-stage",
                                                         "eng_Latn", "session"))
    n_clips = len(engine.extract(clip, preprocess=state.preprocess_config(engine)).preprocessed.paddings)
    assert (base_calls[0], own_calls[0]) == (n_clips, n_clips)
    assert "Features cannot be shared" in body and "<b>system:two-stage</b> runs its own SignHiera" in body
    assert "goes through the video model twice" in body and preview is not None
    assert {"preprocess", "signhiera", "signhiera:system:two-stage"} <= {row[0] for row in timings}
    expected = engine.translate(clip, ["eng_Latn"], encoders=["zero-shot", label],
                                preprocess=state.preprocess_config(engine))
    for name in ("zero-shot", label):
        assert html.escape(expected.translations[name]["eng_Latn"]) in body
    shared, _, timings = asyncio.run(compare_on_clip(state, str(clip), "zero-shot", "fine-tuned", "eng_Latn", "s"))
    assert "computed once and shared" in shared and "cannot be shared" not in shared
    assert not any(row[0].startswith("signhiera:") for row in timings)
    assert signhiera_by_entry(settings, engine) == {"zero-shot": "model set", "fine-tuned": "model set",
                                                    "system:two-stage": "two-stage/signhiera.pt"}
    split = next(iter(evaluation_splits("demo", demo_bundle_dir)))
    with pytest.raises(InvalidArgumentError, match="runs its own SignHiera.*evaluate --system"):
        compare_on_split(state, SplitPredictor(), split, "zero-shot", "system:two-stage")


def test_translate_tab_offers_and_runs_a_system(demo_bundle_dir, demo_system):
    """The Translate tab's encoder box lists the runs folder's system next to the set's encoders, and translating
    with it gives the engine's translation of that system (its own SignHiera's pass in the timings)."""
    import html

    from slt.text import DecodingOptions
    from slt.ui.app import model_status_updates
    from slt.ui.settings import AppSettings
    from slt.ui.state import AppState
    from slt.ui.translate_tab import translate_clip

    settings = AppSettings(model_set="demo", device="cpu", runs_dir=demo_system.parent, demo_dir=demo_bundle_dir)
    state = AppState(settings)
    state.loader.start()
    engine = state.loader.wait(timeout=300)
    assert model_status_updates(state)["translate_encoder"]["choices"] == ["zero-shot", "fine-tuned",
                                                                            "system:two-stage"]
    clip = SAMPLES / "instructional_2.webm"
    body, preview, _, timings, details = asyncio.run(translate_clip(state, str(clip), ["eng_Latn"],
                                                                    "system:two-stage", False, 2, 32, 0, "s"))
    expected = engine.translate(clip, ["eng_Latn"], encoders=["system:two-stage"],
                                preprocess=state.preprocess_config(engine),
                                decoding=DecodingOptions(beam_size=2, max_len=32))
    assert list(details["translations"]) == ["system:two-stage"] and preview is not None
    assert html.escape(expected.translations["system:two-stage"]["eng_Latn"]) in body
    assert "signhiera:system:two-stage" in {row[0] for row in timings}
    # A typed path is for admins: a local app's user is one; an exposed app's visitors are not.
    exposed = AppState(AppSettings(model_set="demo", device="cpu", runs_dir=demo_system.parent,
                                   demo_dir=demo_bundle_dir, public=True))
    exposed.loader.start()
    with pytest.raises(PathNotAllowedError, match="needs the admin token"):
        asyncio.run(translate_clip(exposed, str(clip), ["eng_Latn"], str(demo_system), False, 2, 32, 0, "s"))


def test_system_paths_follow_the_security_rules(demo_bundle_dir, demo_system, tmp_path):
    from slt.ui.settings import AppSettings
    from slt.ui.systems import pick_system

    runs = demo_system.parent
    exposed = AppSettings(model_set="demo", runs_dir=runs, demo_dir=demo_bundle_dir, public=True)
    assert pick_system(exposed, "system:two-stage").encoder == demo_system / "encoder.pt"  # listed: anyone
    for typed in (str(demo_system), "two-stage", "system:../two-stage", str(demo_system / "system.json")):
        with pytest.raises(PathNotAllowedError, match="needs the admin token"):
            pick_system(exposed, typed)
    with_token = AppSettings(model_set="demo", runs_dir=runs, demo_dir=demo_bundle_dir, public=True,
                             admin_token="secret")
    with pytest.raises(PathNotAllowedError, match="needs the admin token"):
        pick_system(with_token, str(demo_system), token="wrong")
    assert pick_system(with_token, str(demo_system), token="secret").name == "two-stage"
    local = AppSettings(model_set="demo", runs_dir=runs, demo_dir=demo_bundle_dir)  # the machine's own user
    assert pick_system(local, "two-stage").signhiera == demo_system / "signhiera.pt"
    with pytest.raises(SystemFileError, match="has no system.json"):
        pick_system(local, str(tmp_path))
    # A listed system whose checkpoints lie outside what the app may read is refused, for everyone.
    other_runs = tmp_path / "runs"
    (other_runs / "outside").mkdir(parents=True)
    write_system(other_runs / "outside", signhiera=str(demo_system / "signhiera.pt"),
                 encoder=str(demo_system / "encoder.pt"))
    fenced = AppSettings(model_set="demo", runs_dir=other_runs, demo_dir=demo_bundle_dir, public=True)
    with pytest.raises(PathNotAllowedError, match="outside the directories this app may read"):
        pick_system(fenced, "system:outside")


def test_app_api_offers_and_runs_the_system(demo_bundle_dir, demo_system):
    """Through the launched app: model_info names each entry's SignHiera and the systems; /compare_clip runs one."""
    from gradio_client import Client, handle_file

    from tests.helpers.app import app_settings, free_port, launched_app

    with launched_app(app_settings(demo_bundle_dir, demo_system.parent, free_port(), max_clip_seconds=10,
                                   max_upload_mb=5)) as (url, _state):
        client = Client(url, verbose=False)
        info = client.predict(api_name="/model_info")
        assert info["systems"] == ["system:two-stage"]
        # (the process's engine is shared: an earlier test may have added the system already)
        assert (info["signhiera"]["zero-shot"], info["signhiera"]["fine-tuned"]) == ("model set", "model set")
        body, _, timings = client.predict(handle_file(str(SAMPLES / "instructional_1.webm")), "zero-shot",
                                          "system:two-stage", "eng_Latn", api_name="/compare_clip")
        assert "Features cannot be shared" in body
        assert "signhiera:system:two-stage" in [row[0] for row in timings["data"]]
        info = client.predict(api_name="/model_info")
        assert info["signhiera"]["system:two-stage"] == "two-stage/signhiera.pt"


def test_captions_of_a_system_read_its_own_signhiera(tiny):
    from slt.captions import caption_video
    from slt.video.segment import SegmentationConfig

    engine = TranslationEngine(tiny["set"], device="cpu")
    engine.add_system("two-stage", read_system(tiny["run"]))
    base_calls, own_calls = count_clip_passes(engine.signhiera), count_clip_passes(engine.signhiera_for("two-stage"))
    # Fixed windows: the tiny video is a photo moved as a whole (camera motion, which the motion segmenter rightly
    # does not take for signing); this test is about which SignHiera the captions read, not where sentences are.
    result = caption_video(engine, tiny["video"], TINY_LANGS[:1], encoder="two-stage",
                           segmentation=SegmentationConfig(method="fixed", window_s=5.0))
    assert result.captions and own_calls[0] > 0 and base_calls[0] == 0


def test_captions_cli_takes_a_system(demo_bundle_dir, demo_system):
    out = run_cli("captions", str(SAMPLES / "instructional_1.webm"), "--model-set", "demo", "--encoder",
                  str(demo_system), "--json", demo_dir=demo_bundle_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["encoder"] == "two-stage"


def test_partly_cached_batch_runs_each_signhiera_only_where_missing(tiny):
    """Two videos in shared batches, one with the set's features cached: each (video, SignHiera) runs once."""
    engine = TranslationEngine(tiny["set"], device="cpu", clip_batch_size=4)
    engine.add_system("two-stage", read_system(tiny["run"]))
    first, second = tiny["root"] / "v1.mp4", tiny["root"] / "v2.mp4"
    base_calls, own_calls = count_clip_passes(engine.signhiera), count_clip_passes(engine.signhiera_for("two-stage"))
    engine.translate(first, TINY_LANGS[:1], encoders=["zero-shot"])
    n_first = base_calls[0]
    together = engine.translate_batch([first, second], TINY_LANGS[:1], encoders=["zero-shot", "two-stage"])
    n_second = len(engine.extract(second).preprocessed.paddings)
    assert base_calls[0] == n_first + n_second and own_calls[0] == n_first + n_second
    alone = TranslationEngine(tiny["set"], device="cpu")
    alone.add_system("two-stage", read_system(tiny["run"]))
    for video, batched in zip((first, second), together):
        assert batched.translations == alone.translate(video, TINY_LANGS[:1],
                                                       encoders=["zero-shot", "two-stage"]).translations


def test_compare_tab_shows_the_notice_in_a_browser(demo_bundle_dir, demo_system, tmp_path):
    """In the real page: picking the system next to zero-shot shows the notice before anything runs."""
    from playwright.sync_api import expect, sync_playwright

    from tests.helpers.app import app_settings, free_port, launched_app
    from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS

    with launched_app(app_settings(demo_bundle_dir, demo_system.parent, free_port())) as (url, _state), \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url)
            expect(page.locator("#slt-model-status")).to_contain_text("ready", timeout=120_000)
            page.get_by_role("tab", name="Compare").click()
            page.get_by_label("Encoder B or a trained system", exact=True).click()
            page.get_by_role("option", name="system:two-stage", exact=True).click()
            expect(page.get_by_text("Features cannot be shared")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("so the clip goes through the video model twice")).to_be_visible()
            page.screenshot(path=str(tmp_path / "compare_system.png"))
            print(f"screenshot: {tmp_path / 'compare_system.png'}")
        finally:
            browser.close()
