"""Stage 1 from video: SignHiera's last blocks + SONAR encoder on crop-cache batches, through the frozen text
decoder: the features are those inference makes, the loss goes down, and only the chosen blocks change."""

from __future__ import annotations

import pytest
import torch

from slt.data.crop_cache import CropCache, CropClipsDataset, build_crop_cache, collate_clips
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig
from slt.train.stage1 import SignHieraSonar, stage1_loss
from slt.video import PreprocessConfig, preprocess_video
from slt.video.config import fit_preprocess_to_model
from tests.helpers.video import make_face_video

SIGNHIERA = SignHieraConfig.tiny(num_frames=16, image_size=32, stages=(1, 2, 2, 1))  # 6 blocks


@pytest.fixture(scope="module")
def batch_and_videos(tmp_path_factory, tiny_text_model):
    root = tmp_path_factory.mktemp("stage1")
    texts = tiny_text_model.sentences[:2]
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    for seed, frames in enumerate((24, 40)):
        make_face_video(root / f"v{seed}.mp4", frames, size=160, seed=seed)
        lines.append(f"v{seed}\tv{seed}.mp4\t{frames}\t{texts[seed]}")
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    preprocess = fit_preprocess_to_model(PreprocessConfig(detector="hog"), SIGNHIERA)
    build_crop_cache(root / "manifest.tsv", root / "cache", preprocess)
    dataset = CropClipsDataset(CropCache(root / "cache", preprocess))
    return collate_clips([dataset[0], dataset[1]]), [root / "v0.mp4", root / "v1.mp4"], preprocess


def _model(first_trainable: int, model_dim: int, checkpointing: bool = False) -> SignHieraSonar:
    torch.manual_seed(0)
    signhiera = SignHiera(SIGNHIERA)
    encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=SIGNHIERA.feature_dim, d_model=32,
                                                           output_dim=model_dim))
    return SignHieraSonar(signhiera, encoder, first_trainable, gradient_checkpointing=checkpointing)


def test_features_are_the_ones_inference_makes(batch_and_videos, tiny_text_model) -> None:
    batch, videos, preprocess = batch_and_videos
    model = _model(4, tiny_text_model.decoder.model_dim)
    with torch.no_grad():
        features, mask = model.features(batch)
        for i, path in enumerate(videos):
            video = preprocess_video(path, preprocess)
            expected = model.signhiera.extract_video_features(video.clips, video.paddings)
            n = int((~mask[i]).sum())
            assert n == len(expected) and bool(mask[i, n:].all())
            torch.testing.assert_close(features[i, :n], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_loss_goes_down_and_only_the_last_blocks_and_encoder_change(batch_and_videos, tiny_text_model,
                                                                    checkpointing: bool) -> None:
    batch, _, _ = batch_and_videos
    decoder = tiny_text_model.decoder
    model = _model(4, decoder.model_dim, checkpointing)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss, tokens = stage1_loss(model, decoder, batch, tiny_text_model.langs[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert tokens > 0 and losses[-1] < 0.8 * losses[0], losses
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    signhiera_changed = {name.split(".")[2] for name in changed if name.startswith("signhiera.")}
    assert signhiera_changed == {"4", "5"}  # blocks.4, blocks.5 of 6; patch/pos embeddings and blocks 0-3 frozen
    assert any(name.startswith("encoder.") for name in changed)
    assert all(name.startswith(("encoder.", "signhiera.blocks.4.", "signhiera.blocks.5.")) for name in changed)
