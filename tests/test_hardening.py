"""Crash-consistency and bad inputs (issue 12): a training run killed at any write boundary resumes to the run
directory an uninterrupted run writes; a killed run's status reads as stopped; a damaged last.pt is refused
without touching status.json."""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

from slt.errors import CheckpointError, TrainingError
from slt.text import DecodingOptions
from slt.train.config import TrainConfig
from tests.helpers import features as F
from tests.helpers.predictions import read_jsonl
from tests.helpers.process import REPO_ROOT, child_env

TIMING_KEYS = ("time", "samples_per_s", "data_wait_share", "seconds_per_clip")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny decoder, a random tiny encoder and a 12-sample train / 6-sample validation split."""
    root = tmp_path_factory.mktemp("hardening")
    decoder, tokenizer = F.tiny_text_decoder(root / "text")
    train, val = F.split_sentences()
    return {"decoder": decoder, "tokenizer": tokenizer, "cards": root / "text" / "text_assets.yaml",
            "train": F.write_domain(root / "B", train[:12], "B", 3),
            "val": F.write_domain(root / "B", val[:6], "B", 4, name="val.tsv", prefix="v"),
            "encoder": F.tiny_encoder_checkpoint(root / "enc0.pt")}


def config(c, run_dir: Path, **overrides) -> TrainConfig:
    values = dict(train_features=str(c["train"]), val_features=str(c["val"]), run_dir=str(run_dir),
                  base_encoder=str(c["encoder"]), decoder=c["decoder"], tokenizer=c["tokenizer"],
                  asset_cards=str(c["cards"]), epochs=3, batch_size=4, lr=3e-3, warmup_epochs=0.5,
                  label_smoothing=0.0, seed=0, log_every=1000, dropout=0.3, save_every_steps=2,
                  decoding=DecodingOptions(beam_size=1, max_len=12))
    values.update(overrides)
    return TrainConfig(**values).validate()


def fit_in_child(cfg: TrainConfig, resume: bool = False, env: dict | None = None) -> int:
    """Run `Trainer(cfg).fit()` in a forked child process (a real process that a real SIGKILL ends, without paying
    for a fresh interpreter's imports each time); return its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.environ.update(env or {})
            from slt.train.trainer import Trainer

            Trainer(cfg, resume=resume).fit()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def run_dir_outcome(run_dir: Path) -> dict:
    """What a run leaves that must not depend on kills: metrics lines (less timings), status, best and exported
    weights."""
    metrics = [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in read_jsonl(run_dir / "metrics.jsonl")]
    status = json.loads((run_dir / "status.json").read_text())
    best = torch.load(run_dir / "best.pt", weights_only=False)
    return {"metrics": metrics, "state": status["state"], "message": status["message"],
            "best_epoch": best["progress"]["best_epoch"], "best_model": best["model"],
            "encoder": torch.load(run_dir / "encoder.pt", weights_only=False)["model"],
            "predictions": sorted(p.name for p in run_dir.glob("predictions_epoch*.jsonl"))}


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), (what, key)


def test_a_kill_at_every_write_boundary_resumes_to_the_uninterrupted_run(corpus, tmp_path):
    """SIGKILL right after each durable write (checkpoints, metrics lines, predictions, status, export) of a run
    with dropout and mid-epoch checkpoints; resuming must give the uninterrupted run's directory exactly."""
    from slt.train.rundir import read_status

    log = tmp_path / "writes.log"
    assert fit_in_child(config(corpus, tmp_path / "full"), env={"SLT_TEST_WRITE_LOG": str(log)}) == 0
    writes = [line.split("\t")[1] for line in log.read_text().splitlines()]
    full = run_dir_outcome(tmp_path / "full")
    epoch_lines = [m for m in full["metrics"] if "val_loss" in m]
    assert [m["epoch"] for m in epoch_lines] == [1, 2, 3] and full["state"] == "finished"
    names = [Path(w).name for w in writes]
    assert {"last.pt", "best.pt", "metrics.jsonl", "status.json", "encoder.pt", "config.json"} <= set(names)
    assert names.index("last.pt") < names.index("best.pt")
    # The best epoch is not the last one here, so exporting the wrong epoch's weights would show.
    assert full["best_epoch"] < 3, "the fixture no longer has a best epoch before the last; change its seed or lr"
    assert_same_tensors({k.removeprefix("encoder."): v for k, v in full["best_model"].items()
                         if k.startswith("encoder.")}, full["encoder"], "full: encoder.pt is best.pt's encoder")

    for k in range(1, len(writes) + 1):
        run_dir = tmp_path / f"kill{k}"
        cfg = config(corpus, run_dir)
        status = fit_in_child(cfg, env={"SLT_TEST_KILL_AFTER_WRITES": str(k)})
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, writes[k - 1], status)
        if (run_dir / "status.json").exists():  # a SIGKILLed trainer's "running" must not stay "running"
            assert read_status(run_dir)["state"] != "running", (k, writes[k - 1])
        resume = (run_dir / "last.pt").exists()  # before the first checkpoint there is nothing to resume
        assert fit_in_child(cfg, resume=resume) == 0, (k, writes[k - 1])
        got = run_dir_outcome(run_dir)
        where = f"killed after write {k} ({writes[k - 1]})"
        assert got["metrics"] == full["metrics"], where
        assert (got["state"], got["message"], got["best_epoch"], got["predictions"]) == \
            (full["state"], full["message"], full["best_epoch"], full["predictions"]), where
        assert_same_tensors(got["best_model"], full["best_model"], where)
        assert_same_tensors(got["encoder"], full["encoder"], where)


