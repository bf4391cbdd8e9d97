"""sonar-finetune: train the SONAR ASL sentence encoder on features against the frozen SONAR text decoder.

The loss is teacher-forced cross-entropy over every token of each target sentence (after sonar-space's
`</s> __{lang}__` prefix), so gradients flow through the frozen decoder into the encoder's sentence embedding
and from there only into encoder weights. The decoder is held by the recipe, outside the trainable module, so
it is never in the optimiser, in DDP's gradient buckets or in the (small) training checkpoints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from slt.data.features import FeatureBatch
from slt.errors import TrainingError
from slt.models import load_sonar_sign_encoder, save_model_checkpoint
from slt.modelset import official_encoder_path
from slt.text import load_text_decoder, register_asset_file
from slt.train.config import TrainConfig, decoding_options
from slt.train.recipes.base import Recipe, unwrap

log = logging.getLogger("slt.train")

# Parameters that stay trainable while `freeze_encoder` holds the T5 body: the input projection and the output
# projection into SONAR space (the cheap first stage of two-stage fine-tuning).
HEAD_KEYS = ("feature_proj", "projection_out")


class SonarEncoderModule(nn.Module):
    """The trainable module: features [B, N, D] + padding mask -> sentence embeddings [B, model_dim]."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, features: Tensor, padding_mask: Tensor) -> Tensor:
        return self.encoder.encode(features, padding_mask)


class SonarFinetuneRecipe(Recipe):
    name = "sonar-finetune"

    def __init__(self) -> None:
        self.text_decoder = None

    def load_encoder_and_decoder(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        """The SONAR encoder to train (base_encoder, else the official one; cfg.dropout) and the frozen text decoder
        (self.text_decoder), checked to agree on the embedding size. Shared with signhiera-finetune."""
        path = Path(cfg.base_encoder) if cfg.base_encoder else official_encoder_path()
        encoder = load_sonar_sign_encoder(path, device=device)
        _set_dropout(encoder, cfg.dropout)
        if cfg.asset_cards:
            register_asset_file(cfg.asset_cards)
        self.text_decoder = load_text_decoder(cfg.decoder, cfg.tokenizer, device=device,
                                              backend=cfg.decoder_backend)
        out_dim = _output_dim(encoder)
        if out_dim is not None and out_dim != self.text_decoder.model_dim:
            raise TrainingError(f"encoder {path} makes {out_dim}-d embeddings but decoder {cfg.decoder!r} "
                                f"expects {self.text_decoder.model_dim}-d")
        return encoder

    def build(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        if cfg.unfreeze_signhiera_layers:
            raise TrainingError("unfreeze_signhiera_layers trains SignHiera from video: use the recipe "
                                "signhiera-finetune on crop caches (stage 1), then extract features with its "
                                "signhiera.pt for sonar-finetune (stage 2); here set it to 0")
        encoder = self.load_encoder_and_decoder(cfg, device)
        model = SonarEncoderModule(encoder).to(device).train()
        for param in model.parameters():
            param.requires_grad_(True)
        self.on_epoch_start(model, 1, cfg)
        return model

    def on_epoch_start(self, model: nn.Module, epoch: int, cfg: TrainConfig) -> None:
        """`freeze_encoder`: only the projections train until `unfreeze_after` epochs have passed."""
        module = unwrap(model)
        frozen = cfg.freeze_encoder and (cfg.unfreeze_after is None or epoch <= cfg.unfreeze_after)
        for name, param in module.named_parameters():
            param.requires_grad_(not frozen or any(key in name for key in HEAD_KEYS))
        if cfg.freeze_encoder and cfg.unfreeze_after is not None and epoch == cfg.unfreeze_after + 1:
            log.info("epoch %d: unfreezing the whole SONAR encoder", epoch)

    def lr_for(self, param_name: str, cfg: TrainConfig) -> float:
        # The pretrained body may take a smaller lr than the projections (differential learning rates).
        if cfg.encoder_lr is not None and not any(key in param_name for key in HEAD_KEYS):
            return cfg.encoder_lr
        return cfg.lr

    def _decoder(self):
        if self.text_decoder is None:
            raise TrainingError("sonar-finetune recipe used before build()")
        return self.text_decoder

    def loss(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> tuple[Tensor, int]:
        embeddings = model(batch.features, batch.padding_mask)
        if not torch.isfinite(embeddings).all():
            # NaN inputs or a diverged encoder: report a non-finite loss so the trainer stops naming the step
            # (the decoder itself refuses non-finite embeddings).
            n_tokens = sum(len(seq) - 2 for seq in self._decoder().tokenize(batch.texts, cfg.target_lang))
            return embeddings.sum() * float("nan"), n_tokens
        total, n_tokens = self._decoder().teacher_forced_loss(
            embeddings.float(), batch.texts, cfg.target_lang, label_smoothing=cfg.label_smoothing)
        return total / max(n_tokens, 1), n_tokens

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> list[str]:
        embeddings = model(batch.features, batch.padding_mask).float()
        return self._decoder().decode(embeddings, [cfg.target_lang], decoding_options(cfg))[cfg.target_lang]

    def export(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """The fine-tuned encoder as a checkpoint `slt.models.load_sonar_sign_encoder` (and the engine) loads."""
        module = unwrap(model)
        path = Path(run_dir) / "encoder.pt"
        save_model_checkpoint(module.encoder, path)
        return {"encoder": path}


def _output_dim(encoder: nn.Module) -> int | None:
    config = getattr(encoder, "config", None)
    return getattr(config, "output_dim", None)


def _set_dropout(module: nn.Module, p: float) -> None:
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = p
