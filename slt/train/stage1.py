"""Stage 1 of the two-stage recipe: SignHiera's last blocks and the SONAR encoder trained end to end from video.

clips of a batch of videos (crop cache, uint8) -> normalised on the device -> SignHiera (frozen prefix without
autograd, last blocks trained, optional gradient checkpointing) -> per-clip features [C, T', D] -> each video's
clips joined as inference joins them -> padded [B, N, D] -> SONAR encoder -> embeddings [B, E] -> the frozen
SONAR text decoder's teacher-forced loss over every target token (as sonar-finetune).

This module is the model and its loss; the recipe `signhiera-finetune` (slt.train.recipes.signhiera_finetune)
runs it in the trainer on crop-cache batches (resume, 2-process gloo DDP and bfloat16 autocast on a CPU tested;
the CUDA float16/bfloat16 tests skip without a GPU); slt.train.chain chains it with extract-features and
sonar-finetune; bench/bench_stage1_memory.py measures its peak memory with and without gradient checkpointing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from slt.data.crop_cache import ClipBatch
from slt.models import SignHiera
from slt.video import join_clip_features


class SignHieraSonar(nn.Module):
    """SignHiera + SONAR encoder; ``first_trainable`` and ``gradient_checkpointing`` go to SignHiera."""

    def __init__(self, signhiera: SignHiera, encoder: nn.Module, first_trainable: int,
                 gradient_checkpointing: bool = False, train_encoder: bool = True, mean: float = 0.45,
                 std: float = 0.225):
        super().__init__()
        self.signhiera, self.encoder, self.mean, self.std = signhiera, encoder, mean, std
        signhiera.train_last_blocks(first_trainable, gradient_checkpointing)
        encoder.requires_grad_(train_encoder)

    def features(self, batch: ClipBatch) -> tuple[Tensor, Tensor]:
        """Padded SignHiera features [B, N, D] of each video and the padding mask [B, N] (True = padding)."""
        clips = batch.normalised(self.mean, self.std)  # [C, 3, T, S, S]
        per_clip = self.signhiera.extract_features(clips, batch.paddings)  # [C, T', D]
        videos, first = [], 0
        for count in batch.clips_per_video:
            videos.append(join_clip_features(per_clip[first:first + count], batch.paddings[first:first + count]))
            first += count
        longest = max(len(v) for v in videos)
        features = per_clip.new_zeros(len(videos), longest, per_clip.shape[-1])
        mask = torch.ones(len(videos), longest, dtype=torch.bool, device=per_clip.device)
        for i, video in enumerate(videos):
            features[i, :len(video)] = video
            mask[i, :len(video)] = False
        return features, mask

    def forward(self, batch: ClipBatch) -> Tensor:
        features, mask = self.features(batch)
        return self.encoder.encode(features, mask)


def stage1_loss(model: SignHieraSonar, decoder, batch: ClipBatch, lang: str = "eng_Latn",
                label_smoothing: float = 0.0) -> tuple[Tensor, int]:
    """Mean cross-entropy over every target token of the batch (frozen decoder), and that token count."""
    total, tokens = decoder.teacher_forced_loss(model(batch).float(), batch.texts, lang,
                                                label_smoothing=label_smoothing)
    return total / max(tokens, 1), tokens
