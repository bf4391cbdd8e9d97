"""The target-side SentencePiece vocabulary of the seq2seq recipes (t5-bridge with a random T5, scratch).

Ids follow the T5 convention (pad=0, eos=1, unk=2, no bos) so one tokenizer fits Hugging Face T5 models,
whether the vocabulary was trained here from the training texts or is t5-small's own `spiece.model`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm
import torch
from torch import Tensor

from slt.errors import TrainingError

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
IGNORE_INDEX = -100  # label value that the loss skips (padding after eos)


class TargetTokenizer:
    """A SentencePiece model with batch helpers that produce T5-style labels."""

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise TrainingError(f"SentencePiece model not found: {self.model_path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        if (self.sp.pad_id(), self.sp.eos_id(), self.sp.unk_id()) != (PAD_ID, EOS_ID, UNK_ID):
            raise TrainingError(
                f"{self.model_path}: a T5-style SentencePiece model needs pad=0, eos=1, unk=2; got pad="
                f"{self.sp.pad_id()}, eos={self.sp.eos_id()}, unk={self.sp.unk_id()}"
            )

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def labels(self, texts: Sequence[str], max_len: int | None = None) -> Tensor:
        """[B, T] token ids + eos, padded with IGNORE_INDEX; sequences longer than `max_len` are cut (eos kept)."""
        pieces = self.sp.encode(list(texts))
        if max_len is not None:
            pieces = [ids[: max_len - 1] for ids in pieces]
        longest = max(len(ids) for ids in pieces) + 1
        out = torch.full((len(pieces), longest), IGNORE_INDEX, dtype=torch.long)
        for row, ids in enumerate(pieces):
            out[row, : len(ids) + 1] = torch.tensor(ids + [EOS_ID], dtype=torch.long)
        return out

    def decode(self, token_ids: Tensor) -> list[str]:
        """Generated ids [B, T] -> text; stops at the first eos (pad/eos are control pieces)."""
        texts = []
        for ids in token_ids.tolist():
            if EOS_ID in ids:
                ids = ids[: ids.index(EOS_ID)]
            texts.append(self.sp.decode([i for i in ids if i not in (PAD_ID, IGNORE_INDEX)]).strip())
        return texts


def train_target_spm(texts: Iterable[str], path: str | Path, vocab_size: int = 8000) -> Path:
    """Train a unigram SentencePiece model on `texts` and write it atomically to `path`.

    `vocab_size` is a ceiling: a small corpus gets as many pieces as it supports (hard_vocab_limit off),
    so tiny test sets and real corpora use the same code.
    """
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise TrainingError("cannot train a SentencePiece vocabulary: no non-empty training texts")
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=buffer,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        num_threads=1,  # deterministic: a resumed run rebuilds exactly the same vocabulary
        minloglevel=2,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # write then rename: a killed run never leaves half a model
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def ensure_target_spm(texts: Iterable[str], path: str | Path, vocab_size: int = 8000) -> TargetTokenizer:
    """Load the vocabulary at `path`, training it first if absent (a resumed run keeps its vocabulary)."""
    path = Path(path)
    if not path.is_file():
        train_target_spm(texts, path, vocab_size)
    return TargetTokenizer(path)
