"""The recipe interface: what a training approach must provide so one trainer can run them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from slt.data.features import FeaturesDataset, collate_features

if TYPE_CHECKING:
    from slt.data.features import FeatureBatch
    from slt.train.config import TrainConfig


class Recipe(ABC):
    """A training approach (sonar-finetune, t5-bridge, scratch).

    The trainer owns the loop (optimiser, schedule, AMP, DDP, checkpoints, metrics); the recipe owns the model.
    """

    name: str = ""
    # How the DataLoader batches the recipe's dataset items (features by default; stage 1: crop-cache clips).
    collate = staticmethod(collate_features)

    def dataset(self, path: str | None, max_samples: int | None, cfg: TrainConfig, train: bool) -> Dataset:
        """The split at `path` (cfg.train_features / val_features): pre-extracted features by default."""
        return FeaturesDataset(path, max_samples)

    @abstractmethod
    def build(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        """Return the trainable module on `device`; every frozen part inside it has requires_grad=False."""

    def param_groups(self, model: nn.Module, cfg: TrainConfig) -> list[dict]:
        """AdamW groups: weight decay only on weights (ndim >= 2), none on biases and norm scales.

        Recipes with a pretrained part override `lr_for` to give it `cfg.encoder_lr` (differential lr).
        Frozen parameters are included too (with requires_grad=False) so that unfreezing later only flips the
        flag: the optimiser already knows them and its state dict layout stays stable across resumes.
        """
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if not self.is_trainable_name(name):
                continue
            decay = param.ndim >= 2
            key = (self.lr_for(name, cfg), decay)
            groups.setdefault(key, []).append(param)
        return [
            {"params": params, "lr": lr, "initial_lr": lr, "weight_decay": cfg.weight_decay if decay else 0.0}
            for (lr, decay), params in groups.items()
        ]

    def lr_for(self, param_name: str, cfg: TrainConfig) -> float:
        """Peak learning rate of one parameter (default: cfg.lr for all)."""
        return cfg.lr

    def is_trainable_name(self, param_name: str) -> bool:
        """Whether the parameter may ever be trained (frozen-forever parts such as the text decoder: False)."""
        return True

    @abstractmethod
    def loss(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> tuple[Tensor, int]:
        """Mean loss over every target token of the batch, and the number of tokens it averages over."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> list[str]:
        """Decoded text, one string per batch item, with `cfg.decoding` settings."""

    def on_epoch_start(self, model: nn.Module, epoch: int, cfg: TrainConfig) -> None:  # noqa: B027 (optional hook)
        """Hook for progressive unfreezing (epoch is 1-based)."""

    def export(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """Write deployable artefacts (e.g. the fine-tuned encoder checkpoint); name -> path."""
        return {}


def unwrap(model: nn.Module) -> nn.Module:
    """The recipe's own module inside a DistributedDataParallel wrapper (the trainer may wrap it)."""
    return getattr(model, "module", model)
