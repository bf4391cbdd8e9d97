"""signhiera-finetune: stage 1 of two-stage fine-tuning, SignHiera's last blocks trained end to end from video.

The data are crop caches (``python -m slt crop-cache``; ``train_features`` / ``val_features`` name their folders):
uint8 crops of the clips inference would cut, so epochs never decode video. Each batch goes through
:class:`slt.train.stage1.SignHieraSonar`: SignHiera (the first ``signhiera_freeze_fraction`` of its blocks, or all
but the last ``unfreeze_signhiera_layers``, frozen and run without autograd; the trained blocks recomputed in
backward with ``gradient_checkpointing``) -> each video's clip features joined as inference joins them -> the SONAR
encoder (frozen with ``freeze_encoder``) -> the frozen SONAR text decoder, whose teacher-forced loss over every
target token is sonar-finetune's. The trainer gives it the rest (AMP on CUDA, accumulation, DDP, resume, NaN
stop, SIGTERM save). A small lr suits the pretrained blocks (1e-5 at How2Sign scale).

Exports ``signhiera.pt`` (for extract-features, stage 2) and ``encoder.pt``, and ``system.json`` naming the two
(slt.modelset.write_system), so a stage-1 run alone is usable as a model-set entry.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from slt.data.crop_cache import ClipBatch, CropCache, CropClipsDataset, collate_clips
from slt.errors import TrainingError
from slt.models import load_signhiera, save_model_checkpoint
from slt.models.signhiera import first_trainable_block
from slt.modelset import write_system
from slt.train.config import TrainConfig, decoding_options
from slt.train.recipes.base import unwrap
from slt.train.recipes.sonar_finetune import SonarFinetuneRecipe
from slt.train.stage1 import SignHieraSonar, stage1_loss


class SignhieraFinetuneRecipe(SonarFinetuneRecipe):
    """sonar-finetune's decoder, loss and learning rates, with SignHiera in front and crop caches as data."""

    name = "signhiera-finetune"
    collate = staticmethod(collate_clips)

    def __init__(self) -> None:
        super().__init__()
        self.cache_preprocess = None  # the training cache's preprocessing: SignHiera must fit it

    def dataset(self, path: str | None, max_samples: int | None, cfg: TrainConfig, train: bool) -> Dataset:
        if not path:
            raise TrainingError("signhiera-finetune trains from crop caches: set train_features and val_features "
                                "to folders made by `python -m slt crop-cache`")
        cache = CropCache(path)
        if max_samples is not None:
            cache.rows = cache.rows[:max_samples]
        if train:
            self.cache_preprocess = cache.preprocess
        elif self.cache_preprocess is not None and cache.preprocess != self.cache_preprocess:
            raise TrainingError(f"crop caches {cfg.train_features} and {path} were made with different "
                                "preprocessing; build both with the same crop-cache options")
        return CropClipsDataset(cache, jitter=cfg.temporal_jitter if train else 0, seed=cfg.seed)

    def build(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        if not cfg.signhiera_checkpoint:
            raise TrainingError("signhiera-finetune needs `signhiera_checkpoint`: the SignHiera checkpoint to adapt")
        signhiera = load_signhiera(cfg.signhiera_checkpoint, device)
        pre = self.cache_preprocess
        if pre is not None and (pre.clip_frames, pre.size, pre.size) != tuple(signhiera.config.input_size):
            raise TrainingError(f"the crop cache holds {pre.clip_frames}-frame {pre.size}px clips but SignHiera "
                                f"{cfg.signhiera_checkpoint} takes {tuple(signhiera.config.input_size)}; build "
                                "the cache with crop-cache --signhiera set to this checkpoint")
        encoder = self.load_encoder_and_decoder(cfg, device)
        first = first_trainable_block(len(signhiera.blocks), cfg.signhiera_freeze_fraction,
                                      cfg.unfreeze_signhiera_layers or None)
        if first == len(signhiera.blocks):
            raise TrainingError(f"signhiera_freeze_fraction {cfg.signhiera_freeze_fraction} freezes all "
                                f"{len(signhiera.blocks)} SignHiera blocks; lower it or set unfreeze_signhiera_layers")
        mean, std = (pre.mean, pre.std) if pre is not None else (0.45, 0.225)
        model = SignHieraSonar(signhiera, encoder, first, cfg.gradient_checkpointing,
                               train_encoder=not cfg.freeze_encoder, mean=mean, std=std)
        return model.to(device).train()

    def on_epoch_start(self, model: nn.Module, epoch: int, cfg: TrainConfig) -> None:
        """`freeze_encoder` holds the whole SONAR encoder until `unfreeze_after` epochs have passed; SignHiera's
        frozen prefix stays as train_last_blocks set it."""
        module = unwrap(model)
        frozen = cfg.freeze_encoder and (cfg.unfreeze_after is None or epoch <= cfg.unfreeze_after)
        module.encoder.requires_grad_(not frozen)

    def lr_for(self, param_name: str, cfg: TrainConfig) -> float:
        # SignHiera's blocks take cfg.lr; the encoder follows sonar-finetune (encoder_lr for its body).
        return cfg.lr if param_name.startswith("signhiera.") else super().lr_for(param_name, cfg)

    def loss(self, model: nn.Module, batch: ClipBatch, cfg: TrainConfig) -> tuple[Tensor, int]:
        embeddings = model(batch)
        if not torch.isfinite(embeddings).all():  # a diverged model: a non-finite loss makes the trainer stop
            n_tokens = sum(len(seq) - 2 for seq in self._decoder().tokenize(batch.texts, cfg.target_lang))
            return embeddings.sum() * float("nan"), n_tokens
        return stage1_loss(model, self._decoder(), batch, cfg.target_lang, cfg.label_smoothing)

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: ClipBatch, cfg: TrainConfig) -> list[str]:
        embeddings = model(batch).float()
        return self._decoder().decode(embeddings, [cfg.target_lang], decoding_options(cfg))[cfg.target_lang]

    def export(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """The adapted SignHiera (for extract-features: stage 2's features) and the encoder, as loadable
        checkpoints, and system.json naming them with the crop cache's face detector."""
        module = unwrap(model)
        paths = {"signhiera": Path(run_dir) / "signhiera.pt", "encoder": Path(run_dir) / "encoder.pt"}
        save_model_checkpoint(module.signhiera, paths["signhiera"])
        save_model_checkpoint(module.encoder, paths["encoder"])
        detector = self.cache_preprocess.detector if self.cache_preprocess is not None else None
        paths["system"] = write_system(
            run_dir, paths["signhiera"], paths["encoder"], detector,
            "signhiera-finetune (stage 1): SignHiera's last blocks and the SONAR encoder adapted from video")
        return paths
