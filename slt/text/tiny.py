"""Builders for small local stand-ins of the SONAR text stack: a SentencePiece NLLB-style tokenizer and a decoder
of sonar-space's own architecture (the "toy" config scaled to taste), saved in the format fairseq2's loader reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm
import torch
from torch import nn

from slt.errors import TrainingError
from slt.utils.io import atomic_save

CHECKPOINT_KIND = "sonar_text_decoder"


def train_sentencepiece(sentences: Sequence[str], out_path: str | Path, vocab_size: int, langs: Sequence[str]) -> Path:
    """Train a SentencePiece model that `fairseq2.models.nllb.load_nllb_tokenizer` accepts; returns its path.

    Special ids follow the NLLB model (unk 0, bos 1, eos 2, no pad: fairseq2 inserts `<pad>` at 0 on load, which
    shifts them to SONAR's pad 0 / unk 1 / bos 2 / eos 3). Each `__{lang}__` token is a user symbol so it stays
    one piece. `vocab_size` is an upper bound: small corpora get the largest vocabulary they support.
    """
    sentences = [s.strip() for s in sentences if isinstance(s, str) and s.strip()]
    if not sentences:
        raise TrainingError("train_sentencepiece needs at least one non-empty sentence")
    if vocab_size < len(langs) + 8:
        raise TrainingError(f"vocab_size {vocab_size} is too small for {len(langs)} language tokens plus text pieces")
    out_path = Path(out_path)
    if out_path.suffix != ".model":
        raise TrainingError(f"the SentencePiece output path must end in .model, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = out_path.with_suffix("")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # tiny corpora cannot fill a large vocabulary; take what they support
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=[f"__{lang}__" for lang in langs],
        num_threads=1,  # deterministic and gentle on a shared machine
        minloglevel=2,
    )
    prefix.with_suffix(".vocab").unlink(missing_ok=True)  # only the .model is used
    return out_path


def load_local_tokenizer(tokenizer_model: str | Path, langs: Sequence[str]):
    """fairseq2's NLLB tokenizer over a local SentencePiece model (what the asset card loads too)."""
    from fairseq2.models.nllb.tokenizer import NllbTokenizerConfig, load_nllb_tokenizer

    from slt.text.assets import ensure_fairseq2

    ensure_fairseq2()
    return load_nllb_tokenizer(Path(tokenizer_model), NllbTokenizerConfig(langs=list(langs), default_lang=langs[0]))


# sonar-space's "toy" SonarTextDecoderConfig as plain fields (what `dataclasses.asdict` of it gives), so a tiny
# decoder's config can be written without sonar-space; tests check it equals `tiny_decoder_config`.
_TOY_FIELDS: dict[str, object] = {
    "model_dim": 32, "max_seq_len": 512, "vocab_info": None, "activation_fn": "ReLU", "no_scale_embedding": False,
    "no_token_positional_embeddings": False, "learned_pos": False, "emb_dropout_p": 0.1, "attention_dropout_p": 0.1,
    "activation_dropout_p": 0.1, "normalize_before": True, "num_encoder_layers": 2, "num_decoder_layers": 2,
    "num_encoder_attn_heads": 4, "num_decoder_attn_heads": 4, "ffn_inner_dim": 128, "input_dim": None,
}


def tiny_decoder_config_dict(
    tokenizer_model: str | Path,
    langs: Sequence[str],
    model_dim: int = 64,
    layers: int = 2,
    heads: int = 4,
    ffn_dim: int | None = None,
    dropout: float = 0.0,
    max_seq_len: int = 512,
) -> dict[str, object]:
    """`dataclasses.asdict(tiny_decoder_config(...))` without sonar-space/fairseq2 (vocabulary from our
    fairseq2-compatible NLLB tokenizer): the config a tiny decoder's checkpoint and asset card carry."""
    from slt.text.nllb_tokenizer import NllbTokenizer

    if model_dim % heads:
        raise TrainingError(f"model_dim {model_dim} must be divisible by heads {heads}")
    tokenizer = NllbTokenizer(tokenizer_model, langs)
    vocab_info = {"size": tokenizer.vocab_size, "unk_idx": tokenizer.unk_idx, "bos_idx": tokenizer.bos_idx,
                  "eos_idx": tokenizer.eos_idx, "pad_idx": tokenizer.pad_idx, "boh_idx": None, "eoh_idx": None}
    return {**_TOY_FIELDS, "model_dim": model_dim, "max_seq_len": max_seq_len, "vocab_info": vocab_info,
            "num_encoder_layers": layers, "num_decoder_layers": layers, "num_encoder_attn_heads": heads,
            "num_decoder_attn_heads": heads, "ffn_inner_dim": ffn_dim or 4 * model_dim, "emb_dropout_p": dropout,
            "attention_dropout_p": dropout, "activation_dropout_p": dropout}


def tiny_decoder_config(
    tokenizer_model: str | Path,
    langs: Sequence[str],
    model_dim: int = 64,
    layers: int = 2,
    heads: int = 4,
    ffn_dim: int | None = None,
    dropout: float = 0.0,
    max_seq_len: int = 512,
):
    """sonar-space's "toy" SonarTextDecoderConfig resized, with the tokenizer's exact vocabulary info."""
    from sonar.models.sonar_text import get_sonar_text_decoder_hub

    if model_dim % heads:
        raise TrainingError(f"model_dim {model_dim} must be divisible by heads {heads}")
    config = get_sonar_text_decoder_hub().get_arch_config("toy")
    vocab_info = load_local_tokenizer(tokenizer_model, langs).vocab_info
    return dataclasses.replace(
        config,
        model_dim=model_dim,
        max_seq_len=max_seq_len,
        vocab_info=vocab_info,
        num_encoder_layers=layers,
        num_decoder_layers=layers,
        num_encoder_attn_heads=heads,
        num_decoder_attn_heads=heads,
        ffn_inner_dim=ffn_dim or 4 * model_dim,
        emb_dropout_p=dropout,
        attention_dropout_p=dropout,
        activation_dropout_p=dropout,
    )


def build_tiny_text_decoder(
    tokenizer_model: str | Path,
    langs: Sequence[str],
    model_dim: int = 64,
    layers: int = 2,
    heads: int = 4,
    ffn_dim: int | None = None,
    dropout: float = 0.0,
    seed: int = 0,
    out_path: str | Path | None = None,
) -> nn.Module:
    """A randomly initialised sonar-space text decoder whose vocabulary matches `tokenizer_model`.

    With `out_path`, it is also saved as `{"model": state_dict, "config": ..., "kind": ...}`, which sonar-space's
    checkpoint converter reads as-is; register it with `register_local_text_assets`.
    """
    from sonar.models.sonar_text import get_sonar_text_decoder_hub

    config = tiny_decoder_config(tokenizer_model, langs, model_dim, layers, heads, ffn_dim, dropout)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = get_sonar_text_decoder_hub().create_new_model(config, device=torch.device("cpu"), dtype=torch.float32)
    if out_path is not None:
        save_text_decoder(model, config, out_path)
    return model


def save_text_decoder(model: nn.Module, config, out_path: str | Path) -> Path:
    """Write a decoder checkpoint fairseq2's asset loader can read (atomically)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return atomic_save({"model": state, "config": config, "kind": CHECKPOINT_KIND}, out_path)
