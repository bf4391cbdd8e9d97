"""The SONAR text decoder on transformers' M2M100 (NLLB) decoder: no fairseq2 or sonar-space needed.

The SONAR text decoder is an NLLB-200 decoder whose "encoder output" is the sentence embedding as one step
(`[B, 1, D]`), so its cross-attention always attends to that single vector. transformers' `M2M100Decoder` has
the same layers: scaled token embeddings (x sqrt(D)), sinusoidal positions, pre-norm self-attention /
cross-attention / ReLU FFN blocks, a final layer norm, and an output projection tied to the embeddings.
Points where the two libraries differ, and what this module does about them:

- Positions: fairseq2 gives token i the sinusoid of step `pad_idx + 1 + i` (sin half first, then cos), which is
  M2M100's layout and offset, but M2M100 derives positions from the token ids (a token equal to its pad id gets
  the zero vector; SONAR's official config has pad_idx 1 = `<unk>`) and rounds the frequencies differently.
  We replace `embed_positions` with fairseq2's table, indexed by position alone.
- Attention heads: sonar-space builds every decoder attention with `num_encoder_attn_heads`; so do we.
- Output projection: tied to the embeddings, no bias (`final_proj.weight` must equal the embedding matrix).
- Dropout: the decoder runs in eval mode (frozen), so no dropout applies; the config carries the rates anyway.
- Generation: our own beam search / sampling (`slt.text.generation`), which follow fairseq2's rules.

Checkpoints stay in fairseq2's layout (`{"model": state_dict, "config": ...}`, keys such as
`decoder.layers.0.self_attn.output_proj.weight`); `fairseq2_to_m2m100` converts strictly (every key used, every
shape checked) and `m2m100_to_fairseq2` converts back, so a decoder trained here loads in both backends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slt.errors import CheckpointError, InvalidArgumentError, ModelUnavailableError
from slt.text.assets import resolve_text_assets
from slt.text.forcing import IGNORE, forcing_batch, forcing_sequences
from slt.text.generation import (
    GenerationLimits,
    TopKTopP,
    beam_search,
    block_ngrams,
    penalise_repetition,
    sample,
)
from slt.text.languages import validate_languages
from slt.text.nllb_tokenizer import NllbTokenizer
from slt.text.options import DecodingOptions, check_sonar_options
from slt.utils.io import atomic_save

PROMPT_LEN = 2  # `</s> __{lang}__`
CHECKPOINT_KIND = "sonar_text_decoder"

# fairseq2 key (per layer, after `decoder.layers.N.`) -> M2M100Decoder key (after `layers.N.`).
_LAYER_KEYS = {
    "self_attn_layer_norm": "self_attn_layer_norm",
    "self_attn.q_proj": "self_attn.q_proj",
    "self_attn.k_proj": "self_attn.k_proj",
    "self_attn.v_proj": "self_attn.v_proj",
    "self_attn.output_proj": "self_attn.out_proj",
    "encoder_decoder_attn_layer_norm": "encoder_attn_layer_norm",
    "encoder_decoder_attn.q_proj": "encoder_attn.q_proj",
    "encoder_decoder_attn.k_proj": "encoder_attn.k_proj",
    "encoder_decoder_attn.v_proj": "encoder_attn.v_proj",
    "encoder_decoder_attn.output_proj": "encoder_attn.out_proj",
    "ffn_layer_norm": "final_layer_norm",
    "ffn.inner_proj": "fc1",
    "ffn.output_proj": "fc2",
}
_ACTIVATIONS = {"ReLU": "relu", "GELU": "gelu", "SiLU": "silu", "Tanh": "tanh"}

# sonar-space's named architectures (the fields this decoder uses), which local cards override with `_set_`.
def fs2_position_table(max_seq_len: int, dim: int, pad_idx: int | None) -> Tensor:
    """[max_seq_len + 1, dim] float32: row 0 zeros (padding), row 1 + i the encoding of token i.

    Computed exactly as fairseq2's SinusoidalPositionEncoder (tensor2tensor's formula, same operation order),
    so the values are bitwise equal: step `pad_idx + 1 + i`, sines in the first half, cosines in the second.
    """
    if dim % 2:
        raise CheckpointError(f"the decoder's model_dim must be even for sinusoidal positions, got {dim}")
    table = torch.zeros((max_seq_len + 1, dim), dtype=torch.float32)
    start = 0 if pad_idx is None else pad_idx + 1
    steps = torch.arange(start, start + max_seq_len, dtype=torch.float32)
    num_sin = dim // 2
    indices = torch.arange(num_sin, dtype=torch.float32)
    freqs = torch.exp(indices * -math.log(10000.0) / (num_sin - 1))
    angles = torch.outer(steps, freqs)
    table[1:, :num_sin] = angles.sin()
    table[1:, num_sin:] = angles[:, : dim - num_sin].cos()
    return table


class Fairseq2Positions(nn.Module):
    """Drop-in for M2M100's `embed_positions`: fairseq2's table, indexed by position (never by token id)."""

    def __init__(self, max_seq_len: int, dim: int, pad_idx: int | None) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.register_buffer("table", fs2_position_table(max_seq_len, dim, pad_idx), persistent=False)

    def forward(self, input_ids: Tensor | None, inputs_embeds: Tensor, past_key_values_length: int = 0) -> Tensor:
        length = inputs_embeds.shape[1]
        end = past_key_values_length + length
        if end > self.max_seq_len:
            raise InvalidArgumentError(f"the decoder handles at most {self.max_seq_len} positions, got {end}")
        return self.table[1 + past_key_values_length : 1 + end].unsqueeze(0)  # [1, S, D]


def m2m100_config(config: Mapping[str, object]):
    """transformers' M2M100Config for a SONAR decoder config (fairseq2 field names)."""
    from transformers import M2M100Config

    activation = str(config.get("activation_fn", "ReLU"))
    if activation not in _ACTIVATIONS:
        raise CheckpointError(
            f"activation_fn '{activation}' has no transformers equivalent here ({', '.join(_ACTIVATIONS)})"
        )
    vocab = config["vocab_info"]
    model_dim = int(config["model_dim"])  # type: ignore[arg-type]
    heads = int(config["num_encoder_attn_heads"])  # type: ignore[arg-type]
    if model_dim % heads:
        raise CheckpointError(f"model_dim {model_dim} is not divisible by {heads} attention heads")
    pad = vocab.get("pad_idx")  # type: ignore[union-attr]
    hf = M2M100Config(
        vocab_size=int(vocab["size"]),  # type: ignore[index]
        d_model=model_dim,
        decoder_layers=int(config["num_decoder_layers"]),  # type: ignore[arg-type]
        decoder_attention_heads=heads,
        decoder_ffn_dim=int(config["ffn_inner_dim"]),  # type: ignore[arg-type]
        encoder_layers=0,
        activation_function=_ACTIVATIONS[activation],
        dropout=float(config.get("emb_dropout_p", 0.0) or 0.0),  # type: ignore[arg-type]
        attention_dropout=float(config.get("attention_dropout_p", 0.0) or 0.0),  # type: ignore[arg-type]
        activation_dropout=float(config.get("activation_dropout_p", 0.0) or 0.0),  # type: ignore[arg-type]
        decoder_layerdrop=0.0,
        scale_embedding=not bool(config.get("no_scale_embedding", False)),
        pad_token_id=pad if pad is not None else 0,
        max_position_embeddings=int(config["max_seq_len"]),  # type: ignore[arg-type]
        use_cache=True,
    )
    hf._attn_implementation = "sdpa"  # fairseq2 uses torch's scaled_dot_product_attention too
    return hf


