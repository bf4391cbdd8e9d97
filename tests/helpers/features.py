"""Tiny learnable feature corpora for the trainer and recipe tests (written in tmp dirs, deterministic).

Every word has a fixed random vector and a sentence's features are its words' vectors (two steps per word) plus a
little noise, stacked into [N, D]. A model must read the features to produce the right sentence, so "loss falls
and predictions differ per sample" is a real test of learning, not of memorising one output.

Two corpora: the trainer tests' subject-verb-object sentences in two domains (domain B sees the same words through
a fixed random linear "camera" change, so an encoder trained on domain A is poor on B until it is fine-tuned there),
and short/long sentence lists for the t5-bridge, scratch and tune tests.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from slt.models import SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint

# The trainer tests' corpus: 48 subject-verb-object sentences.
SUBJECTS = ["the cat", "a dog", "my friend", "the teacher"]
VERBS = ["sees", "likes", "finds", "draws"]
OBJECTS = ["a red ball", "the old house", "green trees"]
DOMAIN_SENTENCES = [f"{s} {v} {o}" for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]
FEATURE_DIM = 16
MODEL_DIM = 32

# The t5-bridge/scratch recipe tests' corpus.
SENTENCES = [
    "the cat sleeps",
    "a dog runs fast",
    "birds sing today",
    "the sun is hot",
    "we eat bread",
    "rain falls down",
]
# Longer sentences (4-grams exist, so BLEU moves within a few epochs): the tuning tests' corpus.
LONG_SENTENCES = [
    "the old cat sleeps on the warm mat",
    "a small dog runs fast in the park",
    "many birds sing loudly every morning today",
    "the hot sun shines over the quiet sea",
    "we eat fresh bread with cheese at noon",
    "cold rain falls down on the city streets",
]


def word_table(sentences: list[str], dim: int, first_seed: int) -> dict[str, torch.Tensor]:
    """A fixed random [dim] vector per distinct word (sorted), word i seeded with first_seed + i."""
    words = sorted({w for s in sentences for w in s.split()})
    return {w: torch.randn(dim, generator=torch.Generator().manual_seed(first_seed + i)) for i, w in enumerate(words)}


def write_word_features(folder: Path, sentences: list[str], table: dict[str, torch.Tensor], noise_seed: int,
                        ids: list[str], name: str = "features.tsv", camera: torch.Tensor | None = None) -> Path:
    """One [2 x words, D] tensor per sentence (optionally through `camera` [D, D]) and a features manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = torch.Generator().manual_seed(noise_seed)
    lines = ["id\tpath\tn_steps\ttranslation"]
    for clip_id, sentence in zip(ids, sentences, strict=True):
        steps = torch.stack([table[w] for w in sentence.split() for _ in range(2)])  # [N, D]
        if camera is not None:
            steps = steps @ camera
        steps = steps + 0.05 * torch.randn(steps.shape, generator=noise)
        torch.save(steps.float().contiguous(), folder / f"{clip_id}.pt")
        lines.append(f"{clip_id}\t{clip_id}.pt\t{steps.shape[0]}\t{sentence}")
    manifest = folder / name
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def write_features(folder: Path, sentences: list[str], dim: int = 16, seed: int = 0,
                   name: str = "features.tsv") -> Path:
    """Features for the recipe/tune corpora (ids s000, s001, ...); return the manifest path."""
    table = word_table(sentences, dim, first_seed=1000)
    return write_word_features(folder, sentences, table, seed, [f"s{i:03d}" for i in range(len(sentences))], name)


def split_sentences() -> tuple[list[str], list[str]]:
    """36 train / 12 validation sentences of DOMAIN_SENTENCES (a fixed shuffle)."""
    order = torch.randperm(len(DOMAIN_SENTENCES), generator=torch.Generator().manual_seed(7)).tolist()
    shuffled = [DOMAIN_SENTENCES[i] for i in order]
    return shuffled[:36], shuffled[36:]


def write_domain(folder: Path, sentences: list[str], domain: str, seed: int, name: str = "features.tsv",
                 prefix: str = "") -> Path:
    """One [2 x words, FEATURE_DIM] tensor per sentence + a features manifest; domain "A" or "B"."""
    camera = None
    if domain == "B":
        mix = torch.randn(FEATURE_DIM, FEATURE_DIM, generator=torch.Generator().manual_seed(99))
        camera = 0.4 * torch.eye(FEATURE_DIM) + 0.6 * mix / FEATURE_DIM**0.5
    table = word_table(DOMAIN_SENTENCES, FEATURE_DIM, first_seed=100)
    ids = [f"{prefix}{domain}{i:03d}" for i in range(len(sentences))]
    return write_word_features(folder, sentences, table, seed, ids, name, camera)


def tiny_text_decoder(folder: Path) -> tuple[str, str]:
    """A trained tiny SONAR-architecture text decoder over DOMAIN_SENTENCES (registered asset names)."""
    # Imported here: slt.text imports fairseq2 (seconds), which the recipe and tune tests never need.
    from slt.text import pretrain_text_decoder

    decoder, tokenizer, _ = pretrain_text_decoder(DOMAIN_SENTENCES, folder, model_dim=MODEL_DIM, steps=150, seed=0,
                                                  vocab_size=64, name_prefix="train_core_tiny")
    return decoder, tokenizer


def tiny_encoder_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny SONAR ASL encoder saved as a project checkpoint."""
    torch.manual_seed(seed)
    model = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=FEATURE_DIM, d_model=32, output_dim=MODEL_DIM))
    save_model_checkpoint(model, path)
    return path
