"""`python -m slt tune`: a resumable SQLite study of tiny scratch runs, pruning, plots, --train-best, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from slt.__main__ import main
from slt.errors import TrainingError
from slt.train.config import TrainConfig
from slt.train.tune_space import apply_params, build_space, parse_search
from tests.helpers.features import LONG_SENTENCES, write_features
from tests.helpers.process import child_env


def base_flags(tmp_path: Path) -> list[str]:
    """A tiny scratch run: 24 samples of 6 sentences, constant lr (plateau), greedy decoding."""
    manifest = write_features(tmp_path / "features", LONG_SENTENCES * 4)
    return ["--recipe", "scratch", "--train-features", str(manifest), "--val-features", str(manifest),
            "--scratch-d-model", "64", "--scratch-ff", "128", "--batch-size", "4", "--warmup-epochs", "0",
            "--scheduler", "plateau", "--label-smoothing", "0", "--beam-size", "1", "--max-len", "12",
            "--device", "cpu", "--out-dir", str(tmp_path / "out")]


def test_study_prunes_resumes_across_processes_plots_and_trains_the_best(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    flags = base_flags(tmp_path) + ["--storage", storage, "--study-name", "tiny", "--epochs", "4",
                                    "--trial-epochs", "3", "--no-default-space", "--search", "lr=log:1e-6:1e-2",
                                    "--pruner-startup-trials", "2", "--pruner-warmup-epochs", "1"]
    # Two good learning rates first, then a useless one that the MedianPruner must stop after epoch 2.
    enqueue = ["--enqueue", '{"lr": 0.005}', "--enqueue", '{"lr": 0.004}', "--enqueue", '{"lr": 1e-6}']
    assert main(["tune", *flags, *enqueue, "--n-trials", "3"]) == 0

    study = optuna.load_study(study_name="tiny", storage=storage)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED]
    assert study.best_params == {"lr": 0.005} and study.best_value > 1.0
    out = tmp_path / "out"
    pruned_status = json.loads((out / "trial_0002" / "status.json").read_text())
    assert pruned_status["state"] == "stopped" and "pruned" in pruned_status["message"]
    pruned_log = (out / "trial_0002" / "train.log").read_text()
    assert "pruned by Optuna after epoch 2" in pruned_log and "ERROR" not in pruned_log  # a stop, not a failure
    assert not (out / "trial_0002" / "predictions_epoch3.jsonl").exists()  # it really stopped early
    assert (out / "trial_0000" / "predictions_epoch3.jsonl").exists()
    for name in ("importance", "history", "intermediate"):
        html = (out / f"{name}.html").read_text()
        assert "plotly" in html.lower() and "Not available" not in html, name
    best = json.loads((out / "best_config.json").read_text())
    assert best.pop("_study")["best_trial"] == 0
    best_cfg = TrainConfig.from_dict(best)
    assert best_cfg.lr == 0.005 and best_cfg.epochs == 4  # the full epochs, not the trial epochs

    # A second process continues the same study: the trial count grows and numbering goes on.
    env = child_env(OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "slt", "tune", *flags, "--n-trials", "1"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["trials"] == 4
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 4
    assert (out / "trial_0003" / "config.json").is_file()

    # --train-best trains the best configuration for the full epochs.
    best_dir = tmp_path / "best_run"
    assert main(["tune", "--train-best", "--storage", storage, "--study-name", "tiny",
                 "--run-dir", str(best_dir)]) == 0
    status = json.loads((best_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epoch"] == 5  # 4 epochs done
    trained = TrainConfig.load(best_dir / "config.json")
    assert trained.lr == 0.005 and trained.epochs == 4
    assert (best_dir / "predictions_epoch4.jsonl").is_file() and (best_dir / "scratch_translator.pt").is_file()


def test_default_search_space_per_recipe_and_overrides():
    names = {p.name for p in build_space("t5-bridge", [])}
    assert {"lr", "batch_size", "warmup_epochs", "label_smoothing", "dropout", "bridge_queries",
            "encoder_lr"} <= names
    assert {"scratch_layers", "scratch_d_model"} <= {p.name for p in build_space("scratch", [])}
    space = {p.name: p for p in build_space("scratch", ["lr=float:0.1:0.2", "decoding.beam_size=choice:1,4"])}
    assert (space["lr"].kind, space["lr"].low, space["lr"].high) == ("float", 0.1, 0.2)
    assert space["decoding.beam_size"].choices == (1, 4)
    only = build_space("scratch", ["batch_size=choice:2,4"], use_defaults=False)
    assert [p.spec() for p in only] == ["batch_size=choice:2,4"]
    data = apply_params(TrainConfig().to_dict(), {"lr": 0.1, "decoding.beam_size": 4})
    cfg = TrainConfig.from_dict(data)
    assert cfg.lr == 0.1 and cfg.decoding.beam_size == 4


@pytest.mark.parametrize("spec, message", [
    ("learning_rate=log:1e-5:1e-3", "not a config field"),
    ("lr=gaussian:0:1", "expected NAME=KIND:ARGS"),
    ("lr=log:0:1", "LOW > 0 for log"),
    ("lr=float:0.5:0.1", "LOW < HIGH"),
    ("batch_size=choice:four,eight", "cannot parse"),
    ("lr", "expected NAME=KIND:ARGS"),
])
def test_bad_search_specs_are_rejected(spec, message):
    with pytest.raises(TrainingError, match=message):
        parse_search(spec)


def test_cli_errors_are_clear(tmp_path, capsys):
    flags = base_flags(tmp_path)
    storage = f"sqlite:///{tmp_path / 'errors.db'}"
    assert main(["tune", *flags, "--search", "bogus=log:1:2", "--n-trials", "1"]) == 1
    assert "not a config field" in capsys.readouterr().err
    assert main(["tune", *flags, "--no-default-space", "--search", "lr=log:1e-4:1e-2",
                 "--enqueue", '{"dropout": 0.1}', "--n-trials", "1"]) == 1
    assert "searched fields ['lr']" in capsys.readouterr().err
    assert main(["tune", "--train-best", "--storage", storage, "--study-name", "nope"]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["tune", *flags, "--storage", "study.db", "--n-trials", "1"]) == 1
    assert "sqlite:///study.db" in capsys.readouterr().err
    # A study whose only trial failed (NaN loss from an absurd lr is caught as a failed trial) has no best.
    optuna.create_study(study_name="empty", storage=storage)
    assert main(["tune", "--train-best", "--storage", storage, "--study-name", "empty"]) == 1
    assert "no completed trial" in capsys.readouterr().err