class SonarM2M100(nn.Module):
    """M2M100Decoder conditioned on sentence embeddings, with fairseq2's positions and a tied output projection."""

    def __init__(self, config: Mapping[str, object]) -> None:
        super().__init__()
        from transformers.models.m2m_100.modeling_m2m_100 import M2M100Decoder

        self.sonar_config = dict(config)
        self.hf_config = m2m100_config(config)
        self.decoder = M2M100Decoder(self.hf_config)
        vocab = config["vocab_info"]
        self.decoder.embed_positions = Fairseq2Positions(self.hf_config.max_position_embeddings, self.hf_config.d_model,
                                                         vocab.get("pad_idx"))  # type: ignore[union-attr]
        input_dim = config.get("input_dim")
        if input_dim is not None and int(input_dim) != self.hf_config.d_model:  # type: ignore[arg-type]
            for layer in self.decoder.layers:  # cross-attention keys/values read the input_dim-wide embedding
                layer.encoder_attn.k_proj = nn.Linear(int(input_dim), self.hf_config.d_model)  # type: ignore[arg-type]
                layer.encoder_attn.v_proj = nn.Linear(int(input_dim), self.hf_config.d_model)  # type: ignore[arg-type]
        self.max_seq_len = self.hf_config.max_position_embeddings

    @property
    def model_dim(self) -> int:
        return int(self.sonar_config.get("input_dim") or self.hf_config.d_model)

    def forward(self, input_ids: Tensor, embeddings: Tensor, past_key_values=None, use_cache: bool = False):
        """Logits [B, S, V] of `input_ids` [B, S] given `embeddings` [B, D] (and the cache of earlier steps)."""
        out = self.decoder(
            input_ids=input_ids,
            encoder_hidden_states=embeddings.unsqueeze(1),  # one "source step" per sentence
            past_key_values=past_key_values,
            use_cache=use_cache,
            return_dict=True,
        )
        logits = F.linear(out.last_hidden_state, self.decoder.embed_tokens.weight)
        return logits, out.past_key_values


