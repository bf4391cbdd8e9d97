"""A trained tiny SONAR text decoder (sonar-space architecture, local SentencePiece, local fairseq2 asset cards),
built once per test session. Import the fixture into a test module: `from _text_fixtures import tiny_text_model`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_LANGS = ["eng_Latn", "fra_Latn"]


def tiny_sentences(count: int = 50) -> list[str]:
    """Short, distinct English sentences from a small grammar (no two share all three slots)."""
    adjectives = ["red", "blue", "green", "small", "big", "old"]
    nouns = ["cat", "dog", "house", "car", "bird"]
    endings = ["is here", "sleeps", "runs fast", "looks nice"]
    sentences = [f"the {a} {n} {e}." for a, n, e in itertools.product(adjectives, nouns, endings)]
    return sentences[::2][:count]


@dataclass
class TinyTextModel:
    decoder_name: str
    tokenizer_name: str
    paths: dict[str, Path]
    sentences: list[str]
    langs: list[str]
    decoder: object  # slt.text.SonarTextDecoder, loaded once
    encoder: object  # slt.text.TinySentenceEncoder


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> TinyTextModel:
    """Pretrain (a few seconds), register the cards, and load the decoder through the official code path."""
    from slt.text import SonarTextDecoder, TinySentenceEncoder, pretrain_text_decoder

    sentences = tiny_sentences()
    out_dir = tmp_path_factory.mktemp("tiny_text")
    decoder_name, tokenizer_name, paths = pretrain_text_decoder(
        sentences, out_dir, langs=TINY_LANGS, model_dim=64, steps=150, seed=0
    )
    decoder = SonarTextDecoder(decoder=decoder_name, tokenizer=tokenizer_name)
    encoder = TinySentenceEncoder.load(paths["sentence_encoder"])
    return TinyTextModel(decoder_name, tokenizer_name, paths, sentences, list(TINY_LANGS), decoder, encoder)
