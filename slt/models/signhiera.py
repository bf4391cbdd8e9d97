"""SignHiera: the Hiera video encoder (hiera_base_128x224) that turns 128-frame sign clips into features.

Layout (docs/PIPELINE.md, "SignHiera"): a Conv3d patch embedding, separate spatial and temporal position
embeddings, four stages whose first blocks (after the first stage) max-pool the queries by ``q_stride``, and
mask-unit (windowed) attention in the early stages, global attention later. Tokens are kept "unrolled": reordered
once so that every query pooling is a max over the leading stride slots of the sequence and every mask unit is a
strided slice, which keeps all blocks plain sequence ops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from slt.errors import ModelInputError

Triple = tuple[int, int, int]


def _prod(values: tuple[int, ...]) -> int:
    return math.prod(values)


@dataclass(frozen=True)
class SignHieraConfig:
    """Architecture of SignHiera; the defaults are the released ``hiera_base_128x224``."""

    input_size: Triple = (128, 224, 224)  # frames, height, width
    in_chans: int = 3
    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    q_pool: int = 3  # how many stage transitions pool the queries
    q_stride: Triple = (1, 2, 2)
    mask_unit_size: Triple = (1, 8, 8)
    mask_unit_attn: tuple[bool, ...] = (True, True, False, False)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    patch_kernel: Triple = (3, 7, 7)
    patch_stride: Triple = (2, 4, 4)
    patch_padding: Triple = (1, 3, 3)
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        # Lists come back from JSON/torch.load; keep the dataclass hashable and comparable.
        for name in ("input_size", "stages", "q_stride", "mask_unit_size", "mask_unit_attn",
                     "patch_kernel", "patch_stride", "patch_padding"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = self._problems()
        if problems:
            raise ModelInputError("Invalid SignHieraConfig: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if len(self.mask_unit_attn) != len(self.stages):
            problems.append(f"mask_unit_attn has {len(self.mask_unit_attn)} entries for {len(self.stages)} stages")
        if not 0 <= self.q_pool < len(self.stages):
            problems.append(f"q_pool={self.q_pool} must be in [0, {len(self.stages) - 1}]")
        # Mask units must be exactly what the unrolled q-pooling folds away, so that after the last pooling the
        # tokens are a raster-ordered grid and every earlier mask unit is a strided slice of the sequence.
        folded = tuple(s ** self.q_pool for s in self.q_stride)
        if self.mask_unit_size != folded:
            problems.append(f"mask_unit_size {self.mask_unit_size} must equal q_stride**q_pool = {folded}")
        tokens = self._token_shape_unchecked()
        if any(t <= 0 or t % m for t, m in zip(tokens, self.mask_unit_size)):
            problems.append(f"token grid {tokens} (from input_size {self.input_size}) is not divisible "
                            f"by mask_unit_size {self.mask_unit_size}")
        inner = self.embed_dim
        heads = self.num_heads
        for _ in self.stages[1:]:
            inner, heads = int(inner * self.dim_mul), int(heads * self.head_mul)
            if heads <= 0 or inner % heads:
                problems.append(f"stage dim {inner} is not divisible by {heads} heads")
        return problems

    def _token_shape_unchecked(self) -> Triple:
        return tuple(  # type: ignore[return-value]
            (size + 2 * pad - kernel) // stride + 1
            for size, kernel, stride, pad in zip(self.input_size, self.patch_kernel, self.patch_stride,
                                                 self.patch_padding)
        )

    @property
    def token_shape(self) -> Triple:
        """Token grid (T', H', W') after the patch embedding, e.g. (64, 56, 56)."""
        return self._token_shape_unchecked()

    @property
    def stage_token_shapes(self) -> list[Triple]:
        """Token grid at each stage: full size (64,56,56), (64,28,28), (64,14,14), (64,7,7)."""
        shapes = [self.token_shape]
        for stage in range(1, len(self.stages)):
            prev = shapes[-1]
            shapes.append(tuple(t // s for t, s in zip(prev, self.q_stride)) if stage <= self.q_pool else prev)
        return shapes  # type: ignore[return-value]

    @property
    def stage_dims(self) -> list[int]:
        return [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]

    @property
    def stage_heads(self) -> list[int]:
        return [int(self.num_heads * self.head_mul**i) for i in range(len(self.stages))]

    @property
    def feature_dim(self) -> int:
        """Width of one output feature vector (768 at full size)."""
        return self.stage_dims[-1]

    @property
    def num_frames(self) -> int:
        return self.input_size[0]

    @property
    def num_feature_steps(self) -> int:
        """Feature vectors per clip: one per temporal token (T // 2 with the temporal patch stride 2)."""
        return self.stage_token_shapes[-1][0]

    @classmethod
    def tiny(cls, num_frames: int = 16, image_size: int = 224, embed_dim: int = 16, num_heads: int = 1,
             stages: tuple[int, ...] = (1, 1, 1, 1)) -> SignHieraConfig:
        """A few-thousand-parameter SignHiera through the same classes, for tests and the demo model set.

        It still takes ``[B, 3, num_frames, image_size, image_size]`` clips; ``image_size`` must be a multiple
        of 32 (patch stride 4 times 8x8 mask units).
        """
        return cls(input_size=(num_frames, image_size, image_size), embed_dim=embed_dim, num_heads=num_heads,
                   stages=tuple(stages))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SignHieraConfig:
        """Build from ``dataclasses.asdict`` output (e.g. a checkpoint's ``config``); unknown fields are an error."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelInputError(f"Unknown SignHieraConfig fields: {unknown}")
        return cls(**dict(values))


def _max_pool_unrolled(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max over the leading ``stride`` slots of an unrolled sequence [B, N, C] -> [B, N // stride, C]."""
    batch, _, channels = x.shape
    return x.view(batch, stride, -1, channels).amax(dim=1)


def _unroll(x: torch.Tensor, grid: Triple, stride: Triple, levels: int) -> torch.Tensor:
    """Reorder raster tokens [B, T*H*W, C] so each q-pooling level is a max over leading slots.

    After one level the sequence is (stride offsets) x (coarser grid); repeating ``levels`` times leaves the
    coarsest grid innermost in raster order, with the finest stride offsets outermost.
    """
    batch, _, channels = x.shape
    size = list(grid)
    x = x.reshape(batch, *size, channels)
    lead = batch
    for _ in range(levels):
        size = [s // k for s, k in zip(size, stride)]
        # [lead, t, kt, h, kh, w, kw, C] -> [lead, kt, kh, kw, t, h, w, C]
        x = x.reshape(lead, size[0], stride[0], size[1], stride[1], size[2], stride[2], channels)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)
        lead *= _prod(stride)
        x = x.reshape(lead, *size, channels)
    return x.reshape(batch, -1, channels)


class PatchEmbed(nn.Module):
    """Conv3d over (T, H, W) -> raster-ordered tokens [B, T'*H'*W', C]."""

    def __init__(self, cfg: SignHieraConfig):
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_kernel,
                              stride=cfg.patch_stride, padding=cfg.patch_padding)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.proj(clips).flatten(2).transpose(1, 2)


class MaskUnitAttention(nn.Module):
    """Multi-head attention inside each mask unit (or over all tokens), with optional query max-pooling."""

    def __init__(self, dim: int, dim_out: int, heads: int, q_stride: int, window_size: int, windowed: bool):
        super().__init__()
        self.dim_out, self.heads, self.head_dim = dim_out, heads, dim_out // heads
        self.q_stride, self.window_size, self.windowed = q_stride, window_size, windowed
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, dim] (unrolled) -> [B, N // q_stride, dim_out]; ``key_mask`` [B, N] bool (True = real token)
        hides padded tokens from global attention (a mask unit is never part real, part padding)."""
        batch, tokens, _ = x.shape
        # In the unrolled order the mask unit of a token is its index modulo the number of units.
        windows = tokens // (self.q_stride * self.window_size) if self.windowed else 1
        qkv = self.qkv(x).reshape(batch, -1, windows, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 4, 2, 1, 5).unbind(0)  # each [B, heads, windows, tokens/window, head_dim]
        if self.q_stride > 1:
            q = q.reshape(batch, self.heads, windows, self.q_stride, -1, self.head_dim).amax(dim=3)
        mask = None if key_mask is None or self.windowed else key_mask[:, None, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 3).reshape(batch, -1, self.dim_out)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class HieraBlock(nn.Module):
    """Pre-norm transformer block; at a stage change it widens (``proj``) and pools the residual path."""

    def __init__(self, dim: int, dim_out: int, heads: int, q_stride: int, window_size: int, windowed: bool,
                 mlp_ratio: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MaskUnitAttention(dim, dim_out, heads, q_stride, window_size, windowed)
        self.norm2 = nn.LayerNorm(dim_out, eps=eps)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.proj is not None:
            x = _max_pool_unrolled(self.proj(x_norm), self.attn.q_stride)
        x = x + self.attn(x_norm, key_mask)
        return x + self.mlp(self.norm2(x))


def first_trainable_block(n_blocks: int, freeze_fraction: float = 0.8, train_blocks: int | None = None) -> int:
    """Index of the first block stage 1 trains: the last ``train_blocks`` blocks, else all but the first
    ``freeze_fraction`` of them (rounded down, so 80 % of 16 blocks freezes 12 and trains 4)."""
    if train_blocks is not None:
        if not 0 <= train_blocks <= n_blocks:
            raise ModelInputError(f"train_blocks must be in [0, {n_blocks}], got {train_blocks}")
        return n_blocks - train_blocks
    if not 0.0 <= freeze_fraction <= 1.0:
        raise ModelInputError(f"freeze_fraction must be in [0, 1], got {freeze_fraction}")
    return min(n_blocks, math.floor(freeze_fraction * n_blocks + 1e-9))


class SignHiera(nn.Module):
    """SignHiera video encoder; ``extract_features`` gives one vector per temporal token of each clip."""

    kind: ClassVar[str] = "signhiera"

    def __init__(self, cfg: SignHieraConfig | None = None):
        super().__init__()
        cfg = cfg or SignHieraConfig()
        self.config = cfg
        t, h, w = cfg.token_shape
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, cfg.embed_dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, cfg.embed_dim))
        self.blocks = nn.ModuleList(self._build_blocks(cfg))
        # Unused by extract_features, but part of the released layout (the classification head is not).
        self.norm = nn.LayerNorm(cfg.feature_dim, eps=cfg.norm_eps)
        self._init_weights()
        # Stage-1 fine-tuning (see train_last_blocks): blocks before this index, the patch embedding and the
        # position embeddings are frozen and run without autograd; later blocks may recompute in backward.
        self.first_trainable_block = 0
        self.gradient_checkpointing = False

    def train_last_blocks(self, first_trainable: int, gradient_checkpointing: bool = False) -> None:
        """Freeze everything before block ``first_trainable`` (run without keeping activations) and train the rest.

        ``first_trainable == len(blocks)`` freezes the whole model. With ``gradient_checkpointing`` the trainable
        blocks keep only their inputs in the forward pass and recompute the rest in backward (less memory, about
        one more forward of those blocks in time).
        """
        if not 0 <= first_trainable <= len(self.blocks):
            raise ModelInputError(f"first trainable block must be in [0, {len(self.blocks)}], got {first_trainable}")
        self.first_trainable_block, self.gradient_checkpointing = first_trainable, gradient_checkpointing
        frozen_prefix = first_trainable > 0
        for module in (self.patch_embed,):
            module.requires_grad_(not frozen_prefix)
        self.pos_embed_spatial.requires_grad_(not frozen_prefix)
        self.pos_embed_temporal.requires_grad_(not frozen_prefix)
        self.norm.requires_grad_(False)  # not used by extract_features
        for index, block in enumerate(self.blocks):
            block.requires_grad_(index >= first_trainable)

    @staticmethod
    def _build_blocks(cfg: SignHieraConfig) -> list[HieraBlock]:
        flat_stride = _prod(cfg.q_stride)
        window = _prod(cfg.mask_unit_size)
        dims, heads = cfg.stage_dims, cfg.stage_heads
        stage_of_block = [s for s, depth in enumerate(cfg.stages) for _ in range(depth)]
        blocks, dim = [], cfg.embed_dim
        for i, stage in enumerate(stage_of_block):
            first_of_stage = i > 0 and stage_of_block[i - 1] != stage
            pools = first_of_stage and stage <= cfg.q_pool
            if pools:
                window //= flat_stride  # a mask unit holds fewer tokens after pooling
            # Windowing lags one block behind the stage: the pooling block still attends within mask units
            # when the previous stage did, and global attention starts once the resolution is lower.
            windowed = cfg.mask_unit_attn[stage_of_block[i - 1] if i > 0 else 0]
            blocks.append(HieraBlock(dim, dims[stage], heads[stage], flat_stride if pools else 1, window, windowed,
                                     cfg.mlp_ratio, cfg.norm_eps))
            dim = dims[stage]
        return blocks

    def _init_weights(self) -> None:
        if self.pos_embed_spatial.is_meta:  # built on the meta device to be loaded: nothing to initialise (and
            return  # meta trunc_normal_ goes through torch's reference ops, importing torch._dynamo: ~1 s)
        nn.init.trunc_normal_(self.pos_embed_spatial, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_temporal, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _pos_embed(self) -> torch.Tensor:
        t, h, w = self.config.token_shape
        # Raster order is (t, h, w): the spatial table repeats per frame, each temporal row covers one frame.
        return self.pos_embed_spatial.repeat(1, t, 1) + self.pos_embed_temporal.repeat_interleave(h * w, dim=1)

    def _check_clips(self, clips: torch.Tensor) -> None:
        expected = (self.config.in_chans, *self.config.input_size)
        if not isinstance(clips, torch.Tensor) or clips.dim() != 5 or tuple(clips.shape[1:]) != expected:
            got = tuple(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
            raise ModelInputError(f"SignHiera expects clips of shape [B, {', '.join(map(str, expected))}], got {got}")
        if not clips.is_floating_point():
            raise ModelInputError(f"SignHiera expects normalised float clips, got dtype {clips.dtype}")

    def _padding_steps(self, padding: torch.Tensor | Sequence[int], batch: int) -> torch.Tensor:
        """Padded frames per clip -> padded temporal mask units per clip (validated)."""
        padding = torch.as_tensor(padding, device=self.pos_embed_spatial.device).reshape(-1)
        if padding.shape[0] != batch or padding.is_floating_point() or padding.is_complex():
            raise ModelInputError(f"padding must hold one integer per clip ({batch}), got {padding.dtype} "
                                  f"{tuple(padding.shape)}")
        frames_per_unit = self.config.mask_unit_size[0] * self.config.patch_stride[0]
        units = self.config.token_shape[0] // self.config.mask_unit_size[0]
        steps = padding.long() // frames_per_unit
        if bool(((padding < 0) | (steps >= units)).any()):
            raise ModelInputError(f"padding must be in [0, {units * frames_per_unit - frames_per_unit}] frames "
                                  f"so that a clip keeps a real step, got {padding.tolist()}")
        return steps

    def extract_features(self, clips: torch.Tensor,
                         padding: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """Clips [B, 3, T, H, W] (normalised) -> features [B, T // 2, feature_dim] (last stage mean over H, W).

        ``padding`` (frames per clip that repeat the last real frame) masks them as the released model was
        trained: padded mask units are zeroed before the patch embedding and hidden from global attention. The
        last ``padding // 2`` steps of such a clip are padding; :meth:`extract_video_features` drops them.
        """
        self._check_clips(clips)
        param = self.pos_embed_spatial
        clips = clips.to(device=param.device, dtype=param.dtype)
        key_mask = None
        if padding is not None:
            steps = self._padding_steps(padding, clips.shape[0])
            t_units = self.config.token_shape[0] // self.config.mask_unit_size[0]
            real_units = torch.arange(t_units, device=param.device)[None] < (t_units - steps)[:, None]  # [B, Tmu]
            # Frames map to temporal mask units by nearest-neighbour upsampling, as in the patch-embed mask.
            frames = self.config.num_frames
            frame_unit = torch.arange(frames, device=param.device) * t_units // frames
            clips = clips * real_units[:, frame_unit][:, None, :, None, None].to(clips.dtype)
            key_mask = self._token_mask(real_units)
        first = self.first_trainable_block
        with torch.set_grad_enabled(torch.is_grad_enabled() and first == 0):
            x = self.patch_embed(clips)
            x = _unroll(x + self._pos_embed(), self.config.token_shape, self.config.q_stride, self.config.q_pool)
        for index, block in enumerate(self.blocks):
            if index < first:
                with torch.no_grad():  # frozen prefix: no activations kept for backward
                    x = block(x, key_mask)
            elif self.gradient_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, key_mask, use_reentrant=False)
            else:
                x = block(x, key_mask)
            if key_mask is not None and block.attn.q_stride > 1:
                key_mask = _max_pool_unrolled(key_mask[..., None].to(x.dtype), block.attn.q_stride)[..., 0] > 0
        # All unroll levels are pooled away, so the tokens are the last-stage grid in raster order.
        t, h, w = self.config.stage_token_shapes[-1]
        return x.reshape(x.shape[0], t, h * w, x.shape[-1]).mean(dim=2)

    def _token_mask(self, real_units: torch.Tensor) -> torch.Tensor:
        """Temporal mask-unit validity [B, Tmu] -> unrolled token validity [B, N] (True = real)."""
        t, h, w = self.config.token_shape
        per_token = real_units.repeat_interleave(self.config.mask_unit_size[0], dim=1)  # [B, T']
        raster = per_token[:, :, None].expand(-1, t, h * w).reshape(real_units.shape[0], -1, 1)
        unrolled = _unroll(raster.to(self.pos_embed_spatial.dtype), self.config.token_shape, self.config.q_stride,
                           self.config.q_pool)
        return unrolled[..., 0] > 0

    def extract_video_features(self, clips: torch.Tensor,
                               padding: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """Clips of one video [B, 3, T, H, W] -> [N, feature_dim]: each clip's steps minus its ``padding // 2``
        trailing padded steps, concatenated in clip order."""
        features = self.extract_features(clips, padding)
        if padding is None:
            return features.reshape(-1, features.shape[-1])
        keep = features.shape[1] - self._padding_steps(padding, clips.shape[0]) * self.config.mask_unit_size[0]
        return torch.cat([clip[:n] for clip, n in zip(features, keep.tolist())])

    def forward(self, clips: torch.Tensor, padding: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """Same as :meth:`extract_features` (so DDP and hooks see the real computation)."""
        return self.extract_features(clips, padding)
