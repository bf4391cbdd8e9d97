"""Tiny, learnable training corpora for the trainer tests (built in tmp dirs, deterministic).

Sentences are subject-verb-object combinations; every word has a fixed random vector and a sentence's features
are its words' vectors (two steps per word) plus noise. Domain B sees the same words through a fixed random
linear "camera" change, so an encoder trained on domain A is poor on B until it is fine-tuned there.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

SUBJECTS = ["the cat", "a dog", "my friend", "the teacher"]
VERBS = ["sees", "likes", "finds", "draws"]
OBJECTS = ["a red ball", "the old house", "green trees"]
SENTENCES = [f"{s} {v} {o}" for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]  # 48
FEATURE_DIM = 16
MODEL_DIM = 32


def split_sentences() -> tuple[list[str], list[str]]:
    """36 train / 12 validation sentences (a fixed shuffle)."""
    order = torch.randperm(len(SENTENCES), generator=torch.Generator().manual_seed(7)).tolist()
    shuffled = [SENTENCES[i] for i in order]
    return shuffled[:36], shuffled[36:]


def word_table(dim: int = FEATURE_DIM) -> dict[str, torch.Tensor]:
    words = sorted({w for s in SENTENCES for w in s.split()})
    return {w: torch.randn(dim, generator=torch.Generator().manual_seed(100 + i)) for i, w in enumerate(words)}


def write_domain(folder: Path, sentences: list[str], domain: str, seed: int, name: str = "features.tsv",
                 prefix: str = "") -> Path:
    """One [2 x words, FEATURE_DIM] tensor per sentence + a features manifest; domain "A" or "B"."""
    folder.mkdir(parents=True, exist_ok=True)
    table = word_table()
    camera = torch.eye(FEATURE_DIM)
    if domain == "B":
        mix = torch.randn(FEATURE_DIM, FEATURE_DIM, generator=torch.Generator().manual_seed(99))
        camera = 0.4 * torch.eye(FEATURE_DIM) + 0.6 * mix / FEATURE_DIM**0.5
    noise = torch.Generator().manual_seed(seed)
    lines = ["id\tpath\tn_steps\ttranslation"]
    for i, sentence in enumerate(sentences):
        steps = torch.stack([table[w] for w in sentence.split() for _ in range(2)])
        steps = steps @ camera + 0.05 * torch.randn(steps.shape, generator=noise)
        clip_id = f"{prefix}{domain}{i:03d}"
        torch.save(steps.float().contiguous(), folder / f"{clip_id}.pt")
        lines.append(f"{clip_id}\t{clip_id}.pt\t{steps.shape[0]}\t{sentence}")
    manifest = folder / name
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def tiny_text_decoder(folder: Path) -> tuple[str, str]:
    """A trained tiny SONAR-architecture text decoder over the corpus sentences (registered asset names)."""
    from slt.text import pretrain_text_decoder

    decoder, tokenizer, _ = pretrain_text_decoder(SENTENCES, folder, model_dim=MODEL_DIM, steps=150, seed=0,
                                                  vocab_size=64, name_prefix="train_core_tiny")
    return decoder, tokenizer


def tiny_encoder_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny SONAR ASL encoder saved as a project checkpoint."""
    from slt.models import SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint

    torch.manual_seed(seed)
    model = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=FEATURE_DIM, d_model=32, output_dim=MODEL_DIM))
    save_model_checkpoint(model, path)
    return path
