"""The inputs every stage-1 (signhiera-finetune) test starts from: four real face videos with the tiny text model's
sentences, a manifest, optionally their crop cache, and a tiny SignHiera + SONAR encoder saved as checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from slt.data.crop_cache import build_crop_cache
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint
from slt.video import PreprocessConfig
from slt.video.config import fit_preprocess_to_model
from tests.helpers.video import make_face_video

# 6 blocks: enough for "freeze the first 80 %" to leave some trainable.
TINY_SIGNHIERA = SignHieraConfig.tiny(num_frames=16, image_size=32, stages=(1, 2, 2, 1))


def write_stage1_inputs(root: Path, tiny_text_model, signhiera: SignHieraConfig = TINY_SIGNHIERA,
                        crop_cache: bool = True) -> Path:
    """Write into `root`: v0..v3.mp4, manifest.tsv, cache/ (the crops, when `crop_cache`), signhiera.pt and
    encoder.pt (seeded: the same weights every time). Returns `root`."""
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    for seed, frames in enumerate((24, 40, 30, 20)):
        make_face_video(root / f"v{seed}.mp4", frames, size=160, seed=seed)
        lines.append(f"v{seed}\tv{seed}.mp4\t{frames}\t{tiny_text_model.sentences[seed]}")
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if crop_cache:
        preprocess = fit_preprocess_to_model(PreprocessConfig(detector="hog"), signhiera)
        build_crop_cache(root / "manifest.tsv", root / "cache", preprocess)
    torch.manual_seed(0)
    save_model_checkpoint(SignHiera(signhiera), root / "signhiera.pt")
    encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=signhiera.feature_dim, d_model=32,
                                                           output_dim=tiny_text_model.decoder.model_dim))
    save_model_checkpoint(encoder, root / "encoder.pt")
    return root