def fairseq2_to_m2m100(state: Mapping[str, Tensor], model: SonarM2M100) -> dict[str, Tensor]:
    """Map a fairseq2-layout decoder state dict onto `model.decoder`'s keys; strict about keys and shapes."""
    mapped: dict[str, Tensor] = {}
    unused = []
    layer_key = re.compile(r"decoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        if key == "decoder_frontend.embed.weight":
            mapped["embed_tokens.weight"] = value
        elif key in ("decoder.layer_norm.weight", "decoder.layer_norm.bias"):
            mapped[key.removeprefix("decoder.")] = value
        elif key == "final_proj.weight":
            continue  # tied: checked against the embeddings below
        elif (match := layer_key.match(key)) and match.group(2) in _LAYER_KEYS:
            mapped[f"layers.{match.group(1)}.{_LAYER_KEYS[match.group(2)]}.{match.group(3)}"] = value
        else:
            unused.append(key)
    if unused:
        raise CheckpointError(f"the text decoder checkpoint has keys this architecture does not use: {unused[:8]}")
    if "final_proj.weight" in state and "decoder_frontend.embed.weight" in state:
        if not torch.equal(state["final_proj.weight"], state["decoder_frontend.embed.weight"]):
            raise CheckpointError("final_proj.weight differs from the embeddings, but the SONAR decoder ties them")
    expected = {k: v for k, v in model.decoder.state_dict().items()}
    missing = sorted(set(expected) - set(mapped))
    if missing:
        raise CheckpointError(f"the text decoder checkpoint lacks {len(missing)} weights, e.g. {missing[:8]}")
    extra = sorted(set(mapped) - set(expected))
    if extra:
        raise CheckpointError(f"the text decoder checkpoint has more layers than its config says: {extra[:8]}")
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"text decoder weight {key} has shape {tuple(value.shape)}, "
                f"the config needs {tuple(expected[key].shape)}"
            )
    return mapped


