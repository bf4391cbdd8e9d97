"""Teacher forcing on the SONAR decoder: shift target sequences and run the decoder over them in one pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

PROMPT_LEN = 2  # the target prefix is always `</s> __{lang}__`
IGNORE = -100  # target value that cross_entropy skips


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
