"""Tiny learnable feature sets for the t5-bridge/scratch/tune tests.

Each word has a fixed random vector; a sentence's features are its words' vectors (two steps per word, plus a
little noise) stacked into [N, D]. A model must read the features to produce the right sentence, so "loss
falls and predictions differ per sample" is a real test of learning, not of memorising one output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SENTENCES = [
    "the cat sleeps",
    "a dog runs fast",
    "birds sing today",
    "the sun is hot",
    "we eat bread",
    "rain falls down",
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on one intra-op thread (import this fixture into a test module to apply it there): on a
    shared machine extra threads only spin and wait."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_features(folder: Path, sentences: list[str], dim: int = 16, seed: int = 0,
                   name: str = "features.tsv") -> Path:
    """Write one `[N, dim]` tensor per sentence and a features manifest; return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    words = sorted({w for s in sentences for w in s.split()})
    table = {w: torch.randn(dim, generator=torch.Generator().manual_seed(1000 + i)) for i, w in enumerate(words)}
    lines = ["id\tpath\tn_steps\ttranslation"]
    for i, sentence in enumerate(sentences):
        steps = [table[w] for w in sentence.split() for _ in range(2)]
        tensor = torch.stack(steps) + 0.05 * torch.randn(len(steps), dim, generator=generator)
        clip_id = f"s{i:03d}"
        torch.save(tensor.float(), folder / f"{clip_id}.pt")
        lines.append(f"{clip_id}\t{clip_id}.pt\t{len(steps)}\t{sentence}")
    manifest = folder / name
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest

# Longer sentences (4-grams exist, so BLEU moves within a few epochs): the tuning tests' corpus.
LONG_SENTENCES = [
    "the old cat sleeps on the warm mat",
    "a small dog runs fast in the park",
    "many birds sing loudly every morning today",
    "the hot sun shines over the quiet sea",
    "we eat fresh bread with cheese at noon",
    "cold rain falls down on the city streets",
]