# Meta's released `sonar_text_decoder.pt` is a pre-fairseq2 (fairseq) checkpoint: `{"state_dict": {...}}` with
# fairseq's key names and the control-token embedding rows in fairseq's order (BOS, PAD, EOS, UNK).
_LEGACY_LAYER_KEYS = {
    "self_attn.out_proj": "self_attn.output_proj",
    "encoder_attn.q_proj": "encoder_decoder_attn.q_proj",
    "encoder_attn.k_proj": "encoder_decoder_attn.k_proj",
    "encoder_attn.v_proj": "encoder_decoder_attn.v_proj",
    "encoder_attn.out_proj": "encoder_decoder_attn.output_proj",
    "encoder_attn_layer_norm": "encoder_decoder_attn_layer_norm",
    "fc1": "ffn.inner_proj",
    "fc2": "ffn.output_proj",
    "final_layer_norm": "ffn_layer_norm",
    **{name: name for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn_layer_norm")},
}
_LEGACY_IGNORED = {"version", "embed_positions._float_tensor"}


def legacy_fairseq_to_fairseq2(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """fairseq's SONAR decoder keys -> fairseq2's, as sonar-space's checkpoint converter does: rename, and move the
    control-token embeddings from (BOS, PAD, EOS, UNK) to the tokenizer's (PAD, UNK, BOS, EOS) rows."""
    converted: dict[str, Tensor] = {}
    unused = []
    layer_key = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        if key in _LEGACY_IGNORED:
            continue
        if key == "embed_tokens.weight":
            embed = value.clone()
            embed[[0, 1, 2, 3]] = value[[1, 3, 0, 2]]
            converted["decoder_frontend.embed.weight"] = embed
        elif key == "output_projection.weight":
            if "embed_tokens.weight" in state and not torch.equal(value, state["embed_tokens.weight"]):
                raise CheckpointError("output_projection.weight differs from embed_tokens.weight; SONAR ties them")
        elif key in ("layer_norm.weight", "layer_norm.bias"):
            converted[f"decoder.{key}"] = value
        elif (match := layer_key.match(key)) and match.group(2) in _LEGACY_LAYER_KEYS:
            converted[f"decoder.layers.{match.group(1)}.{_LEGACY_LAYER_KEYS[match.group(2)]}.{match.group(3)}"] = value
        else:
            unused.append(key)
    if unused:
        raise CheckpointError(f"the legacy text decoder checkpoint has keys this architecture ignores: {unused[:8]}")
    if "decoder_frontend.embed.weight" in converted:
        converted["final_proj.weight"] = converted["decoder_frontend.embed.weight"]
    return converted


def m2m100_to_fairseq2(model: SonarM2M100) -> dict[str, Tensor]:
    """The inverse of `fairseq2_to_m2m100`: fairseq2's key layout (with the tied `final_proj.weight`)."""
    inverse = {hf: fs2 for fs2, hf in _LAYER_KEYS.items()}
    state: dict[str, Tensor] = {}
    for key, value in model.decoder.state_dict().items():
        value = value.detach().cpu()
        if key == "embed_tokens.weight":
            state["decoder_frontend.embed.weight"] = value
            state["final_proj.weight"] = value
        elif key.startswith("layer_norm."):
            state[f"decoder.{key}"] = value
        else:
            _, index, rest = key.split(".", 2)
            name, kind = rest.rsplit(".", 1)
            state[f"decoder.layers.{index}.{inverse[name]}.{kind}"] = value
    return state


def load_sonar_m2m100(checkpoint: str | Path, config: Mapping[str, object] | None = None) -> SonarM2M100:
    """A SONAR text decoder checkpoint (fairseq2 layout, `weights_only=True`) as a `SonarM2M100` in eval mode.

    `config` (fairseq2 field names) is the asset card's resolved config; without it the checkpoint's own
    `config` is used. The weights must match the config exactly.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelUnavailableError(f"the text decoder checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types; all mean the same to the user
        raise CheckpointError(f"cannot read the text decoder checkpoint {path}: {error}") from error
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} is not a text decoder checkpoint (a {type(raw).__name__})")
    state = raw.get("model", raw)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # Meta's released file: fairseq's layout
    if isinstance(state, dict) and "embed_tokens.weight" in state:
        state = legacy_fairseq_to_fairseq2(state)
    if not isinstance(state, dict) or "decoder_frontend.embed.weight" not in state:
        raise CheckpointError(
            f"{path} is in neither fairseq2's nor fairseq's SONAR text decoder layout "
            "(no 'decoder_frontend.embed.weight' or 'embed_tokens.weight')"
        )
    if config is None:
        if not isinstance(raw.get("config"), dict):
            raise CheckpointError(f"{path} has no config and none was given (an asset card provides it)")
        config = raw["config"]
    model = SonarM2M100(config)
    model.decoder.load_state_dict(fairseq2_to_m2m100(state, model), strict=True)
    return model.eval()


def save_sonar_m2m100(model: SonarM2M100, out_path: str | Path) -> Path:
    """Write the decoder in fairseq2's checkpoint layout (atomically), loadable by both backends."""
    checkpoint = {"model": m2m100_to_fairseq2(model), "config": dict(model.sonar_config), "kind": CHECKPOINT_KIND}
    return atomic_save(checkpoint, out_path)


class _Session:
    """Incremental decoding state for `slt.text.generation`: the embeddings per row and transformers' KV cache."""

    def __init__(self, model: SonarM2M100, embeddings: Tensor) -> None:
        self.model, self.embeddings, self.cache = model, embeddings, None

    def decode(self, tokens: Tensor) -> Tensor:
        logits, self.cache = self.model(tokens, self.embeddings, past_key_values=self.cache, use_cache=True)
        return logits

    def reorder(self, order: Tensor) -> None:
        self.embeddings = self.embeddings.index_select(0, order)
        if self.cache is not None:
            self.cache.reorder_cache(order)


class HFTextDecoder:
    """A frozen SONAR text decoder on transformers, with the same interface as `SonarTextDecoder`.

    `decoder` / `tokenizer` are asset names (official or registered local cards); the files are resolved by
    `slt.text.assets.resolve_text_assets`, which needs no fairseq2.
    """

    backend = "transformers"

    def __init__(
        self,
        decoder: str = "text_sonar_basic_decoder",
        tokenizer: str = "text_sonar_basic_encoder",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        if dtype in (torch.float16, torch.bfloat16) and self.device.type != "cuda":
            raise InvalidArgumentError(
                f"{dtype} decoding is only supported on CUDA; use torch.float32 on {self.device}"
            )
        assets = resolve_text_assets(decoder, tokenizer)
        self.decoder_name, self.tokenizer_name = decoder, tokenizer
        self.dtype = dtype
        self._tokenizer = NllbTokenizer(assets.tokenizer, assets.langs)
        self._model = load_sonar_m2m100(assets.checkpoint, assets.config).to(self.device, dtype)
        for param in self._model.parameters():
            param.requires_grad_(False)  # frozen: gradients of the loss flow only into the embeddings
        if self._model.hf_config.vocab_size != self._tokenizer.vocab_size:
            raise CheckpointError(
                f"the decoder's vocabulary ({self._model.hf_config.vocab_size}) does not match the tokenizer's "
                f"({self._tokenizer.vocab_size} pieces with {len(assets.langs)} language tokens)"
            )
        self.model_dim: int = self._model.model_dim
        self.languages: list[str] = list(assets.langs)
        self._max_seq_len = self._model.max_seq_len

    @property
    def tokenizer(self) -> NllbTokenizer:
        return self._tokenizer

    @property
    def model(self) -> SonarM2M100:
        return self._model

    def _check_embeddings(self, embeddings: Tensor) -> Tensor:
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2 or embeddings.shape[1] != self.model_dim:
            shape = tuple(embeddings.shape) if isinstance(embeddings, Tensor) else type(embeddings).__name__
            raise InvalidArgumentError(f"embeddings must be a [B, {self.model_dim}] tensor, got {shape}")
        if embeddings.shape[0] == 0:
            raise InvalidArgumentError("embeddings is empty: nothing to decode")
        if not torch.isfinite(embeddings).all():
            raise InvalidArgumentError("embeddings contain NaN or inf values")
        return embeddings.to(self.device, self.dtype)

    def generate_ids(
        self, embeddings: Tensor, langs: Sequence[str], options: DecodingOptions | None = None
    ) -> list[Tensor]:
        """Generated token ids (final EOS included) per row; rows are language-major (row i*B + b is language i,
        embedding b), all in one batched generation."""
        options = options or DecodingOptions()
        langs = validate_languages(langs, supported=self.languages, decoder=self.decoder_name)
        check_sonar_options(options)
        embeddings = self._check_embeddings(embeddings)
        batch = embeddings.shape[0]
        source = embeddings.repeat(len(langs), 1)
        prompts = torch.tensor([self._tokenizer.prefix(lang) for lang in langs], device=self.device)
        prompts = prompts.repeat_interleave(batch, dim=0)  # [len(langs) * B, 2]
        processors = []
        if options.no_repeat_ngram_size > 0:
            processors.append(block_ngrams(options.no_repeat_ngram_size))
        if options.repetition_penalty > 1.0:
            processors.append(penalise_repetition(options.repetition_penalty, PROMPT_LEN))
        limits = GenerationLimits(self._tokenizer.eos_idx, self._tokenizer.pad_idx, options.max_len, self._max_seq_len)
        with torch.inference_mode():
            session = _Session(self._model, source)
            if options.sampling:
                sampler = TopKTopP(options.top_k, options.top_p, options.seed)
                return sample(session, prompts, limits, sampler, options.temperature, processors)
            return beam_search(session, prompts, limits, options.beam_size, options.len_penalty, options.temperature,
                               processors)

    def decode(
        self, embeddings: Tensor, langs: Sequence[str], options: DecodingOptions | None = None
    ) -> dict[str, list[str]]:
        """Decode `[B, model_dim]` sentence embeddings into text in each target language: `{lang: [B strings]}`."""
        langs = validate_languages(langs, supported=self.languages, decoder=self.decoder_name)
        batch = embeddings.shape[0] if isinstance(embeddings, Tensor) and embeddings.dim() == 2 else 0
        texts = [self._tokenizer.decode(ids) for ids in self.generate_ids(embeddings, langs, options)]
        return {lang: texts[i * batch : (i + 1) * batch] for i, lang in enumerate(langs)}

    def tokenize(self, texts: Sequence[str], lang: str = "eng_Latn") -> list[Tensor]:
        """Target-side token ids per text: `</s> __{lang}__ pieces... </s>` (what the decoder is trained on)."""
        (lang,) = validate_languages([lang], supported=self.languages, decoder=self.decoder_name)
        return [self._tokenizer.encode(text, lang, self.device) for text in texts]

    def teacher_forced_loss(
        self, embeddings: Tensor, texts: Sequence[str], lang: str = "eng_Latn", label_smoothing: float = 0.0
    ) -> tuple[Tensor, int]:
        """Summed cross-entropy of `texts` given `embeddings`, and the number of target tokens it sums over
        (the same contract as `SonarTextDecoder.teacher_forced_loss`)."""
        embeddings = self._check_embeddings(embeddings)
        seqs = forcing_sequences(self.tokenize, texts, embeddings.shape[0], lang, label_smoothing, self._max_seq_len)
        inputs, targets, _ = forcing_batch(seqs, self._tokenizer.pad_idx, self.device)
        with torch.inference_mode(False), torch.enable_grad():
            logits, _ = self._model(inputs, embeddings)
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                ignore_index=IGNORE, reduction="sum", label_smoothing=label_smoothing,
            )
        return loss, int((targets != IGNORE).sum())