def test_gradient_accumulation_steps_on_the_last_partial_group_of_an_epoch(corpus, tmp_path):
    """3 batches with grad_accum 2 are 2 optimiser steps (2 + 1 batches); the last batch must not be dropped."""
    from slt.train.trainer import Trainer

    cfg = config(corpus, tmp_path / "run", epochs=1, grad_accum=2, log_every=1, save_every_steps=0)
    summary = Trainer(cfg).fit()
    assert summary["step"] == 2
    steps = [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "samples_per_s" in m]
    assert steps == [1, 2]


def test_a_killed_runs_status_reads_as_stopped_and_a_reused_pid_does_not_revive_it(tmp_path):
    from slt.train.rundir import RunDir, read_status

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = RunDir(tmp_path / "run", enabled=True)
        run.set_status("running", epoch=2, step=5, best_bleu=1.0, message="epoch 1 done")
        run.close()
        status = json.loads((tmp_path / "run" / "status.json").read_text())
        # Pretend the child wrote it, as the trainer process of an app job does.
        from slt.train.rundir import process_start_time

        status.update(pid=child.pid, pid_start=process_start_time(child.pid))
        (tmp_path / "run" / "status.json").write_text(json.dumps(status))
        assert read_status(tmp_path / "run")["state"] == "running"
        # The same pid with another start time is another process (the pid was reused): the writer is gone.
        (tmp_path / "run" / "status.json").write_text(json.dumps({**status, "pid_start": status["pid_start"] - 1}))
        assert read_status(tmp_path / "run")["state"] == "stopped"
        (tmp_path / "run" / "status.json").write_text(json.dumps(status))
        child.send_signal(signal.SIGKILL)
        child.wait()
        gone = read_status(tmp_path / "run")
        assert gone["state"] == "stopped" and f"pid {child.pid}" in gone["message"] and "--resume" in gone["message"]
        assert gone["epoch"] == 2 and gone["step"] == 5
    finally:
        child.kill()
        child.wait()


def test_the_app_job_list_sees_a_killed_trainer_as_stopped(tmp_path):
    """slt.ui.jobs reads status.json through read_status (a job launched by an earlier app process, now killed)."""
    from slt.ui.jobs import Job, JobManager

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run_dir = tmp_path / "runs" / "job1"
    run_dir.mkdir(parents=True)
    started = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "epoch": 1, "step": 3, "message": "training",
                                                     "pid": child.pid, "pid_start": started}))
    child.send_signal(signal.SIGKILL)
    child.wait()
    manager = JobManager(tmp_path / "runs")
    job = Job(id="job1", run_dir=str(run_dir), command=[], pid=child.pid, started_at=0.0)
    assert manager.state(job) == "stopped"


