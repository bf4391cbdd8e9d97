"""The two-stage chain (`python -m slt train --config chain.json`) and system.json.

The chain test runs the real CLI on crop caches of real face videos with a tiny SignHiera, SONAR encoder and text
decoder: stage 1 -> features from stage 1's SignHiera -> stage 2 -> evaluation -> system.json; a step that fails is
named, and `--resume` skips what finished."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from slt.errors import SystemFileError, TrainingError
from slt.modelset import SYSTEM_FILE, read_system, write_system
from tests.helpers.process import REPO_ROOT, child_env

# ------------------------------------------------------------------------------------------------ system.json


def test_write_system_relative_paths_that_read_system_reads(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "stage1").mkdir(parents=True)
    (run / "stage2").mkdir()
    (run / "stage1" / "signhiera.pt").write_bytes(b"s")
    (run / "stage2" / "encoder.pt").write_bytes(b"e")
    path = write_system(run, run / "stage1" / "signhiera.pt", "stage2/encoder.pt", "hog", "two stages")
    assert json.loads(path.read_text()) == {"format": 1, "signhiera": "stage1/signhiera.pt",
                                            "encoder": "stage2/encoder.pt", "detector": "hog",
                                            "description": "two stages"}
    moved = tmp_path / "moved"
    shutil.move(run, moved)  # relative paths: the folder can move
    system = read_system(moved)
    assert (system.signhiera, system.encoder, system.detector, system.description) == (
        moved / "stage1" / "signhiera.pt", moved / "stage2" / "encoder.pt", "hog", "two stages")

    with pytest.raises(SystemFileError, match="not inside that folder"):
        write_system(moved / "stage1", moved / "stage1" / "signhiera.pt", moved / "stage2" / "encoder.pt")
    with pytest.raises(SystemFileError, match="encoder checkpoint .* does not exist"):
        write_system(moved, "stage1/signhiera.pt", "stage2/missing.pt")
    with pytest.raises(SystemFileError, match="detector must be one of"):
        write_system(moved, "stage1/signhiera.pt", "stage2/encoder.pt", detector="yolo")


# ------------------------------------------------------------------------------------------------ config


def test_chain_config_fills_the_chain_fields_and_names_every_bad_field(tmp_path, capsys) -> None:
    from slt.__main__ import main
    from slt.train.chain import ChainConfig

    good = {"run_dir": str(tmp_path / "c"), "videos": {"train": "t.tsv", "val": "v.tsv", "test": "x.tsv"},
            "stage1": {"train_features": "crops/train", "val_features": "crops/val", "signhiera_checkpoint": "s.pt",
                       "decoder": "my_decoder", "tokenizer": "my_tok", "device": "cpu", "lr": 1e-5},
            "stage2": {"lr": 1e-4, "seed": 3}}
    cfg = ChainConfig.from_dict(good)
    assert (cfg.stage1.recipe, cfg.stage2.recipe) == ("signhiera-finetune", "sonar-finetune")
    assert cfg.stage1.run_dir == str(tmp_path / "c" / "stage1") and cfg.stage2.run_dir == str(tmp_path / "c" / "stage2")
    assert cfg.stage2.train_features == str(tmp_path / "c" / "features" / "train" / "features.tsv")
    assert cfg.stage2.base_encoder == str(tmp_path / "c" / "stage1" / "encoder.pt")  # stage 1's encoder by default
    assert (cfg.stage2.decoder, cfg.stage2.tokenizer, cfg.stage2.device) == ("my_decoder", "my_tok", "cpu")
    assert (cfg.stage2.seed, cfg.stage2.lr) == (3, 1e-4)  # given: kept, not inherited
    official = ChainConfig.from_dict({**good, "stage2": {"base_encoder": None}})
    assert official.stage2.base_encoder is None  # null: the official zero-shot encoder

    example = ChainConfig.load(REPO_ROOT / "configs" / "two-stage" / "how2sign.json")  # the README's example
    assert example.stage1.base_encoder is None  # the official zero-shot encoder
    assert example.stage2.base_encoder == "runs/how2sign-2stage/stage1/encoder.pt"
    assert (example.stage2.device, example.nproc_per_node) == ("cuda", 8)

    example_path = str(REPO_ROOT / "configs" / "two-stage" / "how2sign.json")
    assert main(["train", "--config", example_path, "--lr", "1e-3", "--beam-size", "2"]) == 1
    assert "is a two-stage chain config: set ['--beam-size', '--lr'] in its stage1/stage2 sections" in \
        capsys.readouterr().err

    bad = {"run_dir": "", "nproc_per_node": 0, "videos": {"train": "t.tsv", "bad name": ""}, "typo": 1,
           "stage1": {"lr": "1e-5", "epochs": 2.5, "recipe": "scratch", "run_dir": "x"},
           "stage2": {"train_features": "f.tsv", "batch_size": 0, "amp": "false"}}
    with pytest.raises(TrainingError) as caught:
        ChainConfig.from_dict(bad, source="chain.json")
    message = str(caught.value)
    for expected in ("Bad two-stage config (chain.json)", "unknown field(s) ['typo']", "run_dir must not be empty",
                     "nproc_per_node must be >= 1", "videos.val is required", "split name 'bad name'",
                     "stage1 must not set ['run_dir']", "stage1.recipe must be 'signhiera-finetune'",
                     "stage1.lr must be a number", "stage1.epochs must be a whole number",
                     "stage1.train_features is required", "stage1.signhiera_checkpoint is required",
                     "stage2 must not set ['train_features']", "stage2.batch_size must be >= 1",
                     "stage2.amp must be true or false"):
        assert expected in message, (expected, message)


# ------------------------------------------------------------------------------------------------ the real chain
@pytest.fixture(scope="module")
def chain_inputs(tmp_path_factory, tiny_text_model):
    from tests.helpers.stage1 import write_stage1_inputs  # here: it imports the crop cache and the models

    return write_stage1_inputs(tmp_path_factory.mktemp("chain"), tiny_text_model)


def _chain_config(root, tiny_text_model, run_dir, **stage2) -> dict:
    shared = dict(batch_size=2, warmup_epochs=0.5, label_smoothing=0.0, log_every=1, device="cpu",
                  decoding={"beam_size": 1, "max_len": 12})
    manifest = str(root / "manifest.tsv")
    return {
        "run_dir": str(run_dir), "videos": {"train": manifest, "val": manifest, "test": manifest},
        "extract_workers": 0, "description": "tiny chain",
        "stage1": {**shared, "train_features": str(root / "cache"), "val_features": str(root / "cache"),
                   "signhiera_checkpoint": str(root / "signhiera.pt"), "base_encoder": str(root / "encoder.pt"),
                   "decoder": tiny_text_model.decoder_name, "tokenizer": tiny_text_model.tokenizer_name,
                   "asset_cards": str(tiny_text_model.paths["cards"]), "target_lang": tiny_text_model.langs[0],
                   "epochs": 2, "lr": 3e-3, "unfreeze_signhiera_layers": 2},
        "stage2": {**shared, "epochs": 2, "lr": 3e-3, **stage2},
    }


def _train(config_path, *flags) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slt", "train", "--config", str(config_path), *flags],
                          cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=600)


def _weights(path):
    state = torch.load(path, weights_only=True)
    return state.get("model", state)


def test_chain_cli_runs_both_stages_names_a_failed_step_and_resumes(chain_inputs, tiny_text_model, tmp_path):
    from slt.data.extract_state import file_sha256

    run = tmp_path / "chain"
    later = tmp_path / "later_encoder.pt"  # stage 2 starts from a checkpoint that does not exist yet
    config_path = tmp_path / "chain.json"
    config_path.write_text(json.dumps(_chain_config(chain_inputs, tiny_text_model, run, base_encoder=str(later))))

    first = _train(config_path)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "two-stage chain, step stage2 failed" in first.stderr and str(later) in first.stderr, first.stderr[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["stage"]) == ("failed", "stage2")
    # Stage 1 finished: its run dir alone is a usable system; the features were made with its SignHiera.
    stage1 = read_system(run / "stage1")
    assert (stage1.signhiera, stage1.encoder, stage1.detector) == (
        run / "stage1" / "signhiera.pt", run / "stage1" / "encoder.pt", "hog")
    for split in ("train", "val", "test"):
        extracted = json.loads((run / "features" / split / "extract_config.json").read_text())
        assert extracted["signhiera"]["sha256"] == file_sha256(run / "stage1" / "signhiera.pt")
        assert extracted["preprocess"]["detector"] == "hog"
    assert file_sha256(run / "stage1" / "signhiera.pt") != file_sha256(chain_inputs / "signhiera.pt")
    assert not (run / SYSTEM_FILE).exists()

    again = _train(config_path)  # without --resume an existing chain is refused
    assert again.returncode == 1 and "already holds a two-stage run" in again.stderr and "--resume" in again.stderr

    shutil.copyfile(run / "stage1" / "encoder.pt", later)
    kept = (run / "stage1" / "last.pt", run / "features" / "train" / "features.tsv")
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    resumed = _train(config_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["state"] == "finished" and summary["ran"] == ["stage2", "evaluate/test"], summary
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished steps were skipped, not redone
    assert "stage1: finished before" in (run / "train.log").read_text()

    system = read_system(run)
    assert (system.signhiera, system.encoder, system.detector, system.description) == (
        run / "stage1" / "signhiera.pt", run / "stage2" / "encoder.pt", "hog", "tiny chain")
    assert json.loads((run / SYSTEM_FILE).read_text())["signhiera"] == "stage1/signhiera.pt"
    stage2_cfg = json.loads((run / "stage2" / "config.json").read_text())
    assert stage2_cfg["train_features"] == str(run / "features" / "train" / "features.tsv")
    assert stage2_cfg["decoder"] == tiny_text_model.decoder_name  # inherited from stage 1
    before, after = _weights(later), _weights(run / "stage2" / "encoder.pt")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # stage 2 trained the encoder further
    results = json.loads((run / "evaluate" / "test_results.json").read_text())
    assert summary["test_bleu"] == results["bleu"] and 0.0 <= results["bleu"] <= 100.0
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_chain_stopped_by_sigterm_resumes_the_interrupted_stage(chain_inputs, tiny_text_model, tmp_path):
    run = tmp_path / "chain"
    config = _chain_config(chain_inputs, tiny_text_model, run)
    config["stage1"]["epochs"] = 6
    config["videos"] = {k: v for k, v in config["videos"].items() if k != "test"}
    config_path = tmp_path / "chain.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen([sys.executable, "-m", "slt", "train", "--config", str(config_path)], cwd=REPO_ROOT,
                               env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "stage1" / "last.pt").exists():  # the first epoch of stage 1 is saved
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3, err[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and status["stage"] == "stage1" and "--resume" in status["message"]
    stage1_status = json.loads((run / "stage1" / "status.json").read_text())
    assert stage1_status["state"] == "stopped" and stage1_status["epoch"] <= 6

    resumed = _train(config_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (run / "stage1" / "train.log").read_text()
    history = [json.loads(line) for line in (run / "stage1" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history if "bleu" in row] == [1, 2, 3, 4, 5, 6]  # each epoch exactly once
    assert read_system(run).encoder == run / "stage2" / "encoder.pt"
    assert os.path.exists(run / "features" / "val" / "features.tsv")
