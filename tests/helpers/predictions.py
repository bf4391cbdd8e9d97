"""Synthetic prediction sets (varied English sentences built from word lists; collapsed systems) and JSONL files.

`{"id", "reference", "prediction"}` rows as the trainer writes them to runs/<name>/predictions_epoch<N>.jsonl.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = ["the teacher", "my brother", "a young girl", "the old man", "our neighbour", "the doctor", "a student",
            "the president", "her mother", "the farmer", "a tourist", "the children", "my friend", "the pilot"]
VERBS = ["bought", "painted", "found", "sold", "cleaned", "described", "carried", "forgot", "lost", "repaired",
         "visited", "opened", "watched", "borrowed"]
OBJECTS = ["a red car", "the small house", "an old book", "the blue door", "a wooden chair", "the new phone",
           "a heavy box", "the green bicycle", "a broken lamp", "the big window", "a warm coat", "the kitchen table"]
TAILS = ["yesterday.", "last week.", "in the morning.", "before the storm.", "after school.", "near the river.",
         "during the holidays.", "with great care.", "for the first time.", "at night."]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct, varied sentences (deterministic)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        s = " ".join([rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)])
        s = s[0].upper() + s[1:]
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def noisy(sentence: str, rng: random.Random, p: float = 0.25) -> str:
    """A plausible imperfect prediction: some words dropped or swapped."""
    words = sentence.split()
    kept = [w for w in words if rng.random() > p] or words[:1]
    if len(kept) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)


def healthy_records(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows whose predictions are noisy copies of their references (a working system)."""
    rng = random.Random(seed)
    refs = sentences(n, seed)
    return [{"id": f"s{i:05d}", "reference": r, "prediction": noisy(r, rng)} for i, r in enumerate(refs)]


def collapsed_records(n: int, share: float = 0.9, seed: int = 0) -> list[dict]:
    """``share`` of the predictions are one generic sentence; the rest are noisy copies of the reference."""
    rng = random.Random(seed)
    refs = sentences(n, seed)
    generic = "The teacher bought a red car yesterday."
    n_generic = int(round(share * n))
    picks = set(rng.sample(range(n), n_generic))
    return [{"id": f"s{i:05d}", "reference": r, "prediction": generic if i in picks else noisy(r, rng)}
            for i, r in enumerate(refs)]


def collapsed_rows(n: int = 24) -> list[dict]:
    """Predictions where one generic sentence ("the man is happy") covers all but the last 4 inputs; short ids
    and references the app tests look for."""
    refs = [f"sentence number {i} about topic {i % 7}" for i in range(n)]
    preds = ["the man is happy"] * (n - 4) + refs[n - 4:]
    return [{"id": f"s{i:03d}", "reference": r, "prediction": p} for i, (r, p) in enumerate(zip(refs, preds))]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """One JSON object per line (UTF-8), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def write_predictions(run_dir: Path, epoch: int, rows: list[dict]) -> Path:
    """A run's predictions file for `epoch`, named as the trainer names it."""
    return write_jsonl(run_dir / f"predictions_epoch{epoch}.jsonl", rows)


def read_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSONL file, parsed."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
