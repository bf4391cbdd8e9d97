"""slt.models: full-size layouts against the released key manifests (on the meta device), tiny models through the
same classes for behaviour, and strict checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import T5Model

from slt.errors import CheckpointError, ModelInputError
from slt.models import (
    SignHiera,
    SignHieraConfig,
    SonarSignEncoder,
    SonarSignEncoderConfig,
    load_signhiera,
    load_sonar_sign_encoder,
    save_model_checkpoint,
)
from slt.models.signhiera import _max_pool_unrolled, _unroll

# Key/shape manifests of the released checkpoints (see the README there).
CONFORMANCE = Path(__file__).resolve().parent / "data" / "released_layouts"
SMALL_HIERA = SignHieraConfig.tiny(num_frames=8, image_size=64)  # tokens 4x16x16, 2x2 mask units per frame
SMALL_SONAR = SonarSignEncoderConfig.tiny(input_dim=SMALL_HIERA.feature_dim)


def _manifest(name: str) -> dict:
    return json.loads((CONFORMANCE / name).read_text())


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def hiera() -> SignHiera:
    torch.manual_seed(0)
    return SignHiera(SMALL_HIERA).eval()


@pytest.fixture(scope="module")
def sonar() -> SonarSignEncoder:
    torch.manual_seed(1)
    model = SonarSignEncoder(SMALL_SONAR).eval()
    with torch.no_grad():  # a non-trivial scale, so tests see whether it is applied
        model.encoder.feature_projection.feature_proj_scale.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def full_hiera() -> SignHiera:
    with torch.device("meta"):  # layout and shapes only; no memory, no compute
        return SignHiera(SignHieraConfig())


@pytest.fixture(scope="module")
def full_sonar() -> SonarSignEncoder:
    with torch.device("meta"):
        return SonarSignEncoder(SonarSignEncoderConfig())


def _clips(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, *SMALL_HIERA.input_size, generator=torch.Generator().manual_seed(seed))


def _features(b: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, SMALL_SONAR.input_dim, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- full size, on the meta device

def test_full_size_signhiera_matches_released_layout(full_hiera):
    ref = _manifest("signhiera_keys.json")
    model = full_hiera
    got = _shapes(model)
    assert {k: got[k] for k in ref["keys"]} == ref["keys"]  # every required key, exact shapes
    extra = set(got) - set(ref["keys"])
    assert extra and all(got[k] == ref["optional_keys"][k] for k in extra)  # the rest is the unused final norm
    assert sum(p.numel() for p in model.parameters()) == 50_790_336
    assert sum(torch.Size(s).numel() for s in ref["keys"].values()) == ref["num_params"]


def test_full_size_sonar_encoder_matches_released_layout(full_sonar):
    ref = _manifest("sonar_encoder_keys.json")
    model = full_sonar
    assert _shapes(model) == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params_unique"] == 752_088_064
    for alias in ref["tied_keys"]["shared.weight"]:
        assert model.get_parameter(alias) is model.shared.weight
    ffn = model.encoder.block[0].layer[1].DenseReluDense
    assert type(ffn).__name__ == "T5DenseGatedActDense" and type(ffn.act).__name__ == "NewGELUActivation"
    attn = model.decoder.block[0].layer[0].SelfAttention
    assert (attn.relative_attention_num_buckets, attn.relative_attention_max_distance) == (32, 128)


def test_full_size_signhiera_pools_56_28_14_7_on_meta(full_hiera):
    model = full_hiera
    tokens, windowed = [], []

    def record(mod, args, out) -> None:
        tokens.append(out.shape[1])
        windowed.append(mod.attn.windowed)

    handles = [block.register_forward_hook(record) for block in model.blocks]
    out = model.extract_features(torch.empty(1, 3, 128, 224, 224, device="meta"))
    for handle in handles:
        handle.remove()
    assert tuple(out.shape) == (1, 64, 768)
    per_stage = [64 * s * s for s in (56, 28, 14, 7)]
    assert tokens == [per_stage[0]] * 2 + [per_stage[1]] * 3 + [per_stage[2]] * 16 + [per_stage[3]] * 3
    # Mask-unit attention in stages 1-2 (lagging one block into stage 3), global afterwards.
    assert windowed == [True] * 6 + [False] * 18
    assert SignHieraConfig().stage_token_shapes == [(64, 56, 56), (64, 28, 28), (64, 14, 14), (64, 7, 7)]


def test_full_size_sonar_encoder_runs_on_meta(full_sonar):
    out = full_sonar.encode(torch.empty(2, 108, 768, device="meta"),
                            torch.zeros(2, 108, dtype=torch.bool, device="meta"))
    assert tuple(out.shape) == (2, 1024)


# ---------------------------------------------------------------- SignHiera behaviour (tiny)

def test_tiny_signhiera_shapes_and_config():
    default_tiny = SignHieraConfig.tiny()
    assert default_tiny.input_size == (16, 224, 224) and default_tiny.feature_dim == 128
    assert SMALL_HIERA.num_feature_steps == 4
    model = SignHiera(SMALL_HIERA)
    assert sum(p.numel() for p in model.parameters()) < 300_000
    out = model(_clips(3))
    assert tuple(out.shape) == (3, 4, SMALL_HIERA.feature_dim) and torch.isfinite(out).all()


def test_unroll_then_pool_is_a_3d_max_pool():
    grid, stride = (2, 8, 8), (1, 2, 2)
    x = torch.randn(2, 16, *grid)  # [B, C, T, H, W]
    tokens = x.flatten(2).transpose(1, 2)
    unrolled = _unroll(tokens, grid, stride, levels=3)
    pooled = _max_pool_unrolled(unrolled, 4)
    expected = F.max_pool3d(x, stride, stride)  # 2x4x4 grid, still unrolled twice more
    assert torch.equal(pooled, _unroll(expected.flatten(2).transpose(1, 2), (2, 4, 4), stride, levels=2))
    fully = _max_pool_unrolled(_max_pool_unrolled(pooled, 4), 4)
    assert torch.equal(fully, F.max_pool3d(x, (1, 8, 8)).flatten(2).transpose(1, 2))


def _changed_raster_tokens(cfg: SignHieraConfig, clips: torch.Tensor, perturbed: torch.Tensor) -> set[tuple]:
    """(t, h, w) token positions whose first-block output changes when the clips are perturbed."""
    model = SignHiera(cfg).eval()
    outputs = []
    model.blocks[0].register_forward_hook(lambda mod, args, out: outputs.append(out))
    with torch.no_grad():
        model(clips)
        model(perturbed)
    t, h, w = cfg.token_shape
    raster = _unroll(torch.arange(t * h * w, dtype=torch.float64).view(1, -1, 1), cfg.token_shape, cfg.q_stride,
                     cfg.q_pool).flatten().long()
    changed = (outputs[0] - outputs[1]).abs().amax(-1)[0] > 1e-6
    return {(int(i) // (h * w), int(i) % (h * w) // w, int(i) % w) for i in raster[changed]}


def test_first_stage_attention_stays_inside_mask_units():
    clips = _clips(1)
    perturbed = clips.clone()
    perturbed[:, :, 0, :24, :24] += 3.0  # frame 0, pixels seen only by tokens t=0, h,w <= 6
    torch.manual_seed(0)
    changed = _changed_raster_tokens(SMALL_HIERA, clips, perturbed)
    # The whole first 8x8 mask unit of temporal step 0 changes, and nothing outside it.
    assert changed == {(0, h, w) for h in range(8) for w in range(8)}
    torch.manual_seed(0)
    global_cfg = SignHieraConfig(**{**SMALL_HIERA.__dict__, "mask_unit_attn": (False,) * 4})
    assert len(_changed_raster_tokens(global_cfg, clips, perturbed)) == 4 * 16 * 16  # global attention mixes all


def test_features_follow_time(hiera):
    clips = _clips(1)
    later = clips.clone()
    later[:, :, 6:] = 0.0  # changes the input of the last temporal step
    with torch.no_grad():
        a, b = hiera(clips), hiera(later)
    assert not torch.allclose(a[:, -1], b[:, -1])
    batch = torch.cat([clips, later])
    with torch.no_grad():
        assert torch.allclose(hiera(batch), torch.cat([a, b]), atol=1e-5)  # batching changes nothing


def test_padding_is_hidden_from_global_attention(hiera):
    """Padded steps are zeroed and masked out of global attention: kept steps cannot see them."""
    clips = _clips(2)
    padded_frames = [4, 0]  # clip 0: frames 4..7 repeat the last real frame -> temporal steps 2, 3 are padding
    seen = {}

    def add_noise_to_padding(block, args):
        x, key_mask = args
        seen.setdefault("mask", key_mask)  # first call (with padding) records which tokens are padding
        noise = 10 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        return x + noise * (~seen["mask"])[..., None], key_mask

    global_block = next(b for b in hiera.blocks if not b.attn.windowed)
    with torch.no_grad():
        masked = hiera(clips, padding=padded_frames)
        plain = hiera(clips)
        handle = global_block.register_forward_pre_hook(add_noise_to_padding)
        try:
            masked_noisy = hiera(clips, padding=padded_frames)
            plain_noisy = hiera(clips)
        finally:
            handle.remove()
    assert seen["mask"][0].sum() == seen["mask"][0].numel() // 2 and seen["mask"][1].all()
    assert torch.allclose(masked_noisy[:, :2], masked[:, :2], atol=1e-6)
    assert torch.allclose(masked_noisy[1], masked[1], atol=1e-6)
    assert not torch.allclose(plain_noisy[0, :2], plain[0, :2], atol=1e-4)  # unmasked, the noise leaks in
    assert torch.allclose(masked[1], plain[1], atol=1e-6)  # a clip without padding is unaffected by its neighbour's
    with torch.no_grad():
        video = hiera.extract_video_features(clips, padding=[4, 2])
    assert tuple(video.shape) == (2 + 3, SMALL_HIERA.feature_dim)
    assert torch.equal(video[:2], masked[0, :2])
    with pytest.raises(ModelInputError, match="padding must be in"):
        hiera(clips, padding=[8, 0])
    with pytest.raises(ModelInputError, match="one integer per clip"):
        hiera(clips, padding=[1])


def test_signhiera_rejects_bad_clips(hiera):
    with pytest.raises(ModelInputError, match=r"\[B, 3, 8, 64, 64\].*\(1, 3, 8, 32, 32\)"):
        hiera(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(ModelInputError, match="float"):
        hiera(torch.zeros(1, 3, 8, 64, 64, dtype=torch.uint8))
    with pytest.raises(ModelInputError, match="mask_unit_size"):
        SignHieraConfig.tiny(image_size=48)
    with pytest.raises(ModelInputError, match="Unknown SignHieraConfig fields"):
        SignHieraConfig.from_dict({"embed_dim": 8, "colour": "blue"})


# ---------------------------------------------------------------- SONAR encoder behaviour (tiny)

def test_sonar_pooling_is_one_t5_decoder_step_then_projection(sonar):
    features = _features(2, 6)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    reference = T5Model(SMALL_SONAR.t5_config(decoder=False)).eval()  # transformers' own encoder-decoder wiring
    t5_state = {k: v for k, v in sonar.state_dict().items() if k.split(".")[0] in ("shared", "encoder", "decoder")
                and "feature_projection" not in k}
    reference.load_state_dict(t5_state, strict=True)
    proj = sonar.encoder.feature_projection
    with torch.no_grad():
        embeds = features @ proj.feature_proj.weight.T + proj.feature_proj.bias
        out = reference(inputs_embeds=embeds * proj.feature_proj_scale, attention_mask=(~padding).long(),
                        decoder_input_ids=torch.zeros(2, 1, dtype=torch.long)).last_hidden_state
        expected = out[:, 0] @ sonar.projection_out.weight.T
        got = sonar.encode(features, padding)
    assert tuple(got.shape) == (2, SMALL_SONAR.output_dim)
    assert torch.allclose(got, expected, atol=1e-5)


def test_padded_steps_do_not_change_the_embedding(sonar):
    features = _features(1, 5)
    padded = torch.cat([features, 50 * _features(1, 4, seed=3)], dim=1)
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[:, 5:] = True
    with torch.no_grad():
        plain = sonar.encode(features)
        masked = sonar.encode(padded, mask)
        unmasked = sonar.encode(padded)
    assert torch.allclose(plain, masked, atol=1e-5)
    assert not torch.allclose(plain, unmasked, atol=1e-3)  # without the mask the junk does change it


def test_feature_projection_scale_is_applied(sonar):
    zero_scale = SonarSignEncoder(SMALL_SONAR).eval()
    zero_scale.load_state_dict(sonar.state_dict())
    with torch.no_grad():
        zero_scale.encoder.feature_projection.feature_proj_scale.zero_()
        a, b = zero_scale(_features(1, 5, seed=1)), zero_scale(_features(1, 5, seed=2))
        assert torch.allclose(a, b, atol=1e-6)  # features are multiplied away
        assert not torch.allclose(sonar(_features(1, 5, seed=1)), sonar(_features(1, 5, seed=2)))


def test_forward_equals_encode_and_trains(sonar):
    model = SonarSignEncoder(SMALL_SONAR)
    model.load_state_dict(sonar.state_dict())
    features = _features(2, 4)
    with torch.no_grad():
        assert torch.equal(model(features), model.encode(features))
    model.train()
    model(features).pow(2).sum().backward()
    assert model.encoder.feature_projection.feature_proj.weight.grad.abs().sum() > 0
    assert model.encoder.feature_projection.feature_proj_scale.grad.abs().sum() > 0


def test_sonar_rejects_bad_inputs(sonar):
    with pytest.raises(ModelInputError, match=r"\[B, N, 128\]"):
        sonar.encode(torch.zeros(2, 4, 7))
    with pytest.raises(ModelInputError, match="bool"):
        sonar.encode(_features(2, 4), torch.zeros(2, 4))
    with pytest.raises(ModelInputError, match=r"shape \(2, 4\)"):
        sonar.encode(_features(2, 4), torch.zeros(2, 5, dtype=torch.bool))
    all_pad = torch.zeros(2, 4, dtype=torch.bool)
    all_pad[1] = True
    with pytest.raises(ModelInputError, match=r"rows \[1\]"):
        sonar.encode(_features(2, 4), all_pad)
    with pytest.raises(ModelInputError, match="empty"):
        sonar.encode(torch.zeros(1, 0, 128))


# ---------------------------------------------------------------- checkpoints

def test_round_trip_keeps_outputs_config_and_extras(tmp_path, hiera, sonar):
    save_model_checkpoint(hiera, tmp_path / "h.pt", epoch=3)
    save_model_checkpoint(sonar, tmp_path / "e.pt")
    stored = torch.load(tmp_path / "h.pt", weights_only=True)
    assert stored["kind"] == "signhiera" and stored["epoch"] == 3
    assert SignHieraConfig.from_dict(stored["config"]) == SMALL_HIERA
    h2, e2 = load_signhiera(tmp_path / "h.pt"), load_sonar_sign_encoder(tmp_path / "e.pt")
    assert h2.config == SMALL_HIERA and e2.config == SMALL_SONAR and not h2.training and not e2.training
    clips, features = _clips(1), _features(2, 5)
    with torch.no_grad():
        assert torch.equal(h2(clips), hiera(clips))
        assert torch.equal(e2(features), sonar(features))
    assert e2.encoder.embed_tokens.weight is e2.shared.weight is e2.decoder.embed_tokens.weight
    with pytest.raises(ValueError, match="reserved"):
        save_model_checkpoint(hiera, tmp_path / "x.pt", config={})
    save_model_checkpoint(torch.nn.DataParallel(hiera), tmp_path / "wrapped.pt")  # saved without "module."
    assert load_signhiera(tmp_path / "wrapped.pt").config == SMALL_HIERA


def test_loaders_convert_dtype(tmp_path, hiera):
    torch.save({"model": {k: v.half() for k, v in hiera.state_dict().items()}}, tmp_path / "half.pt")
    assert load_signhiera(tmp_path / "half.pt", config=SMALL_HIERA).patch_embed.proj.weight.dtype == torch.float32
    model = load_signhiera(tmp_path / "half.pt", config=SMALL_HIERA, dtype=torch.float64)
    assert model(_clips(1).double()).dtype == torch.float64


def test_half_precision_runs_on_cpu(tmp_path, hiera, sonar):
    """float32 inputs into float16 models on CPU (a crash in the reference code) just work and stay close."""
    save_model_checkpoint(hiera, tmp_path / "h.pt")
    save_model_checkpoint(sonar, tmp_path / "e.pt")
    h16 = load_signhiera(tmp_path / "h.pt", dtype=torch.float16)
    e16 = load_sonar_sign_encoder(tmp_path / "e.pt", dtype=torch.float16)
    clips, features = _clips(1), _features(1, 5)
    with torch.no_grad():
        out = h16(clips, padding=[2])
        emb = e16(features)
        assert out.dtype == emb.dtype == torch.float16
        assert torch.allclose(out.float(), hiera(clips, padding=[2]), atol=5e-2)
        assert torch.allclose(emb.float(), sonar(features), atol=5e-2)


def test_released_signhiera_layout_loads_with_leftovers(tmp_path, hiera):
    state = hiera.state_dict()
    del state["norm.weight"], state["norm.bias"]  # optional: an MAE checkpoint has no final norm
    state["head.projection.weight"] = torch.zeros(400, SMALL_HIERA.feature_dim)
    state["mask_token"] = torch.zeros(1, 1, 512)
    state["decoder_blocks.0.attn.qkv.weight"] = torch.zeros(1536, 512)
    state["multi_scale_fusion_heads.0.weight"] = torch.zeros(8, 16, 1, 8, 8)
    for key in ("model", "model_state"):
        torch.save({key: state}, tmp_path / f"{key}.pt")
        loaded = load_signhiera(tmp_path / f"{key}.pt", config=SMALL_HIERA)
        with torch.no_grad():
            assert torch.equal(loaded(_clips(1)), hiera(_clips(1)))
        assert torch.equal(loaded.norm.weight, torch.ones(SMALL_HIERA.feature_dim))


def test_released_sonar_layout_loads_with_legacy_names(tmp_path, sonar):
    state = sonar.state_dict()
    torch.save({"student": state}, tmp_path / "student.pt")
    legacy = {k.replace("feature_projection.feature_proj", "feature_proj"): v for k, v in state.items()}
    assert "encoder.feature_proj_scale" in legacy
    torch.save({"model": legacy}, tmp_path / "legacy.pt")
    features = _features(2, 3)
    for name in ("student.pt", "legacy.pt"):
        loaded = load_sonar_sign_encoder(tmp_path / name, config=SMALL_SONAR)
        with torch.no_grad():
            assert torch.equal(loaded(features), sonar(features))
    untied = dict(state)
    untied["decoder.embed_tokens.weight"] = state["shared.weight"] + 1
    torch.save({"student": untied}, tmp_path / "untied.pt")
    with pytest.raises(CheckpointError, match="decoder.embed_tokens.weight.*tied"):
        load_sonar_sign_encoder(tmp_path / "untied.pt", config=SMALL_SONAR)


def test_strict_loading_names_the_problem_keys(tmp_path, hiera, sonar):
    def fails(obj, loader=load_signhiera, config=SMALL_HIERA) -> str:
        path = tmp_path / "bad.pt"
        torch.save(obj, path)
        with pytest.raises(CheckpointError) as info:
            loader(path, config=config)
        assert str(path) in str(info.value)
        return str(info.value)

    state = hiera.state_dict()
    missing = {k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.weight"}
    assert "1 missing keys: blocks.1.mlp.fc2.weight" in fails({"model": missing})
    assert "1 unexpected keys: blocks.9.attn.qkv.weight" in fails({"model": {**state, "blocks.9.attn.qkv.weight":
                                                                               torch.zeros(3)}})
    wrong = {**state, "pos_embed_temporal": torch.zeros(1, 8, 16)}
    assert "pos_embed_temporal file [1, 8, 16] vs model [1, 4, 16]" in fails({"model": wrong})
    ints = {**state, "norm.bias": torch.zeros(SMALL_HIERA.feature_dim, dtype=torch.long)}
    assert "1 non-float tensors: norm.bias (torch.int64)" in fails({"model": ints})
    assert "top-level keys are ['state_dict']" in fails({"state_dict": state})
    assert "bare state dict; save it as {'model': state_dict}" in fails(state)
    assert "not a state dict of tensors" in fails({"model": {"a": 1}})
    assert "holds a 'sonar_sign_encoder' checkpoint" in fails({"model": state, "kind": "sonar_sign_encoder"})
    sonar_missing = {k: v for k, v in sonar.state_dict().items() if not k.startswith("projection_out")}
    assert "projection_out.weight" in fails({"student": sonar_missing}, load_sonar_sign_encoder, SMALL_SONAR)
    # A tiny file without a config is checked against the full-size layout, and the message says so.
    message = fails({"model": state}, config=None)
    assert "missing keys" in message and "shape mismatches" in message and "pass config=" in message


def test_unreadable_files_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_signhiera(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_signhiera(tmp_path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(CheckpointError, match="Cannot read checkpoint .*garbage.pt"):
        load_sonar_sign_encoder(garbage)
    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        load_signhiera(truncated)
    bad_config = tmp_path / "bad_config.pt"
    torch.save({"model": {}, "config": {"embed_dim": 16, "wings": 2}, "kind": "signhiera"}, bad_config)
    with pytest.raises(CheckpointError, match="invalid stored config.*wings"):
        load_signhiera(bad_config)


def test_standardized_input_projection_equals_projecting_standardized_features():
    import torch

    from slt.models import SonarSignEncoder, SonarSignEncoderConfig

    torch.manual_seed(0)
    model = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=8, d_model=16, output_dim=16)).eval()
    features = torch.randn(2, 5, 8) * 0.03 + 0.1
    mean, std = features.flatten(0, 1).mean(0), features.flatten(0, 1).std(0)
    expected = model.encode((features - mean) / std)
    model.standardize_input_projection(mean, std)
    torch.testing.assert_close(model.encode(features), expected, atol=1e-5, rtol=1e-4)
