"""signhiera-finetune through the real Trainer: crop caches of real face videos, a tiny SignHiera and SONAR encoder,
the tiny pretrained text decoder. Only the chosen SignHiera blocks (and the encoder) change; the loss goes down; a
stopped run (with temporal jitter) resumes to the uninterrupted run's metrics and weights; 2 gloo processes train
as 1 does."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slt.errors import TrainingError
from slt.text import DecodingOptions
from slt.train.config import TrainConfig
from slt.train.trainer import Trainer
from tests.helpers.process import REPO_ROOT, child_env
from tests.helpers.stage1 import TINY_SIGNHIERA, write_stage1_inputs

SIGNHIERA = TINY_SIGNHIERA


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_text_model):
    return write_stage1_inputs(tmp_path_factory.mktemp("signhiera_finetune"), tiny_text_model, SIGNHIERA)


def config(corpus, tiny_text_model, run_dir, **changes) -> TrainConfig:
    values = dict(recipe="signhiera-finetune", train_features=str(corpus / "cache"),
                  val_features=str(corpus / "cache"), run_dir=str(run_dir),
                  signhiera_checkpoint=str(corpus / "signhiera.pt"),
                  base_encoder=str(corpus / "encoder.pt"), decoder=tiny_text_model.decoder_name,
                  tokenizer=tiny_text_model.tokenizer_name, target_lang=tiny_text_model.langs[0], epochs=3,
                  batch_size=2, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.0, log_every=1, device="cpu",
                  decoding=DecodingOptions(beam_size=1, max_len=12))
    values.update(changes)
    return TrainConfig(**values).validate()


def test_only_the_chosen_blocks_change_and_the_loss_goes_down(corpus, tiny_text_model, tmp_path) -> None:
    # 6 blocks, unfreeze the last 2 (by count); the default fraction 0.8 would train floor: 6 - 4 = 2 as well.
    summary = Trainer(config(corpus, tiny_text_model, tmp_path / "run", unfreeze_signhiera_layers=2)).fit()
    assert summary["state"] == "finished"
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train_loss"] for row in steps if "step" in row and "train_loss" in row]
    assert len(losses) >= 6 and sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    before = torch.load(corpus / "signhiera.pt", weights_only=True)
    after = torch.load(tmp_path / "run" / "signhiera.pt", weights_only=True)
    before, after = before.get("model", before), after.get("model", after)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and {k.split(".")[1] for k in changed if k.startswith("blocks.")} == {"4", "5"}
    assert all(k.startswith(("blocks.4.", "blocks.5.")) for k in changed), sorted(changed)
    enc_before = torch.load(corpus / "encoder.pt", weights_only=True)
    enc_after = torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)
    enc_before, enc_after = enc_before.get("model", enc_before), enc_after.get("model", enc_after)
    assert any(not torch.equal(enc_before[k], enc_after[k]) for k in enc_before)


def test_frozen_encoder_and_clear_errors(corpus, tiny_text_model, tmp_path) -> None:
    summary = Trainer(config(corpus, tiny_text_model, tmp_path / "frozen", epochs=1, freeze_encoder=True)).fit()
    assert summary["state"] == "finished"
    enc_before = torch.load(corpus / "encoder.pt", weights_only=True)
    enc_after = torch.load(tmp_path / "frozen" / "encoder.pt", weights_only=True)
    enc_before, enc_after = enc_before.get("model", enc_before), enc_after.get("model", enc_after)
    assert all(torch.equal(enc_before[k], enc_after[k]) for k in enc_before)
    with pytest.raises(TrainingError, match="needs `signhiera_checkpoint`"):
        Trainer(config(corpus, tiny_text_model, tmp_path / "a", signhiera_checkpoint=None)).fit()
    with pytest.raises(TrainingError, match="freezes all 6 SignHiera blocks"):
        Trainer(config(corpus, tiny_text_model, tmp_path / "b", signhiera_freeze_fraction=1.0)).fit()


def test_stopped_run_resumes_to_the_same_result_with_jitter(corpus, tiny_text_model, tmp_path) -> None:
    from slt.train.trainer import StopTraining

    def stop_after_first(epoch: int, scores: dict) -> None:
        if epoch == 1:
            raise StopTraining("stopped by the test after epoch 1")

    def weights(run_dir):
        return torch.load(run_dir / "signhiera.pt", weights_only=True)["model"]

    full_cfg = config(corpus, tiny_text_model, tmp_path / "full", epochs=2, temporal_jitter=2)
    full = Trainer(full_cfg).fit()
    cfg = config(corpus, tiny_text_model, tmp_path / "split", epochs=2, temporal_jitter=2)
    assert Trainer(cfg, on_evaluated=stop_after_first).fit()["state"] == "stopped"
    resumed = Trainer(cfg, resume=True).fit()
    assert resumed["state"] == "finished" and resumed["history"] == full["history"]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_ddp_matches_one_process(corpus, tiny_text_model, tmp_path) -> None:
    changes = dict(epochs=3, eval_every=3, asset_cards=str(tiny_text_model.paths["cards"]))
    Trainer(config(corpus, tiny_text_model, tmp_path / "one", batch_size=4, **changes)).fit()
    config(corpus, tiny_text_model, tmp_path / "two", batch_size=2, **changes).save(tmp_path / "two.json")
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "slt", "train",
                             "--config", str(tmp_path / "two.json")], cwd=REPO_ROOT, env=child_env(OMP_NUM_THREADS="1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [row["train_loss"] for row in map(json.loads, lines) if "val_loss" not in row and "step" in row]

    assert len(losses("one")) >= 3 and losses("two") == pytest.approx(losses("one"), rel=1e-4, abs=1e-5)
    one = torch.load(tmp_path / "one" / "signhiera.pt", weights_only=True)["model"]
    two = torch.load(tmp_path / "two" / "signhiera.pt", weights_only=True)["model"]
    start = torch.load(corpus / "signhiera.pt", weights_only=True)["model"]
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    apart = max(float((one[k] - two[k]).abs().max()) for k in one)
    # Adam turns float noise in near-zero gradients into steps of up to lr: compare with how far training moved.
    assert moved > 5e-3 and apart < 0.1 * moved, (moved, apart)


def test_amp_settings_per_device() -> None:
    from slt.train.trainer import amp_settings

    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert amp_settings(TrainConfig(), cpu) == (False, torch.float16)  # the default: float32 on a CPU
    assert amp_settings(TrainConfig(), cuda) == (True, torch.float16)
    assert amp_settings(TrainConfig(amp_dtype="bfloat16"), cpu) == (True, torch.bfloat16)
    assert amp_settings(TrainConfig(amp_dtype="bfloat16"), cuda) == (True, torch.bfloat16)
    assert amp_settings(TrainConfig(amp=False, amp_dtype="bfloat16"), cuda)[0] is False
    assert amp_settings(TrainConfig(amp_dtype="bfloat16"), mps)[0] is False
    with pytest.raises(TrainingError, match=r"amp_dtype must be one of \('float16', 'bfloat16'\), got 'fp8'"):
        TrainConfig(amp_dtype="fp8").validate()


def _step_losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["train_loss"] for row in rows if "val_loss" not in row and "step" in row]


def test_stage1_under_bfloat16_autocast_on_cpu(corpus, tiny_text_model, tmp_path) -> None:
    """The AMP code path as far as a CPU runs it: bfloat16 autocast through SignHiera (checkpointed blocks
    recomputed under the same autocast), the encoder and the decoder loss; no GradScaler for bfloat16."""
    plain = Trainer(config(corpus, tiny_text_model, tmp_path / "fp32", epochs=1))
    assert not plain.use_amp
    plain.fit()
    trainer = Trainer(config(corpus, tiny_text_model, tmp_path / "bf16", epochs=1, amp_dtype="bfloat16"))
    assert trainer.use_amp and trainer.amp_dtype == torch.bfloat16
    assert trainer.fit()["state"] == "finished" and not trainer.scaler.is_enabled()
    fp32, bf16 = _step_losses(tmp_path / "fp32"), _step_losses(tmp_path / "bf16")
    assert len(bf16) == len(fp32) >= 2 and all(math.isfinite(x) for x in bf16)
    assert bf16[0] != fp32[0] and bf16[0] == pytest.approx(fp32[0], rel=0.05)  # bfloat16 rounding, same model
    assert (tmp_path / "bf16" / "signhiera.pt").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the tests hide GPUs unless "
                    "CUDA_VISIBLE_DEVICES is set)")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_stage1_amp_on_cuda(corpus, tiny_text_model, tmp_path, dtype) -> None:
    reference = Trainer(config(corpus, tiny_text_model, tmp_path / "fp32", epochs=1, device="cuda", amp=False))
    reference.fit()
    trainer = Trainer(config(corpus, tiny_text_model, tmp_path / dtype, epochs=1, device="cuda", amp_dtype=dtype))
    assert trainer.fit()["state"] == "finished"
    assert trainer.use_amp and trainer.scaler.is_enabled() == (dtype == "float16")
    losses, fp32 = _step_losses(tmp_path / dtype), _step_losses(tmp_path / "fp32")
    assert all(math.isfinite(x) for x in losses) and losses[0] == pytest.approx(fp32[0], rel=0.05)
