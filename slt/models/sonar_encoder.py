"""SONAR ASL sentence encoder: SignHiera features -> one 1024-d SONAR sentence embedding.

A T5 v1.1 encoder-decoder (transformers' ``T5Stack``) whose encoder reads projected video features instead of
token embeddings; the sentence embedding is the decoder's output for one start token (id 0) cross-attending to
the encoder, passed through ``projection_out``. Attribute names follow the released checkpoint layout
(tests/data/released_layouts/sonar_encoder_keys.json), so ``state_dict()`` matches it key for key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import T5Config
from transformers.models.t5.modeling_t5 import T5Stack

from slt.errors import ModelInputError


@dataclass(frozen=True)
class SonarSignEncoderConfig:
    """Architecture of the SONAR ASL encoder; defaults are the released T5 v1.1-large layout (written here,
    never fetched from a hub)."""

    input_dim: int = 768  # SignHiera feature width
    d_model: int = 1024
    d_kv: int = 64
    d_ff: int = 2816
    num_layers: int = 24
    num_decoder_layers: int = 24
    num_heads: int = 16
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    vocab_size: int = 32128  # only row decoder_start_token_id is ever used
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"  # transformers maps this to gelu_new (tanh approximation)
    dropout_rate: float = 0.0
    output_dim: int = 1024  # SONAR embedding width
    decoder_start_token_id: int = 0

    def __post_init__(self) -> None:
        problems = [f"{name}={getattr(self, name)} must be positive" for name in
                    ("input_dim", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                     "vocab_size", "output_dim") if getattr(self, name) <= 0]
        if not 0 <= self.decoder_start_token_id < self.vocab_size:
            problems.append(
                f"decoder_start_token_id={self.decoder_start_token_id} outside vocab_size={self.vocab_size}")
        if problems:
            raise ModelInputError("Invalid SonarSignEncoderConfig: " + "; ".join(problems))

    def t5_config(self, *, decoder: bool) -> T5Config:
        """The transformers config of the encoder or decoder stack."""
        return T5Config(
            vocab_size=self.vocab_size, d_model=self.d_model, d_kv=self.d_kv, d_ff=self.d_ff,
            num_layers=self.num_decoder_layers if decoder else self.num_layers,
            num_decoder_layers=self.num_decoder_layers, num_heads=self.num_heads,
            relative_attention_num_buckets=self.relative_attention_num_buckets,
            relative_attention_max_distance=self.relative_attention_max_distance,
            dropout_rate=self.dropout_rate, layer_norm_epsilon=self.layer_norm_epsilon,
            feed_forward_proj=self.feed_forward_proj, is_decoder=decoder, is_encoder_decoder=False,
            use_cache=False, tie_word_embeddings=False, decoder_start_token_id=self.decoder_start_token_id,
        )

    @classmethod
    def tiny(cls, input_dim: int = 128, d_model: int = 32, output_dim: int = 32, num_layers: int = 2,
             num_heads: int = 2) -> SonarSignEncoderConfig:
        """A small encoder through the same classes (defaults fit ``SignHieraConfig.tiny()`` features and the
        32-d "toy" SONAR text decoder)."""
        if d_model % num_heads:
            raise ModelInputError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        return cls(input_dim=input_dim, d_model=d_model, d_kv=d_model // num_heads, d_ff=2 * d_model,
                   num_layers=num_layers, num_decoder_layers=num_layers, num_heads=num_heads, vocab_size=8,
                   output_dim=output_dim)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SonarSignEncoderConfig:
        """Build from ``dataclasses.asdict`` output (e.g. a checkpoint's ``config``); unknown fields are an error."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelInputError(f"Unknown SonarSignEncoderConfig fields: {unknown}")
        return cls(**dict(values))


class FeatureProjection(nn.Module):
    """Linear map from video features to d_model, times a learned per-dimension scale."""

    def __init__(self, input_dim: int, d_model: int):
        super().__init__()
        self.feature_proj = nn.Linear(input_dim, d_model)
        self.feature_proj_scale = nn.Parameter(torch.ones(d_model))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.feature_proj(features) * self.feature_proj_scale


def _t5_stack(cls: type[T5Stack], config: T5Config, embed_tokens: nn.Embedding) -> T5Stack:
    """A T5Stack using `embed_tokens` as its embedding, in transformers 4.x and 5.x alike: 5.x dropped the
    constructor's embed_tokens argument (each stack makes its own), so the shared module is assigned after."""
    stack = cls(config)
    stack.embed_tokens = embed_tokens
    return stack


class SignT5Encoder(T5Stack):
    """The T5 encoder stack plus the feature projection that replaces its token embeddings."""

    def __init__(self, config: T5Config, input_dim: int):
        super().__init__(config)
        self.feature_projection = FeatureProjection(input_dim, config.d_model)


class SonarSignEncoder(nn.Module):
    """SONAR ASL encoder: ``encode(features [B,N,input_dim], padding_mask [B,N]) -> [B, output_dim]``."""

    kind: ClassVar[str] = "sonar_sign_encoder"

    def __init__(self, cfg: SonarSignEncoderConfig | None = None):
        super().__init__()
        cfg = cfg or SonarSignEncoderConfig()
        self.config = cfg
        # One embedding shared by both stacks, as in the released checkpoint (three state-dict names, one tensor).
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = _t5_stack(lambda config: SignT5Encoder(config, cfg.input_dim), cfg.t5_config(decoder=False),
                                 self.shared)
        self.decoder = _t5_stack(T5Stack, cfg.t5_config(decoder=True), self.shared)
        self.projection_out = nn.Linear(cfg.d_model, cfg.output_dim, bias=False)

    def _check_inputs(self, features: torch.Tensor, padding_mask: torch.Tensor | None) -> None:
        if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[-1] != self.config.input_dim:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ModelInputError(f"SonarSignEncoder expects features [B, N, {self.config.input_dim}], got {got}")
        if features.shape[0] == 0 or features.shape[1] == 0:
            raise ModelInputError(f"SonarSignEncoder got an empty batch or sequence: {tuple(features.shape)}")
        if not features.is_floating_point():
            raise ModelInputError(f"SonarSignEncoder expects float features, got dtype {features.dtype}")
        if padding_mask is None:
            return
        if padding_mask.dtype != torch.bool or tuple(padding_mask.shape) != tuple(features.shape[:2]):
            raise ModelInputError(
                f"padding_mask must be a bool tensor of shape {tuple(features.shape[:2])} (True = padding), "
                f"got {padding_mask.dtype} {tuple(padding_mask.shape)}")
        if padding_mask.device.type != "meta" and bool(padding_mask.all(dim=1).any()):
            rows = padding_mask.all(dim=1).nonzero().flatten().tolist()
            raise ModelInputError(f"padding_mask marks every step of batch rows {rows} as padding")

    def encode(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, N, input_dim] (+ padding mask, True = padding) -> sentence embeddings [B, output_dim].

        Padded steps are masked in encoder self-attention and decoder cross-attention, so they cannot change
        the result.
        """
        self._check_inputs(features, padding_mask)
        weight = self.projection_out.weight
        features = features.to(device=weight.device, dtype=weight.dtype)
        attention_mask = None if padding_mask is None else (~padding_mask).to(device=weight.device, dtype=torch.long)
        hidden = self.encoder(inputs_embeds=self.encoder.feature_projection(features), attention_mask=attention_mask,
                              return_dict=True).last_hidden_state
        start = torch.full((features.shape[0], 1), self.config.decoder_start_token_id, dtype=torch.long,
                           device=weight.device)
        pooled = self.decoder(input_ids=start, encoder_hidden_states=hidden, encoder_attention_mask=attention_mask,
                              use_cache=False, return_dict=True).last_hidden_state
        return self.projection_out(pooled[:, 0])

    @torch.no_grad()
    def standardize_input_projection(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Data-dependent initialisation for training from scratch: fold per-dimension feature statistics into
        ``feature_proj`` so that it sees standardised features. SignHiera features vary little around a large mean,
        which a freshly initialised projection passes on as an almost constant input (the model then learns the
        most common sentence). The architecture and checkpoint layout do not change."""
        proj = self.encoder.feature_projection.feature_proj
        if mean.shape != (self.config.input_dim,) or std.shape != (self.config.input_dim,):
            raise ModelInputError(f"mean and std must have shape [{self.config.input_dim}], "
                                  f"got {tuple(mean.shape)}, {tuple(std.shape)}")
        inv_std = 1.0 / std.to(proj.weight).clamp_min(1e-6)
        proj.bias -= proj.weight @ (mean.to(proj.weight) * inv_std)
        proj.weight *= inv_std[None, :]

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`encode`, so DDP and autograd work through ``forward``."""
        return self.encode(features, padding_mask)