def test_a_damaged_last_pt_is_refused_and_status_is_kept(corpus, tmp_path):
    cfg = config(corpus, tmp_path / "run", epochs=1)
    assert fit_in_child(cfg) == 0
    status_before = (tmp_path / "run" / "status.json").read_bytes()
    metrics_before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    last = tmp_path / "run" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # cut short, as by a full disk
    cfg.save(tmp_path / "cfg.json")
    result = subprocess.run([sys.executable, "-m", "slt", "train", "--config", str(tmp_path / "cfg.json"), "--epochs",
                             "2", "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env=child_env())
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"the training checkpoint {last} is damaged" in result.stderr
    assert "Nothing in its run folder was changed" in result.stderr
    assert (tmp_path / "run" / "status.json").read_bytes() == status_before
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == metrics_before
    with pytest.raises(CheckpointError, match="damaged"):
        from slt.train.checkpoint import load_training_state

        load_training_state(last)


# ---------------------------------------------------------------------------------------------- bad inputs
def poison(manifest: Path, clip_id: str, step: int) -> None:
    features = torch.load(manifest.parent / f"{clip_id}.pt")
    features[step, 1] = float("nan")
    torch.save(features, manifest.parent / f"{clip_id}.pt")


def test_non_finite_validation_features_fail_before_training_naming_the_sample(corpus, tmp_path):
    from slt.errors import ManifestError
    from slt.train.trainer import Trainer

    _, val = F.split_sentences()
    manifest = F.write_domain(tmp_path / "val", val[:6], "B", 4, name="val.tsv", prefix="v")
    poison(manifest, "vB002", 3)
    cfg = config({**corpus, "val": manifest}, tmp_path / "run")
    with pytest.raises(ManifestError, match=r"val\.tsv:4: the features of id 'vB002' .* NaN or inf at step\(s\) \[3\]"):
        Trainer(cfg).fit()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before the first step


def test_non_finite_training_features_stop_naming_the_sample_and_the_run_resumes_once_fixed(corpus, tmp_path):
    from slt.train.trainer import Trainer

    train, _ = F.split_sentences()
    manifest = F.write_domain(tmp_path / "train", train[:12], "B", 3)
    clean = (tmp_path / "train" / "B007.pt").read_bytes()
    poison(manifest, "B007", 0)
    cfg = config({**corpus, "train": manifest}, tmp_path / "run", epochs=2, save_every_steps=0)
    with pytest.raises(TrainingError, match=r"'B007' .* NaN or inf .*saved .*last\.pt.*--resume"):
        Trainer(cfg).fit()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and "B007" in status["message"]
    (tmp_path / "train" / "B007.pt").write_bytes(clean)
    assert Trainer(cfg, resume=True).fit()["state"] == "finished"
    # Nothing was lost: the steps before the bad sample were kept, the resumed run is the uninterrupted one.
    Trainer(config({**corpus, "train": manifest}, tmp_path / "full", epochs=2, save_every_steps=0)).fit()
    runs = [[{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in read_jsonl(tmp_path / r / "metrics.jsonl")]
            for r in ("run", "full")]
    assert runs[0] == runs[1]


BAD_CONFIG = {"freeze_encoder": "false", "lr": float("nan"), "epochs": 2.5, "batch_size": "8", "log_every": 0,
              "max_val_samples": 0, "save_every_steps": -1, "grad_accum": True, "dropout": 1.5}


def test_a_config_with_bad_values_is_one_error_naming_every_field(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps(BAD_CONFIG))  # NaN is written as the JSON extension NaN
    with pytest.raises(TrainingError) as caught:
        TrainConfig.load(tmp_path / "bad.json").validate()
    message = str(caught.value)
    for name in BAD_CONFIG:
        assert f"{name} must" in message, (name, message)
    assert "9 field(s)" in message
    assert "freeze_encoder must be true or false, got 'false' (a string)" in message
    assert "epochs must be a whole number, got 2.5" in message and "lr must be a finite number, got nan" in message
    TrainConfig(epochs=3, lr=1, max_val_samples=None).validate()  # an int where a float goes is fine
    result = subprocess.run([sys.executable, "-m", "slt", "train", "--config", str(tmp_path / "bad.json")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=child_env())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: Bad training config ({tmp_path / 'bad.json'}"), lines


def _analysis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env=child_env())


def test_analysis_report_refuses_duplicate_ids_and_a_negative_bootstrap(tmp_path):
    rows = [{"id": i, "reference": f"the cat sees {i}", "prediction": f"the cat sees {i}"} for i in ("a", "b", "c")]
    rows += [rows[1], rows[2], rows[2]]  # "b" twice, "c" three times
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _analysis("report", str(pred), "--bootstrap", "10")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "pred.jsonl lists 2 sample id(s) more than once: 'c' x3, 'b' x2" in result.stderr
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    result = _analysis("report", str(pred), "--bootstrap", "-5")
    assert result.returncode == 2 and "--bootstrap: must be >= 0 (0 = no confidence intervals), got -5" in result.stderr
    ok = _analysis("report", str(pred), "--bootstrap", "0")
    assert ok.returncode == 0 and "verdict" in ok.stdout, ok.stderr


def test_a_language_the_decoder_lacks_is_named_with_the_languages_it_has(corpus):
    """fra_Latn is a real FLORES-200 code: the English-only decoder lacks it, which is not "unknown"."""
    from slt.errors import UnknownLanguageError
    from slt.text import SonarTextDecoder

    decoder = SonarTextDecoder(decoder=corpus["decoder"], tokenizer=corpus["tokenizer"])
    assert decoder.languages == ["eng_Latn"]
    with pytest.raises(UnknownLanguageError) as caught:
        decoder.decode(torch.zeros(1, F.MODEL_DIM), ["eng_Latn", "fra_Latn"])
    assert str(caught.value) == f"the decoder {corpus['decoder']} does not have fra_Latn; it has: eng_Latn"
    with pytest.raises(UnknownLanguageError, match="unknown target language 'french'"):  # not a code at all
        decoder.decode(torch.zeros(1, F.MODEL_DIM), ["french"])


# ---------------------------------------------------------------------------------------------- OS errors
def _slt(*args: str, as_user: bool = False, preexec=None) -> subprocess.CompletedProcess:
    """`python -m slt ...`; `as_user`: without root's permission override (capsh drops it), as a user runs it."""
    command = [sys.executable, "-m", "slt", *args]
    if as_user:
        capsh = shutil.which("capsh")
        assert capsh, "capsh is missing: install Debian's libcap2-bin (scripts/dev.sh test does)"
        command = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(command)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=child_env(),
                          preexec_fn=preexec)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failed command prints for the user (log lines aside); no traceback."""
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_os_errors_are_one_line_naming_the_path_and_what_to_do(corpus, tmp_path, capsys):
    cfg = config(corpus, tmp_path / "run", epochs=1)
    cfg.save(tmp_path / "cfg.json")
    (tmp_path / "a_file").write_text("not a folder")
    line = error_line(_slt("train", "--config", str(tmp_path / "cfg.json"), "--run-dir", str(tmp_path / "a_file")))
    assert line == (f"error: File exists: {tmp_path / 'a_file'}; a file is in the way where a folder is expected: "
                    "give a folder path or move that file away")
    line = error_line(_slt("train", "--config", str(tmp_path / "cfg.json"), "--run-dir",
                           str(tmp_path / "a_file" / "run")))
    assert line.startswith(f"error: Not a directory: {tmp_path / 'a_file' / 'run'}; a part of this path is a file")

    (tmp_path / "latin1.json").write_bytes('{"target_lang": "fran\xe7ais"}'.encode("latin-1"))
    line = error_line(_slt("train", "--config", str(tmp_path / "latin1.json")))
    assert line.startswith(f"error: Config file {tmp_path / 'latin1.json'} is not UTF-8 text")
    assert line.endswith("save it as UTF-8")

    from slt.__main__ import main

    study = f"sqlite:///{tmp_path / 'a_file' / 'study.db'}"
    assert main(["tune", "--config", str(tmp_path / "cfg.json"), "--storage", study, "--n-trials", "1"]) == 1
    assert capsys.readouterr().err == (f"error: cannot open the study database {study} (unable to open database "
                                       "file); check that the folder of the database file exists and is writable, "
                                       "or give another --storage\n")

    (tmp_path / "cfg.json").chmod(0)
    line = error_line(_slt("train", "--config", str(tmp_path / "cfg.json"), as_user=True))
    assert line.startswith(f"error: Permission denied: {tmp_path / 'cfg.json'}; check its permissions")

    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "a", "reference": "a cat", "prediction": "a cat"}) + "\n")
    pred.chmod(0)
    capsh = shutil.which("capsh")
    result = subprocess.run([capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                             shlex.join([sys.executable, "-m", "analysis", "report", str(pred)])], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, env=child_env())
    assert error_line(result).startswith(f"error: Permission denied: {pred}; check its permissions")


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint_whole(corpus, tmp_path):
    """Disk full, made testable without mounting anything: a file-size limit (RLIMIT_FSIZE) makes the write of the
    next checkpoint fail part-way (EFBIG) exactly as a full disk does (ENOSPC), at the same place in the code."""
    cfg = config(corpus, tmp_path / "run", epochs=1, save_every_steps=0)
    assert fit_in_child(cfg) == 0
    cfg.save(tmp_path / "cfg.json")
    last = tmp_path / "run" / "last.pt"
    before = last.read_bytes()
    (epoch_one,) = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "val_loss" in m]
    limit = len(before) // 2  # below a checkpoint's size, far above the logs' and status.json's

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = _slt("train", "--config", str(tmp_path / "cfg.json"), "--epochs", "2", "--resume", preexec=small_disk)
    assert error_line(result) == (f"error: File too large: {last}; the file grew past the size this system allows: "
                                  "free space or lift the limit, then run again")
    assert last.read_bytes() == before  # the previous checkpoint is whole
    assert not list((tmp_path / "run").glob(".*.tmp"))  # no half-written temp files left behind
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and "File too large" in status["message"]
    resumed = _slt("train", "--config", str(tmp_path / "cfg.json"), "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Nothing was lost: epoch 1's record is the one written before the failure, and epoch 2 was trained once.
    epochs = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "val_loss" in m]
    assert [m["epoch"] for m in epochs] == [1, 2] and epochs[0] == epoch_one
