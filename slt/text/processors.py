"""fairseq2 generation plug-ins that fairseq2 0.8.1 lacks: a repetition penalty and a top-k + top-p sampler.

The logic lives in `slt.text.generation` (shared with the transformers backend); these classes only adapt it to
fairseq2's `StepProcessor` / `Sampler` interfaces.
"""

from __future__ import annotations

from fairseq2.generation.sampling import Sampler
from fairseq2.generation.step_processor import StepProcessor
from torch import Tensor

from slt.text.generation import TopKTopP, penalise_repetition


class RepetitionPenaltyProcessor(StepProcessor):
    """Makes tokens already generated less likely (CTRL-style penalty); the first `prompt_len` positions
    (`</s> __lang__`) are not penalised."""

    def __init__(self, penalty: float, prompt_len: int) -> None:
        if penalty < 1.0:
            raise ValueError(f"`penalty` must be >= 1.0, got {penalty}")
        self._process = penalise_repetition(penalty, prompt_len)

    def __call__(self, seqs: Tensor, probs: Tensor, lprob: bool = False) -> None:
        self._process(seqs, probs, lprob)


class TopKTopPSampler(Sampler):
    """Samples after keeping the `top_k` most likely tokens (0 = all) and the nucleus of mass `top_p`, from its
    own seeded generator."""

    def __init__(self, top_k: int = 0, top_p: float = 1.0, seed: int | None = None) -> None:
        self._sampler = TopKTopP(top_k, top_p, seed)

    def sample(self, probs: Tensor) -> Tensor:
        return self._sampler.sample(probs)
