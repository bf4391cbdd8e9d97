"""t5-bridge and scratch recipes on tiny real models: they learn, freeze, unfreeze, export and fail clearly."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from transformers import T5ForConditionalGeneration

from slt.data.features import FeaturesDataset, collate_features
from slt.errors import ModelUnavailableError, TrainingError
from slt.models import SonarSignEncoder, SonarSignEncoderConfig, load_sonar_sign_encoder, save_model_checkpoint
from slt.train.config import TrainConfig
from slt.train.recipes import get_recipe
from slt.train.recipes.scratch import load_scratch_translator
from slt.train.recipes.t5_bridge import load_t5_bridge, t5_tiny_config
from slt.train.recipes.target_spm import train_target_spm
from tests.helpers.features import SENTENCES, write_features

CPU = torch.device("cpu")


@pytest.fixture()
def corpus(tmp_path) -> dict[str, Path]:
    """Tiny features (16-d) + a tiny SONAR encoder checkpoint (32-d embeddings) saved with the real saver."""
    manifest = write_features(tmp_path / "features", SENTENCES)
    torch.manual_seed(0)
    encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=16, d_model=32, output_dim=32))
    encoder_path = save_model_checkpoint(encoder, tmp_path / "base_encoder.pt")
    return {"manifest": manifest, "encoder": Path(encoder_path), "root": tmp_path}


def make_cfg(corpus: dict[str, Path], recipe: str, **overrides) -> TrainConfig:
    cfg = TrainConfig(recipe=recipe, train_features=str(corpus["manifest"]), val_features=str(corpus["manifest"]),
                      run_dir=str(corpus["root"] / f"run_{recipe}"), base_encoder=str(corpus["encoder"]),
                      t5_model="tiny", lr=3e-3, label_smoothing=0.0, bridge_queries=4, warmup_epochs=0,
                      scratch_d_model=64, scratch_heads=4, scratch_ff=128, scratch_layers=2, batch_size=6,
                      device="cpu")
    cfg.decoding = dataclasses.replace(cfg.decoding, beam_size=2, max_len=16)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg.validate()


def full_batch(manifest: Path):
    dataset = FeaturesDataset(manifest)
    return collate_features([dataset[i] for i in range(len(dataset))])


def train_steps(recipe, model, cfg, batch, steps: int, epoch: int = 1) -> list[float]:
    """Plain AdamW steps over the recipe's own param groups (the trainer's optimiser set-up)."""
    recipe.on_epoch_start(model, epoch, cfg)
    optimizer = torch.optim.AdamW(recipe.param_groups(model, cfg))
    losses = []
    model.train()
    for _ in range(steps):
        loss, n_tokens = recipe.loss(model, batch, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------ t5-bridge
def test_t5_bridge_learns_the_tiny_set_and_outputs_differ_per_input(corpus):
    cfg = make_cfg(corpus, "t5-bridge")
    recipe = get_recipe("t5-bridge")
    torch.manual_seed(0)
    model = recipe.build(cfg, CPU)
    batch = full_batch(corpus["manifest"])

    # The bridge output depends on the input (the cure for mode collapse must start here).
    states = model.bridge_states(batch.features, batch.padding_mask).detach()
    assert states.shape == (len(SENTENCES), 4, model.t5.config.d_model)
    distances = torch.cdist(states.flatten(1), states.flatten(1))
    assert distances[~torch.eye(len(SENTENCES), dtype=torch.bool)].min() > 1e-3

    losses = train_steps(recipe, model, cfg, batch, steps=120)
    assert losses[-1] < 0.2 * losses[0], losses[::20]
    predictions = recipe.predict(model, batch, cfg)
    assert len(set(predictions)) == len(SENTENCES), predictions  # no collapse onto one sentence
    assert sum(p == t for p, t in zip(predictions, batch.texts)) >= 4, predictions


def test_t5_bridge_frozen_encoder_stays_out_of_the_optimizer_and_unchanged(corpus):
    cfg = make_cfg(corpus, "t5-bridge", freeze_encoder=True)
    recipe = get_recipe("t5-bridge")
    model = recipe.build(cfg, CPU)
    optimised = {id(p) for g in recipe.param_groups(model, cfg) for p in g["params"]}
    assert not any(id(p) in optimised for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    before_encoder = encoder_state(model)
    before_bridge = model.bridge.project.weight.detach().clone()
    train_steps(recipe, model, cfg, full_batch(corpus["manifest"]), steps=3)
    assert same_state(before_encoder, encoder_state(model))
    assert not torch.equal(before_bridge, model.bridge.project.weight)


def test_t5_bridge_differential_learning_rates_and_no_decay_on_biases(corpus):
    recipe = get_recipe("t5-bridge")
    cfg = make_cfg(corpus, "t5-bridge", lr=1e-3)
    model = recipe.build(cfg, CPU)
    encoder_ids = {id(p) for p in model.encoder.parameters()}

    def lrs(groups):
        enc = {g["lr"] for g in groups if any(id(p) in encoder_ids for p in g["params"])}
        rest = {g["lr"] for g in groups if any(id(p) not in encoder_ids for p in g["params"])}
        return enc, rest

    groups = recipe.param_groups(model, cfg)
    assert lrs(groups) == ({1e-3 / 5}, {1e-3})  # default encoder lr = lr / 5
    for group in groups:
        assert (not any(id(p) in encoder_ids for p in group["params"])
                or all(id(p) in encoder_ids for p in group["params"]))
        assert all(p.ndim >= 2 for p in group["params"]) if group["weight_decay"] > 0 else \
            all(p.ndim < 2 for p in group["params"])
    cfg.encoder_lr = 5e-5
    assert lrs(recipe.param_groups(model, cfg)) == ({5e-5}, {1e-3})


def test_t5_bridge_unfreezes_the_encoder_at_the_right_epoch(corpus):
    cfg = make_cfg(corpus, "t5-bridge", freeze_encoder=True, unfreeze_after=2)
    recipe = get_recipe("t5-bridge")
    model = recipe.build(cfg, CPU)
    batch = full_batch(corpus["manifest"])
    # With unfreeze_after the encoder is in the optimizer from the start (stable layout for resumes) ...
    optimizer = torch.optim.AdamW(recipe.param_groups(model, cfg))
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) in optimised for p in model.encoder.parameters())
    start = encoder_state(model)
    for epoch in (1, 2, 3):
        recipe.on_epoch_start(model, epoch, cfg)
        assert all(p.requires_grad == (epoch == 3) for p in model.encoder.parameters())
        loss, _ = recipe.loss(model, batch, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # ... but it only moves once unfrozen (epoch 3 = after 2 epochs).
        assert same_state(start, encoder_state(model)) == (epoch < 3)


def test_t5_bridge_through_the_trainer_exports_a_loadable_encoder_and_translator(corpus):
    from slt.train.trainer import Trainer

    cfg = make_cfg(corpus, "t5-bridge", epochs=3, freeze_encoder=True, unfreeze_after=2, eval_every=1)
    summary = Trainer(cfg).fit()
    run_dir = Path(cfg.run_dir)
    assert summary["state"] == "finished"
    assert "unfreezing the SONAR encoder" in (run_dir / "train.log").read_text()
    assert (run_dir / "predictions_epoch3.jsonl").is_file()
    exported = load_sonar_sign_encoder(run_dir / "encoder.pt")
    base = load_sonar_sign_encoder(corpus["encoder"])
    last = torch.load(run_dir / "last.pt", weights_only=False)["model"]
    last_encoder = {k[len("encoder."):]: v for k, v in last.items() if k.startswith("encoder.")}
    # Frozen for epochs 1-2, trained in epoch 3: the final encoder (last.pt) differs from the base.
    assert not same_state(base.state_dict(), last_encoder)

    translator = load_t5_bridge(run_dir / "t5_bridge.pt")
    batch = full_batch(corpus["manifest"])
    trained = get_recipe("t5-bridge")
    model = trained.build(cfg, CPU)
    # The export holds the best epoch's weights (best.pt); last.pt keeps the final epoch for --resume.
    best = torch.load(run_dir / "best.pt", weights_only=False)
    model.load_state_dict(best["model"])
    assert trained.predict(translator, batch, cfg) == trained.predict(model, batch, cfg)
    assert same_state(model.encoder.state_dict(), exported.state_dict())
    assert f"exported the best epoch ({summary['best_epoch']}" in (run_dir / "train.log").read_text()


def test_t5_small_pretrained_missing_is_a_clear_error_and_random_init_builds(corpus, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(corpus["root"] / "empty_hf_cache"))
    recipe = get_recipe("t5-bridge")
    with pytest.raises(ModelUnavailableError, match=r"google-t5/t5-small.*--t5-init random"):
        recipe.build(make_cfg(corpus, "t5-bridge", t5_model="t5-small"), CPU)
    model = recipe.build(make_cfg(corpus, "t5-bridge", t5_model="t5-small", t5_init="random"), CPU)
    config = model.t5.config
    assert (config.d_model, config.num_heads, len(model.t5.decoder.block)) == (512, 8, 6)
    assert len(model.t5.encoder.block) == 0  # the bridge replaces T5's encoder
    assert config.vocab_size == model.tokenizer.vocab_size  # its own SentencePiece vocabulary
    loss, n_tokens = recipe.loss(model, full_batch(corpus["manifest"]), make_cfg(corpus, "t5-bridge"))
    assert torch.isfinite(loss) and n_tokens > len(SENTENCES)


def test_t5_bridge_loads_pretrained_weights_from_a_local_folder(corpus):
    folder = corpus["root"] / "my_t5"
    spm_path = train_target_spm(SENTENCES, folder / "spiece.model", vocab_size=40)
    vocab = 48
    torch.manual_seed(3)
    pretrained = T5ForConditionalGeneration(t5_tiny_config(vocab))
    pretrained.save_pretrained(folder)
    assert spm_path.is_file()
    cfg = make_cfg(corpus, "t5-bridge", t5_model=str(folder), t5_init="pretrained")
    model = get_recipe("t5-bridge").build(cfg, CPU)
    for name in ("shared.weight", "decoder.block.1.layer.2.DenseReluDense.wo.weight"):
        assert torch.equal(model.t5.state_dict()[name], pretrained.state_dict()[name])
    assert (Path(cfg.run_dir) / "target_spm.model").read_bytes() == spm_path.read_bytes()


@pytest.mark.parametrize("overrides, message", [
    ({"t5_init": "imagenet"}, "t5_init must be one of"),
    ({"bridge_queries": 0}, "bridge_queries must be >= 1"),
    ({"t5_model": "t5-gigantic"}, "t5_model must be 't5-small', 'tiny' or a folder"),
    ({"t5_model": "t5-gigantic", "t5_init": "random"}, "folder with a T5 config.json"),
    ({"base_encoder": "/nonexistent/encoder.pt"}, "encoder.pt"),
])
def test_t5_bridge_bad_settings_fail_clearly(corpus, overrides, message):
    from slt.errors import SLTError

    with pytest.raises(SLTError, match=message):
        get_recipe("t5-bridge").build(make_cfg(corpus, "t5-bridge", **overrides), CPU)


def test_decoding_options_reach_generation(corpus):
    recipe = get_recipe("t5-bridge")
    cfg = make_cfg(corpus, "t5-bridge")
    torch.manual_seed(1)
    model = recipe.build(cfg, CPU)
    batch = full_batch(corpus["manifest"])
    cfg.decoding = dataclasses.replace(cfg.decoding, no_repeat_ngram_size=1, beam_size=1, max_len=12)
    states = model.bridge_states(batch.features, batch.padding_mask)
    from transformers.modeling_outputs import BaseModelOutput

    from slt.train.recipes.seq2seq import generate
    ids = generate(model.t5, cfg.decoding, 0, encoder_outputs=BaseModelOutput(last_hidden_state=states))
    for row in ids[:, 1:].tolist():  # after the start token: no token twice (eos/pad padding aside)
        tokens = [t for t in row if t > 1]
        assert len(tokens) == len(set(tokens)), row
    cfg.decoding = dataclasses.replace(cfg.decoding, sampling=True, temperature=1.5)
    assert recipe.predict(model, batch, cfg) == recipe.predict(model, batch, cfg)  # seeded sampling


# ------------------------------------------------------------------------------------------------ scratch
def test_scratch_trains_its_own_vocabulary_and_learns_the_tiny_set(corpus):
    cfg = make_cfg(corpus, "scratch")
    recipe = get_recipe("scratch")
    torch.manual_seed(0)
    model = recipe.build(cfg, CPU)
    spm_file = Path(cfg.run_dir) / "target_spm.model"
    assert spm_file.is_file()
    sp = model.tokenizer.sp
    for text in SENTENCES:  # learnt from the training texts: they round-trip without unknown pieces
        assert sp.unk_id() not in sp.encode(text) and sp.decode(sp.encode(text)) == text
    assert sp.unk_id() in sp.encode("QXZ")  # letters no training text has
    assert model.t5.config.vocab_size == model.tokenizer.vocab_size
    batch = full_batch(corpus["manifest"])
    losses = train_steps(recipe, model, cfg, batch, steps=100)
    assert losses[-1] < 0.2 * losses[0], losses[::20]
    predictions = recipe.predict(model, batch, cfg)
    assert len(set(predictions)) == len(SENTENCES), predictions
    assert sum(p == t for p, t in zip(predictions, batch.texts)) >= 4, predictions

    exported = recipe.export(model, Path(cfg.run_dir))
    reloaded = load_scratch_translator(exported["translator"])
    assert recipe.predict(reloaded, batch, cfg) == predictions
    # A rebuilt run (resume) reuses its vocabulary byte for byte.
    saved = spm_file.read_bytes()
    recipe.build(cfg, CPU)
    assert spm_file.read_bytes() == saved


def test_scratch_bad_settings_and_exports_fail_clearly(corpus):
    from slt.errors import CheckpointError

    with pytest.raises(TrainingError, match="divisible by scratch_heads"):
        get_recipe("scratch").build(make_cfg(corpus, "scratch", scratch_d_model=30, scratch_heads=4), CPU)
    not_export = corpus["root"] / "not_export.pt"
    shutil.copyfile(corpus["encoder"], not_export)
    with pytest.raises(CheckpointError, match="not a scratch translator export"):
        load_scratch_translator(not_export)
    with pytest.raises(CheckpointError, match="not a t5-bridge export"):
        load_t5_bridge(not_export)
    with pytest.raises(CheckpointError, match="not found"):
        load_scratch_translator(corpus["root"] / "missing.pt")


def test_every_recipe_name_is_listed_once_and_loads():
    """`slt.train.config.RECIPES` is the one list of names; each name loads its recipe class, others are refused."""
    from slt.train.config import RECIPES
    from slt.train.recipes import Recipe

    for name in RECIPES:
        recipe = get_recipe(name)
        assert isinstance(recipe, Recipe) and type(recipe).__name__.lower().startswith(name.replace("-", "")[:5])
    with pytest.raises(TrainingError, match="Unknown recipe 'nope'"):
        get_recipe("nope")


def test_t5_bridge_linear_bridge_trains_exports_and_reloads(corpus):
    from slt.train.recipes.t5_bridge import LinearBridge
    from slt.train.trainer import Trainer

    cfg = make_cfg(corpus, "t5-bridge", epochs=1, bridge="linear", run_dir=str(corpus["root"] / "run_linear"))
    Trainer(cfg).fit()
    translator = load_t5_bridge(Path(cfg.run_dir) / "t5_bridge.pt")
    assert isinstance(translator.bridge, LinearBridge)
    recipe = get_recipe("t5-bridge")
    model = recipe.build(cfg, CPU)
    model.load_state_dict(torch.load(Path(cfg.run_dir) / "best.pt", weights_only=False)["model"])
    batch = full_batch(corpus["manifest"])
    assert translator.bridge_states(batch.features, batch.padding_mask).shape[1] == 1  # one token per clip
    assert recipe.predict(translator, batch, cfg) == recipe.predict(model, batch, cfg)
    with pytest.raises(TrainingError, match=r"bridge must be one of \('attention', 'linear'\), got 'mlp'"):
        recipe.build(make_cfg(corpus, "t5-bridge", bridge="mlp"), CPU)
