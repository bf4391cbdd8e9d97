"""The NLLB SentencePiece tokenizer with fairseq2's token ids, on the `sentencepiece` package alone.

fairseq2 0.8.1's `load_nllb_tokenizer` edits the SentencePiece model before using it: it appends one CONTROL
piece `__{lang}__` per language (in the card's order), then `<MINED_DATA>`, `<MMT_BT_DATA>`, `<SMT_BT_DATA>`,
and inserts a CONTROL `<pad>` at index 0 (NLLB's model has no pad), which shifts every original id up by one
(SONAR's pad 0 / unk 1 / bos 2 / eos 3). A language piece that the model already has (our tiny models define
them as user symbols) is appended again; the later piece wins the piece -> id lookup. Encoding is plain
SentencePiece over the edited model; decoding maps ids to pieces and joins the pieces (so control pieces,
including a language piece, decode to nothing). This class makes the same edit, so ids and text match fairseq2's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2 as spm_model
from torch import Tensor

from slt.errors import ModelUnavailableError, UnknownLanguageError

_EXTRA_CONTROL = ("<MINED_DATA>", "<MMT_BT_DATA>", "<SMT_BT_DATA>")


class NllbTokenizer:
    """Target-side encoding (`</s> __{lang}__ pieces </s>`) and decoding with fairseq2's NLLB ids."""

    def __init__(self, model_path: str | Path, langs: Sequence[str]) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelUnavailableError(f"the SentencePiece model {path} does not exist")
        proto = spm_model.ModelProto()
        try:
            proto.ParseFromString(path.read_bytes())
        except Exception as error:  # protobuf raises its own DecodeError
            raise ModelUnavailableError(f"{path} is not a SentencePiece model ({error})") from error
        control = spm_model.ModelProto.SentencePiece.CONTROL
        for symbol in [f"__{lang}__" for lang in langs] + list(_EXTRA_CONTROL):
            proto.pieces.add(piece=symbol, score=0.0, type=control)
        proto.pieces.insert(0, spm_model.ModelProto.SentencePiece(piece="<pad>", score=0.0, type=control))
        self._sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.langs = list(langs)
        self.pad_idx = 0
        self.unk_idx = self._sp.unk_id()
        self.bos_idx = self._sp.bos_id()
        self.eos_idx = self._sp.eos_id()
        self.vocab_size = self._sp.get_piece_size()
        self._lang_ids = {lang: self._sp.piece_to_id(f"__{lang}__") for lang in self.langs}

    def lang_id(self, lang: str) -> int:
        if lang not in self._lang_ids:
            raise UnknownLanguageError(f"the tokenizer has no language token for '{lang}'")
        return self._lang_ids[lang]

    def prefix(self, lang: str) -> list[int]:
        """`</s> __{lang}__`: what the decoder is prompted with (sonar-space's target mode)."""
        return [self.eos_idx, self.lang_id(lang)]

    def encode(self, text: str, lang: str, device: torch.device | str = "cpu") -> Tensor:
        """Target-side ids `</s> __{lang}__ pieces... </s>` as an int64 tensor."""
        ids = self.prefix(lang) + self._sp.encode(text) + [self.eos_idx]
        return torch.tensor(ids, dtype=torch.int64, device=device)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return self._sp.decode_pieces([self._sp.id_to_piece(int(i)) for i in ids])

    def id_to_piece(self, index: int) -> str:
        return self._sp.id_to_piece(index)
