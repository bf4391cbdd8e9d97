"""fairseq2 generation plug-ins that fairseq2 0.8.1 lacks: a repetition penalty and a top-k + top-p sampler."""

from __future__ import annotations

import torch
from fairseq2.generation.sampling import Sampler
from fairseq2.generation.step_processor import StepProcessor
from torch import Tensor


class RepetitionPenaltyProcessor(StepProcessor):
    """Makes tokens already generated less likely (CTRL-style penalty), as a fairseq2 step processor.

    The first `prompt_len` positions (`</s> __lang__`) are not penalised: penalising `</s>` there would
    discourage ending the sentence.
    """

    def __init__(self, penalty: float, prompt_len: int) -> None:
        if penalty < 1.0:
            raise ValueError(f"`penalty` must be >= 1.0, got {penalty}")
        self._penalty = penalty
        self._prompt_len = prompt_len

    def __call__(self, seqs: Tensor, probs: Tensor, lprob: bool = False) -> None:
        generated = seqs[:, self._prompt_len :]
        if generated.numel() == 0 or self._penalty == 1.0:
            return
        seen = probs.gather(1, generated)
        # Log-probs are <= 0, so scaling them up lowers them; plain probabilities are divided instead.
        seen = seen * self._penalty if lprob else seen / self._penalty
        probs.scatter_(1, generated, seen)


class TopKTopPSampler(Sampler):
    """Samples the next token after keeping the `top_k` most likely (0 = all) and the nucleus of mass `top_p`.

    It draws from its own seeded `torch.Generator`, so a seed reproduces the same text without touching the
    global RNG.
    """

    def __init__(self, top_k: int = 0, top_p: float = 1.0, seed: int | None = None) -> None:
        self._top_k = top_k
        self._top_p = top_p
        self._seed = seed
        self._generator: torch.Generator | None = None

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            if self._seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(self._seed)
        return self._generator

    def sample(self, probs: Tensor) -> Tensor:
        # Step processors may have zeroed entries; renormalise before truncating.
        probs = probs / probs.sum(dim=-1, keepdim=True)
        sorted_probs, sorted_idx = torch.sort(probs, dim=-1, descending=True)
        if 0 < self._top_k < sorted_probs.size(-1):
            sorted_probs[:, self._top_k :] = 0.0
        if self._top_p < 1.0:
            before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
            sorted_probs[before >= self._top_p * sorted_probs.sum(dim=-1, keepdim=True)] = 0.0
        picks = torch.multinomial(sorted_probs, num_samples=1, generator=self._rng(probs.device))
        return sorted_idx.gather(-1, picks).squeeze(-1)
