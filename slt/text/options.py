"""User-facing text decoding options (beam search or sampling), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from slt.errors import DecodingOptionsError


@dataclass(frozen=True)
class DecodingOptions:
    """How the SONAR text decoder turns a sentence embedding into text.

    beam_size: beams of fairseq2's beam search (1 = greedy); ignored when `sampling`.
    max_len: most generated tokens per sentence, EOS included (fairseq2's `max_gen_len`).
    len_penalty: fairseq2 length penalty (>1 favours longer hypotheses).
    no_repeat_ngram_size: block any n-gram of this size from repeating (0 = off).
    repetition_penalty: >1 makes already generated tokens less likely (1 = off).
    sampling / temperature / top_k / top_p / seed: ancestral sampling; top_k 0 and top_p 1 mean no truncation;
        the same seed gives the same text.
    """

    beam_size: int = 5
    max_len: int = 128
    len_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    sampling: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.beam_size, int) and self.beam_size >= 1,
             f"beam_size must be an integer >= 1, got {self.beam_size!r}"),
            (isinstance(self.max_len, int) and 1 <= self.max_len <= 512,
             f"max_len must be an integer in 1..512 (the decoder's position limit), got {self.max_len!r}"),
            (self.len_penalty > 0, f"len_penalty must be > 0, got {self.len_penalty!r}"),
            (isinstance(self.no_repeat_ngram_size, int) and self.no_repeat_ngram_size >= 0,
             f"no_repeat_ngram_size must be an integer >= 0 (0 = off), got {self.no_repeat_ngram_size!r}"),
            (self.repetition_penalty >= 1.0,
             f"repetition_penalty must be >= 1.0 (1.0 = off), got {self.repetition_penalty!r}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature!r}"),
            (isinstance(self.top_k, int) and self.top_k >= 0,
             f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}"),
            (0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p!r}"),
            (self.seed is None or isinstance(self.seed, int), f"seed must be an integer or None, got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DecodingOptionsError(message)


def check_sonar_options(options: DecodingOptions) -> None:
    """What the SONAR text decoder cannot honour, whichever backend runs it. Its prompt is ``</s> __lang__``: an
    n-gram size of 1 forbids every token already present, ``</s>`` included, so no output could end (each would
    run to max_len; fairseq2 behaves so too). T5 generation (the t5-bridge recipe) has no such prompt and accepts 1."""
    if options.no_repeat_ngram_size == 1:
        raise DecodingOptionsError(
            "no_repeat_ngram_size=1 would forbid the end-of-sentence token (it is part of the SONAR decoder's "
            "prompt), so every translation would run to max_len; use 0 (off) or 2 or more")
