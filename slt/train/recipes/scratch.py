"""`scratch` recipe, the baseline: a small transformer encoder-decoder from features straight to text.

Features [B, N, D] -> LayerNorm + Linear to d_model -> a randomly initialised T5-architecture encoder-decoder
(relative positions, so any clip length works) -> tokens of its own SentencePiece vocabulary trained on the
run's training texts. Nothing is pretrained, so it shows what the SONAR parts add.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from transformers import T5Config, T5ForConditionalGeneration

from slt.data.features import FeaturesDataset
from slt.errors import CheckpointError, TrainingError
from slt.train.recipes.base import unwrap
from slt.train.recipes.seq2seq import Seq2SeqRecipe, Seq2SeqTranslator
from slt.train.recipes.target_spm import EOS_ID, PAD_ID, TargetTokenizer, ensure_target_spm
from slt.utils.io import atomic_save

if TYPE_CHECKING:
    from slt.train.config import TrainConfig

SPM_FILE = "target_spm.model"
EXPORT_FILE = "scratch_translator.pt"


def scratch_t5_config(vocab_size: int, cfg: TrainConfig) -> T5Config:
    """A small T5-architecture config from the run's scratch_* sizes."""
    if cfg.scratch_d_model % cfg.scratch_heads:
        raise TrainingError(f"scratch_d_model ({cfg.scratch_d_model}) must be divisible by scratch_heads "
                            f"({cfg.scratch_heads})")
    return T5Config(
        vocab_size=vocab_size,
        d_model=cfg.scratch_d_model,
        d_kv=cfg.scratch_d_model // cfg.scratch_heads,
        d_ff=cfg.scratch_ff,
        num_layers=cfg.scratch_layers,
        num_decoder_layers=cfg.scratch_layers,
        num_heads=cfg.scratch_heads,
        dropout_rate=cfg.dropout,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
    )


class ScratchTranslator(Seq2SeqTranslator):
    """Features -> text with no pretrained part."""

    def __init__(self, input_dim: int, t5_config: T5Config, tokenizer: TargetTokenizer):
        super().__init__()
        self.input_dim = input_dim
        self.input_proj = nn.Sequential(nn.LayerNorm(input_dim), nn.Linear(input_dim, t5_config.d_model))
        self.t5 = T5ForConditionalGeneration(t5_config)
        self.tokenizer = tokenizer  # not a module: travels with the model for predict/export

    def encoder_inputs(self, features: Tensor, padding_mask: Tensor) -> dict[str, Tensor]:
        return {"inputs_embeds": self.input_proj(features), "attention_mask": (~padding_mask).long()}


class ScratchRecipe(Seq2SeqRecipe):
    name = "scratch"

    def build(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        """Train (or reuse, on resume) the run's SentencePiece vocabulary, then a random T5 sized by cfg."""
        if not cfg.train_features:
            raise TrainingError("the scratch recipe needs train_features (a features manifest)")
        dataset = FeaturesDataset(cfg.train_features, max_samples=cfg.max_samples)
        vocab_size = cfg.target_vocab_size
        tokenizer = ensure_target_spm(dataset.texts, Path(cfg.run_dir) / SPM_FILE, vocab_size)
        model = ScratchTranslator(dataset.feature_dim(), scratch_t5_config(tokenizer.vocab_size, cfg), tokenizer)
        return model.to(device)

    def export(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """The whole translator (weights + T5 config + feature dim) and its vocabulary."""
        inner = unwrap(model)
        run_dir = Path(run_dir)
        path = atomic_save(
            {
                "kind": "scratch_translator",
                "model": inner.state_dict(),
                "config": {"input_dim": inner.input_dim, "t5": inner.t5.config.to_dict()},
                "spm": SPM_FILE,
            },
            run_dir / EXPORT_FILE,
        )
        return {"translator": path, "spm": inner.tokenizer.model_path}


def load_scratch_translator(path: str | Path, device: str | torch.device = "cpu") -> ScratchTranslator:
    """Rebuild an exported scratch translator (its vocabulary is read from the same folder)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"scratch translator checkpoint not found: {path}")
    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or data.get("kind") != "scratch_translator":
        raise CheckpointError(f"{path} is not a scratch translator export (kind={data.get('kind')!r})"
                              if isinstance(data, dict) else f"{path} is not a scratch translator export")
    tokenizer = TargetTokenizer(path.parent / data["spm"])
    model = ScratchTranslator(data["config"]["input_dim"], T5Config.from_dict(data["config"]["t5"]), tokenizer)
    model.load_state_dict(data["model"], strict=True)
    return model.to(device).eval()

