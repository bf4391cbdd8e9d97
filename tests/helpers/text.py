"""The tiny SONAR text model the `tiny_text_model` fixture (tests/fixtures/text.py) trains: its sentences,
languages and the record it hands to tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

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
