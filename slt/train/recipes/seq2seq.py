"""What the Hugging Face T5-based recipes (t5-bridge, scratch) share: the translator module shape, the token
loss, decoding settings, and the recipe's loss/predict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationConfig

from slt.text.options import DecodingOptions
from slt.train.recipes.base import Recipe, unwrap
from slt.train.recipes.target_spm import EOS_ID, IGNORE_INDEX, PAD_ID

if TYPE_CHECKING:
    from slt.data.features import FeatureBatch
    from slt.train.config import TrainConfig
    from slt.train.recipes.target_spm import TargetTokenizer


class Seq2SeqTranslator(nn.Module):
    """Features -> text through a Hugging Face T5 decoder; subclasses say what the decoder cross-attends to.

    Subclasses set `self.t5` (a T5ForConditionalGeneration) and `self.tokenizer` (a TargetTokenizer).
    """

    t5: nn.Module
    tokenizer: TargetTokenizer

    def encoder_inputs(self, features: Tensor, padding_mask: Tensor) -> dict[str, Any]:
        """Keyword arguments for `self.t5` / `self.t5.generate` that describe the source side."""
        raise NotImplementedError

    def forward(self, features: Tensor, padding_mask: Tensor, decoder_input_ids: Tensor) -> Tensor:
        """Teacher-forced logits [B, T, vocab]."""
        return self.t5(**self.encoder_inputs(features, padding_mask), decoder_input_ids=decoder_input_ids).logits


class Seq2SeqRecipe(Recipe):
    """Loss and decoding for recipes whose module is a `Seq2SeqTranslator`."""

    def loss(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> tuple[Tensor, int]:
        labels = unwrap(model).tokenizer.labels(batch.texts, max_len=cfg.decoding.max_len)
        labels = labels.to(batch.features.device)
        logits = model(batch.features, batch.padding_mask, shift_right(labels))
        return token_loss(logits, labels, cfg.label_smoothing)

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: FeatureBatch, cfg: TrainConfig) -> list[str]:
        inner = unwrap(model)
        was_training = inner.training
        inner.eval()
        try:
            ids = generate(inner.t5, cfg.decoding, cfg.seed, **inner.encoder_inputs(batch.features, batch.padding_mask))
        finally:
            inner.train(was_training)
        return inner.tokenizer.decode(ids.cpu())


def shift_right(labels: Tensor) -> Tensor:
    """Decoder inputs for teacher forcing: start token (pad, as in T5) then the labels minus the last one."""
    inputs = torch.full_like(labels, PAD_ID)
    inputs[:, 1:] = labels[:, :-1]
    return inputs.masked_fill(inputs == IGNORE_INDEX, PAD_ID)


def token_loss(logits: Tensor, labels: Tensor, label_smoothing: float) -> tuple[Tensor, int]:
    """Label-smoothed cross-entropy averaged over every target token (eos included, padding excluded)."""
    n_tokens = int((labels != IGNORE_INDEX).sum())
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    return loss / max(n_tokens, 1), n_tokens


def generation_config(decoding: DecodingOptions) -> GenerationConfig:
    """Map the run's DecodingOptions onto `transformers` generate: beam search, or sampling when asked."""
    kwargs: dict = dict(
        max_new_tokens=decoding.max_len,
        min_new_tokens=1,  # an immediate eos gives an empty string that scores nothing and hides collapse
        repetition_penalty=decoding.repetition_penalty,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
    )
    if decoding.no_repeat_ngram_size > 0:
        kwargs["no_repeat_ngram_size"] = decoding.no_repeat_ngram_size
    if decoding.sampling:
        kwargs.update(do_sample=True, num_beams=1, temperature=decoding.temperature,
                      top_k=decoding.top_k, top_p=decoding.top_p)
    else:
        kwargs.update(do_sample=False, num_beams=decoding.beam_size)
        if decoding.beam_size > 1:
            kwargs.update(length_penalty=decoding.len_penalty, early_stopping=True)
    return GenerationConfig(**kwargs)


def generate(model, decoding: DecodingOptions, seed: int, **inputs) -> Tensor:
    """`model.generate(**inputs)` with the run's decoding settings; sampling is seeded (`decoding.seed`, else
    `seed`) without touching the caller's RNG stream (so evaluating mid-training does not change the training
    data order)."""
    devices = [inputs_device(inputs)] if inputs_device(inputs).type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=decoding.sampling):
        if decoding.sampling:
            torch.manual_seed(decoding.seed if decoding.seed is not None else seed)
        return model.generate(**inputs, generation_config=generation_config(decoding))


def inputs_device(inputs: dict) -> torch.device:
    for value in inputs.values():
        if isinstance(value, Tensor):
            return value.device
        if hasattr(value, "last_hidden_state"):
            return value.last_hidden_state.device
    return torch.device("cpu")
