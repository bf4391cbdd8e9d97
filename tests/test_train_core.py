"""Trainer bars on a tiny learnable corpus: fine-tuning improves BLEU, only the encoder changes, the loss covers
every token, exact resume after SIGTERM, 2-process DDP == 1 process, NaN stop naming the step, manifest errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slt.data.features import FeaturesDataset, collate_features
from slt.errors import ManifestError, TrainingError
from slt.text import DecodingOptions
from slt.train.config import TrainConfig, decoding_options
from slt.train.sampling import epoch_batches
from tests.helpers import features as F
from tests.helpers.predictions import read_jsonl
from tests.helpers.process import REPO_ROOT, child_env


# ---------------------------------------------------------------------------------------------- fast checks
def test_manifest_errors_name_file_and_line(tmp_path):
    manifest = F.write_domain(tmp_path, ["the cat sees a red ball", "a dog likes green trees"], "A", 0)
    ds = FeaturesDataset(manifest)
    batch = collate_features([ds[0], ds[1]])
    assert batch.features.shape[0] == 2 and batch.padding_mask.dtype == torch.bool
    # 6 words x 2 steps and 5 words x 2 steps: the shorter one has 2 padded steps, zero-filled
    assert batch.padding_mask[0].sum() == 0 and batch.padding_mask[1].sum() == 2
    assert batch.features[1, -2:].abs().sum() == 0
    lines = manifest.read_text().splitlines()
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join([lines[0], lines[1], lines[2].replace(".pt", "_missing.pt")]) + "\n")
    with pytest.raises(ManifestError, match=r"bad\.tsv:3: .*not found"):
        FeaturesDataset(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace("\t12\t", "\tx\t")]) + "\n")
    with pytest.raises(ManifestError, match=r"bad\.tsv:2: n_steps must be an integer"):
        FeaturesDataset(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace("\t12\t", "\t11\t")]) + "\n")
    with pytest.raises(ManifestError, match=r"bad\.tsv:2: n_steps says 11"):
        FeaturesDataset(bad)[0]


def test_ddp_batches_cover_the_same_global_batch():
    one = epoch_batches(10, 4, 1, 0, seed=3, epoch=2)
    two = [epoch_batches(10, 2, 2, r, seed=3, epoch=2) for r in (0, 1)]
    assert len(two[0]) == len(two[1]) == len(one)
    for i, batch in enumerate(one):
        assert two[0][i] + two[1][i] == batch
    assert epoch_batches(10, 4, 1, 0, 3, 2) != epoch_batches(10, 4, 1, 0, 3, 3)  # reshuffled per epoch


def test_bad_config_is_a_clear_error(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"lrr": 1.0}))
    with pytest.raises(TrainingError, match="unknown config field.*lrr"):
        TrainConfig.load(tmp_path / "c.json")
    with pytest.raises(TrainingError, match="scheduler must be one of"):
        TrainConfig(scheduler="linear").validate()


def test_decoding_settings_are_the_text_decoding_options_and_round_trip(tmp_path):
    cfg = TrainConfig(seed=7, decoding=DecodingOptions(beam_size=2, no_repeat_ngram_size=3, sampling=True))
    assert isinstance(TrainConfig().decoding, DecodingOptions)  # one dataclass for inference and training
    cfg.save(tmp_path / "c.json")
    loaded = TrainConfig.load(tmp_path / "c.json")
    assert loaded == cfg and isinstance(loaded.decoding, DecodingOptions)
    assert decoding_options(loaded).seed == 7  # sampling without its own seed follows the run's seed
    assert decoding_options(TrainConfig(decoding=DecodingOptions(sampling=True, seed=3))).seed == 3
    (tmp_path / "d.json").write_text(json.dumps({"decoding": {"beam": 4}}))
    with pytest.raises(TrainingError, match=r"unknown decoding field.*'beam'.*beam_size"):
        TrainConfig.load(tmp_path / "d.json")
    (tmp_path / "e.json").write_text(json.dumps({"decoding": {"beam_size": 0}}))
    with pytest.raises(TrainingError, match=r"e\.json: bad decoding setting: beam_size must be an integer >= 1"):
        TrainConfig.load(tmp_path / "e.json")


# ---------------------------------------------------------------------------------------------- corpus
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_core")
    decoder, tokenizer = F.tiny_text_decoder(root / "text")
    train, val = F.split_sentences()
    paths = {
        "root": root, "decoder": decoder, "tokenizer": tokenizer, "cards": root / "text" / "text_assets.yaml",
        "trainA": F.write_domain(root / "A", train, "A", 1),
        "trainB": F.write_domain(root / "B", train, "B", 3),
        "valB": F.write_domain(root / "B", val, "B", 4, name="val.tsv", prefix="v"),
        "enc0": F.tiny_encoder_checkpoint(root / "enc0.pt"),
    }
    # The "released" domain-A encoder: trained here on domain A with the trainer itself.
    from slt.train.trainer import Trainer

    cfg = base_config(paths, root / "runA", train="trainA", val="valB", encoder=paths["enc0"], epochs=4)
    Trainer(cfg).fit()
    paths["encA"] = root / "runA" / "encoder.pt"
    return paths


def base_config(c, run_dir, train="trainB", val="valB", encoder=None, **overrides) -> TrainConfig:
    values = dict(train_features=str(c[train]), val_features=str(c[val]), run_dir=str(run_dir),
                  base_encoder=str(encoder or c["encA"]), decoder=c["decoder"], tokenizer=c["tokenizer"],
                  asset_cards=str(c["cards"]), epochs=3, batch_size=6, lr=3e-3, warmup_epochs=0.5,
                  label_smoothing=0.0, seed=0, log_every=1, decoding=DecodingOptions(beam_size=1, max_len=20))
    values.update(overrides)
    return TrainConfig(**values).validate()


def test_finetune_improves_and_only_the_encoder_changes(corpus, tmp_path):
    from slt.train.recipes import get_recipe
    from slt.train.trainer import Trainer

    recipe = get_recipe("sonar-finetune")
    trainer = Trainer(base_config(corpus, tmp_path / "run", epochs=3), recipe=recipe)
    trainer._setup()
    decoder_before = {k: v.clone() for k, v in recipe.text_decoder._model.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.resume = True  # _setup already ran: fit() would run it again, so drive the loop directly
    summary = trainer._fit()
    assert summary["state"] == "finished"
    bleus = [h["bleu"] for h in summary["history"]]
    assert bleus[-1] > bleus[0], bleus
    for key, value in recipe.text_decoder._model.state_dict().items():
        assert torch.equal(value, decoder_before[key]), f"frozen decoder weight {key} changed"
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, encoder_before[k])]
    assert any("projection_out" in k for k in changed) and any("encoder.encoder.block" in k for k in changed)
    preds = read_jsonl(tmp_path / "run" / "predictions_epoch3.jsonl")
    assert len({p["prediction"] for p in preds}) > len(preds) // 2  # no mode collapse
    assert set(preds[0]) == {"id", "reference", "prediction", "sentence_bleu", "chrf"}
    epochs = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "bleu" in m]
    assert [m["epoch"] for m in epochs] == [1, 2, 3] and all("bleu4" in m and "chrf" in m for m in epochs)
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "encoder.pt").exists()


def test_on_evaluated_callback_stops_the_run_cleanly_and_it_resumes(corpus, tmp_path):
    from slt.train.trainer import StopTraining, Trainer

    calls = []

    def on_evaluated(epoch: int, scores: dict) -> None:
        calls.append((epoch, scores["bleu"]))
        if epoch == 2:
            raise StopTraining("pruned by the test after epoch 2")

    cfg = base_config(corpus, tmp_path / "run", epochs=3, batch_size=12)
    summary = Trainer(cfg, on_evaluated=on_evaluated).fit()
    assert summary["state"] == "stopped" and summary["reason"] == "pruned by the test after epoch 2"
    assert [epoch for epoch, _ in calls] == [1, 2] and summary["epochs_done"] == 2
    metrics = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "bleu" in m]
    assert [(m["epoch"], m["bleu"]) for m in metrics] == calls  # the callback saw the logged scores
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "stopped" and status["message"] == summary["reason"]
    log_text = (tmp_path / "run" / "train.log").read_text()
    assert "ERROR" not in log_text and "training failed" not in log_text
    assert not (tmp_path / "run" / "predictions_epoch3.jsonl").exists()
    # The stopped run is a normal checkpoint: --resume trains the remaining epoch.
    resumed = Trainer(cfg, resume=True).fit()
    assert resumed["state"] == "finished" and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]


def test_loss_covers_every_target_token(corpus, tmp_path):
    from slt.train.recipes import get_recipe

    cfg = base_config(corpus, tmp_path / "run")
    recipe = get_recipe("sonar-finetune")
    model = recipe.build(cfg, torch.device("cpu"))
    batch = collate_features([FeaturesDataset(corpus["trainB"])[i] for i in range(3)])
    loss, n_tokens = recipe.loss(model, batch, cfg)
    # every text token plus EOS of every sentence (the `</s> __eng_Latn__` prefix is given, not predicted)
    expected = sum(len(seq) - 2 for seq in recipe.text_decoder.tokenize(batch.texts, "eng_Latn"))
    assert n_tokens == expected and n_tokens > 3 * len(batch)
    # changing only the last word of one target changes the loss: the end of the sentence is in it
    words = batch.texts[0].split()
    batch.texts[0] = " ".join(words[:-1] + ["house" if words[-1] != "house" else "ball"])
    assert not torch.isclose(recipe.loss(model, batch, cfg)[0], loss)


def _train_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "slt", "train", "--config", str(config), *extra]


def _env() -> dict:
    return child_env(OMP_NUM_THREADS="1")


def test_sigterm_stops_with_checkpoint_and_resume_is_exact(corpus, tmp_path):
    from slt.train.trainer import Trainer

    # Dropout draws random masks: a resume must continue the random stream exactly where the stop left it.
    Trainer(base_config(corpus, tmp_path / "full", epochs=3, batch_size=4, dropout=0.2)).fit()
    full = [m for m in read_jsonl(tmp_path / "full" / "metrics.jsonl")]

    cfg = base_config(corpus, tmp_path / "cut", epochs=3, batch_size=4, dropout=0.2)
    cfg.save(tmp_path / "cut.json")
    proc = subprocess.Popen(_train_cmd(tmp_path / "cut.json"), cwd=REPO_ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and len(read_jsonl(metrics)) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    status = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert status["state"] == "stopped" and (tmp_path / "cut" / "last.pt").exists()
    assert status["step"] < full[-1]["step"]

    resumed = subprocess.run(_train_cmd(tmp_path / "cut.json", "--resume"), cwd=REPO_ROOT, env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    cut = read_jsonl(metrics)
    assert [m["step"] for m in cut] == [m["step"] for m in full]
    for a, b in zip(cut, full):
        for key in ("train_loss", "val_loss", "bleu", "chrf"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (key, a, b)
    exported = [torch.load(tmp_path / run / "encoder.pt", weights_only=False)["model"] for run in ("cut", "full")]
    for key, value in exported[1].items():
        assert torch.allclose(exported[0][key], value, rtol=1e-4, atol=1e-6), key


def test_two_process_ddp_matches_one_process_across_unfreezing(corpus, tmp_path):
    from slt.train.trainer import Trainer

    # Epoch 1 trains only the projections, epoch 2 the whole encoder: DDP must sync the unfrozen body too.
    unfreeze = dict(epochs=2, eval_every=2, freeze_encoder=True, unfreeze_after=1)
    Trainer(base_config(corpus, tmp_path / "one", batch_size=6, **unfreeze)).fit()
    cfg = base_config(corpus, tmp_path / "two", batch_size=3, **unfreeze)
    cfg.save(tmp_path / "two.json")
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "slt", "train",
                             "--config", str(tmp_path / "two.json")], cwd=REPO_ROOT, env=_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    one = [m["train_loss"] for m in read_jsonl(tmp_path / "one" / "metrics.jsonl") if "val_loss" not in m]
    two = [m["train_loss"] for m in read_jsonl(tmp_path / "two" / "metrics.jsonl") if "val_loss" not in m]
    assert len(one) == len(two) >= 12
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    assert "rebuilding the DDP wrapper" in (tmp_path / "two" / "train.log").read_text()
    weights_one = torch.load(tmp_path / "one" / "last.pt", weights_only=False)["model"]
    weights_two = torch.load(tmp_path / "two" / "last.pt", weights_only=False)["model"]
    start = torch.load(corpus["encA"], weights_only=False)["model"]
    body = [k for k in weights_one if ".block." in k]
    moved = max(float((weights_one[k] - start[k.removeprefix("encoder.")]).abs().max()) for k in body)
    apart = max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one)
    # The unfrozen body trained in epoch 2 (moved ~7e-3), identically on 1 and 2 processes (float noise ~5e-5).
    assert moved > 2e-3 and apart < 3e-4, (moved, apart)


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(corpus, tmp_path):
    from slt.train.trainer import Trainer

    data = tmp_path / "data"
    train, _ = F.split_sentences()
    manifest = F.write_domain(data, train[:12], "B", 5)
    cfg = base_config({**corpus, "poison": manifest}, tmp_path / "run", train="poison", epochs=1, batch_size=4)
    Trainer(cfg).fit()
    good = (tmp_path / "run" / "last.pt").read_bytes()
    poisoned = torch.load(data / "B005.pt")
    poisoned[3, :] = 3e38  # finite, but the model overflows on it (non-finite inputs are refused when loaded)
    torch.save(poisoned, data / "B005.pt")
    cfg.epochs = 2
    with pytest.raises(TrainingError, match=r"Non-finite training loss .* at step \d+ .*inputs are finite"):
        Trainer(cfg, resume=True).fit()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and "step" in status["message"]
    assert (tmp_path / "run" / "last.pt").read_bytes() == good


def test_training_runs_in_a_worker_thread(corpus, tmp_path):
    """The app builds the demo set (and so trains) in a background thread, where Python forbids signal handlers."""
    import threading

    from slt.train.trainer import Trainer

    cfg = base_config(corpus, tmp_path / "threaded", epochs=1)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(Trainer(cfg).fit()))
    thread.start()
    thread.join(timeout=300)
    assert outcome.get("state") == "finished", outcome
