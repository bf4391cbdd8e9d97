"""Teacher forcing on the SONAR decoder: shift target sequences and run the decoder over them in one pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from slt.errors import InvalidArgumentError

PROMPT_LEN = 2  # the target prefix is always `</s> __{lang}__`
IGNORE = -100  # target value that cross_entropy skips


def forcing_sequences(tokenize: Callable[[Sequence[str], str], list[Tensor]], texts: Sequence[str],
                      n_embeddings: int, lang: str, label_smoothing: float, max_seq_len: int) -> list[Tensor]:
    """Check a teacher-forcing request (one non-empty text per embedding, label smoothing in [0, 1), targets that
    fit the decoder's positions) and return the target token ids per text. Shared by both decoder backends."""
    if len(texts) != n_embeddings:
        raise InvalidArgumentError(
            f"teacher_forced_loss needs one text per embedding, got {len(texts)} texts for {n_embeddings} embeddings"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise InvalidArgumentError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgumentError(f"target text {index} is empty; every embedding needs a non-empty target")
    seqs = tokenize(texts, lang)
    too_long = [i for i, seq in enumerate(seqs) if len(seq) > max_seq_len]
    if too_long:
        raise InvalidArgumentError(f"target texts {too_long[:5]} are longer than the decoder's {max_seq_len} positions")
    return seqs


def forcing_batch(seqs: Sequence[Tensor], pad_idx: int, device: torch.device) -> tuple[Tensor, Tensor, list[int]]:
    """Right-padded decoder inputs, targets and input lengths for `</s> __lang__ tokens... </s>` sequences.

    Inputs drop the last token; targets are every text token plus the final EOS. The language token is given
    (as in generation), so the position that would predict it has no target.
    """
    lengths = [len(s) - 1 for s in seqs]
    inputs = torch.full((len(seqs), max(lengths)), pad_idx, dtype=torch.int64, device=device)
    targets = torch.full_like(inputs, IGNORE)
    for row, seq in enumerate(seqs):
        inputs[row, : lengths[row]] = seq[:-1]
        targets[row, PROMPT_LEN - 1 : lengths[row]] = seq[PROMPT_LEN:]
    return inputs, targets, lengths


def decoder_logits(decoder, embeddings: Tensor, inputs: Tensor, lengths: list[int]) -> Tensor:
    """Logits [B, S, V] of a sonar-space ConditionalTransformerDecoderModel conditioned on [B, D] embeddings."""
    from fairseq2.nn import BatchLayout  # only this fairseq2 path needs it; the transformers backend has its own

    source = decoder.encode(embeddings, BatchLayout.of(embeddings)).unsqueeze(1)  # one "source step" per sentence
    hidden = decoder.decode(inputs, BatchLayout.of(inputs, lengths), source, BatchLayout.of(source))
    return decoder.project(hidden)
