"""Backend-free text generation for the SONAR decoder: beam search and sampling that choose the same tokens as
fairseq2 0.8.1's `BeamSearchSeq2SeqGenerator` / `SamplingSeq2SeqGenerator` do for SONAR's prompts.

Why our own loops rather than transformers' `generate`: token-identical output needs the same algorithm, not just
the same model. fairseq2's beam search keeps the best `2 x beam` candidates of each sentence, moves candidates
that end in EOS *among the first `beam` of them* to the finished list (score divided by `generated_len **
len_penalty`, the language token counted), continues with the first `beam` that do not, stops a sentence once
it has `beam` finished hypotheses, forces EOS at the last step, and picks the best finished hypothesis (stable
sort). transformers' beam search differs in candidate count, early stopping and length normalisation, so the
same model would give different text. These loops mirror fairseq2's rules step for step, over any model that
decodes incrementally (`IncrementalSession`); `slt.text.hf_decoder` runs them on transformers' M2M100 decoder.

The prompt is `</s> __{lang}__` (the same length for every row), as sonar-space's target-mode tokenizer builds it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torch.nn.functional import log_softmax, softmax

# A step processor edits next-token scores in place: (seqs [N, S] so far, scores [N, V], scores_are_log_probs).
StepProcessor = Callable[[Tensor, Tensor, bool], None]


class IncrementalSession(Protocol):
    """One generation's model state: decodes new tokens given everything decoded before (a KV cache)."""

    def decode(self, tokens: Tensor) -> Tensor:
        """Logits [N, S_new, V] for the next `tokens` [N, S_new] of every row."""

    def reorder(self, order: Tensor) -> None:
        """Keep (and repeat) rows: row i of the new state is row `order[i]` of the old one."""


@dataclass(frozen=True)
class GenerationLimits:
    """Token ids and lengths shared by both algorithms (fairseq2's `VocabularyInfo` and `max_gen_len`)."""

    eos_idx: int
    pad_idx: int | None
    max_len: int  # generated tokens at most, EOS included
    max_seq_len: int  # the decoder's position limit, prompt included


def block_ngrams(ngram_size: int) -> StepProcessor:
    """Forbid any token that would repeat an n-gram of `ngram_size` already in the sequence (prompt included)."""

    def process(seqs: Tensor, scores: Tensor, lprob: bool) -> None:
        blocked = -torch.inf if lprob else 0.0
        seq_len = seqs.size(1) + 1
        if ngram_size >= seq_len:
            return
        if ngram_size == 1:  # no earlier token may come again
            rows = torch.arange(seqs.size(0), device=scores.device).unsqueeze(1)
            scores[rows, seqs] = blocked
            return
        prefix = seqs[:, -ngram_size + 1 :]  # [N, G-1]: the n-gram the next token would complete
        for start in range(seq_len - ngram_size):
            same = ~(seqs[:, start : start + ngram_size - 1] - prefix).any(dim=-1)  # [N]
            scores[same, seqs[same, start + ngram_size - 1]] = blocked

    return process


def penalise_repetition(penalty: float, prompt_len: int) -> StepProcessor:
    """CTRL-style penalty on tokens already generated; the `</s> __lang__` prompt is not penalised (penalising
    `</s>` there would discourage ending the sentence). Log-probs (<= 0) are multiplied, probabilities divided."""

    def process(seqs: Tensor, scores: Tensor, lprob: bool) -> None:
        generated = seqs[:, prompt_len:]
        if generated.numel() == 0 or penalty == 1.0:
            return
        seen = scores.gather(1, generated)
        seen = seen * penalty if lprob else seen / penalty
        scores.scatter_(1, generated, seen)

    return process


class TopKTopP:
    """Samples the next token after keeping the `top_k` most likely (0 = all) and the nucleus of mass `top_p`,
    from its own seeded `torch.Generator` (a seed reproduces the text without touching the global RNG)."""

    def __init__(self, top_k: int = 0, top_p: float = 1.0, seed: int | None = None) -> None:
        self.top_k, self.top_p, self.seed = top_k, top_p, seed
        self._generator: torch.Generator | None = None

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            if self.seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(self.seed)
        return self._generator

    def sample(self, probs: Tensor) -> Tensor:
        """[N, V] probabilities -> [N] token ids."""
        probs = probs / probs.sum(dim=-1, keepdim=True)  # processors may have zeroed entries
        sorted_probs, sorted_idx = torch.sort(probs, dim=-1, descending=True)
        if 0 < self.top_k < sorted_probs.size(-1):
            sorted_probs[:, self.top_k :] = 0.0
        if self.top_p < 1.0:
            before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
            sorted_probs[before >= self.top_p * sorted_probs.sum(dim=-1, keepdim=True)] = 0.0
        picks = torch.multinomial(sorted_probs, num_samples=1, generator=self._rng(probs.device))
        return sorted_idx.gather(-1, picks).squeeze(-1)


def _prefill(session: IncrementalSession, seqs: Tensor, prompt_len: int, temperature: float) -> Tensor:
    """Run the prompt except its last token through the model; [N, P-1, V] float32 logits / temperature."""
    logits = session.decode(seqs[:, : prompt_len - 1])
    if temperature != 1.0:
        logits = logits / temperature
    return logits


def _bootstrap(prompts: Tensor, limits: GenerationLimits) -> tuple[Tensor, int, int]:
    num, prompt_len = prompts.shape
    if prompt_len < 2:
        raise ValueError(f"the prompt must be `</s> __lang__` (2 tokens), got {prompt_len}")
    total = min(limits.max_seq_len, prompt_len + limits.max_len)  # fairseq2's effective sequence limit
    if prompt_len >= total:
        raise ValueError(f"the prompt ({prompt_len} tokens) leaves no room under the {total}-token limit")
    seqs = torch.empty((num, total), device=prompts.device, dtype=torch.int64)
    seqs[:, :prompt_len] = prompts
    return seqs, prompt_len, total


def beam_search(
    session: IncrementalSession,
    prompts: Tensor,
    limits: GenerationLimits,
    beam_size: int,
    len_penalty: float = 1.0,
    temperature: float = 1.0,
    processors: Sequence[StepProcessor] = (),
) -> list[Tensor]:
    """The best hypothesis per prompt row (generated tokens, final EOS included), chosen as fairseq2 does.

    `prompts` [N, P] are the rows' prompts; the session must already hold each row's conditioning.
    """
    seqs, prompt_len, total = _bootstrap(prompts, limits)
    num = seqs.size(0)
    step_scores = torch.zeros((num, total), device=seqs.device, dtype=torch.float32)  # cumulative log-probs
    lprobs = log_softmax(_prefill(session, seqs, prompt_len, temperature), dim=-1, dtype=torch.float32)
    prompt_scores = torch.gather(lprobs, -1, seqs[:, 1:prompt_len].unsqueeze(-1)).squeeze(-1).cumsum(-1)
    step_scores[:, 1:prompt_len] = prompt_scores + step_scores[:, :1]
    beam_sizes = [1] * num  # rows per prompt; a prompt leaves the batch once it has `beam_size` hypotheses
    prompt_of_row = torch.arange(num, device=seqs.device)
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(num)]

    for step in range(prompt_len, total):
        logits = session.decode(seqs[:, step - 1 : step])
        if temperature != 1.0:
            logits = logits / temperature
        lprobs = log_softmax(logits, dim=-1, dtype=torch.float32).squeeze(1)  # [N, V]
        if lprobs.isnan().any():
            raise ValueError(f"the decoder produced NaN scores at step {step}")
        if step == total - 1:  # the last position: EOS whatever its score
            eos = limits.eos_idx
            lprobs[:, :eos] = -torch.inf
            lprobs[:, eos + 1 :] = -torch.inf
        else:
            for process in processors:
                process(seqs[:, :step], lprobs, True)
            if limits.pad_idx is not None:
                lprobs[:, limits.pad_idx] = -torch.inf

        offset, next_sizes, parts = 0, [], []
        finish = functools.partial(_finish, step=step, seqs=seqs, step_scores=step_scores, prompt_len=prompt_len,
                                   prompt_of_row=prompt_of_row, finished=finished, beam_size=beam_size,
                                   len_penalty=len_penalty, eos_idx=limits.eos_idx)
        beams = zip(lprobs.split(beam_sizes), step_scores.split(beam_sizes), strict=True)
        for rows, (beam_lprobs, beam_scores) in enumerate(beams):
            kept = _beam_step(beam_lprobs, beam_scores[:, step - 1], offset, beam_size, limits.eos_idx, finish)
            offset += beam_sizes[rows]
            if kept is not None:
                next_sizes.append(len(kept[0]))
                parts.append(kept)
        if not parts:
            break
        beam_sizes = next_sizes
        order = torch.cat([p[0] for p in parts])
        session.reorder(order)
        prompt_of_row = prompt_of_row.index_select(0, order)
        seqs = seqs.index_select(0, order)
        step_scores = step_scores.index_select(0, order)
        seqs[:, step] = torch.cat([p[1] for p in parts])
        step_scores[:, step] = torch.cat([p[2] for p in parts])

    best = []
    for row, hypotheses in enumerate(finished):
        if not hypotheses:
            raise ValueError(f"beam search finished no hypothesis for row {row}")
        best.append(sorted(hypotheses, key=lambda h: h[0], reverse=True)[0][1])  # stable, like fairseq2's sort
    return best


def _beam_step(lprobs, last_scores, offset, beam_size, eos_idx, finish) -> tuple[Tensor, Tensor, Tensor] | None:
    """One sentence's candidates: (rows, tokens, scores) to continue with, or None when it is complete."""
    vocab = lprobs.size(1)
    totals = (lprobs + last_scores.unsqueeze(-1)).view(-1)  # [n_rows x V] cumulative scores
    top_scores, top_indices = torch.topk(totals, k=min(2 * beam_size, vocab))
    rows = top_indices // vocab + offset
    tokens = top_indices % vocab
    ends = tokens == eos_idx
    # Only EOS among the first `beam_size` candidates finishes a hypothesis (as in fairseq).
    first_ends = ends[:beam_size]
    if first_ends.any():
        for row, score in zip(rows[:beam_size][first_ends], top_scores[:beam_size][first_ends], strict=True):
            if finish(int(row), score):
                return None
        keep = ~ends
        rows, tokens, top_scores = rows[keep], tokens[keep], top_scores[keep]
    return rows[:beam_size], tokens[:beam_size], top_scores[:beam_size]


def _finish(row, score, *, step, seqs, step_scores, prompt_len, prompt_of_row, finished, beam_size, len_penalty,
            eos_idx) -> bool:
    """Record row `row` ending in EOS at `step`; True when its prompt now has `beam_size` hypotheses."""
    seqs[row, step] = eos_idx
    step_scores[row, step] = score
    tokens = seqs[row, prompt_len : step + 1].clone()
    # The first position (`</s>`) has no score, so it is not counted: (step + 1) - 1 tokens.
    score = score / step**len_penalty
    hypotheses = finished[int(prompt_of_row[row])]
    hypotheses.append((float(score), tokens))
    return len(hypotheses) == beam_size


def sample(
    session: IncrementalSession,
    prompts: Tensor,
    limits: GenerationLimits,
    sampler: TopKTopP,
    temperature: float = 1.0,
    processors: Sequence[StepProcessor] = (),
) -> list[Tensor]:
    """One sampled sequence per prompt row (generated tokens, final EOS included), drawn as fairseq2 draws them."""
    seqs, prompt_len, total = _bootstrap(prompts, limits)
    num = seqs.size(0)
    _prefill(session, seqs, prompt_len, temperature)  # fills the model state; the prompt is given
    prompt_of_row = torch.arange(num, device=seqs.device)
    outputs: list[Tensor | None] = [None] * num
    for step in range(prompt_len, total):
        logits = session.decode(seqs[:, step - 1 : step])
        if temperature != 1.0:
            logits = logits / temperature
        probs = softmax(logits, dim=-1, dtype=torch.float32).squeeze(1)  # [N, V]
        if probs.isnan().any():
            raise ValueError(f"the decoder produced NaN probabilities at step {step}")
        if step == total - 1:
            tokens = seqs.new_full((seqs.size(0),), limits.eos_idx)
        else:
            for process in processors:
                process(seqs[:, :step], probs, False)
            if limits.pad_idx is not None:
                probs[:, limits.pad_idx] = 0
            tokens = sampler.sample(probs)
        ended = tokens == limits.eos_idx
        seqs[:, step] = tokens
        if ended.any():
            for row in ended.nonzero():
                outputs[int(prompt_of_row[int(row)])] = seqs[int(row), prompt_len : step + 1].clone()
            active = (~ended).nonzero().squeeze(-1)
            if len(active) == 0:
                break
            session.reorder(active)
            prompt_of_row = prompt_of_row.index_select(0, active)
            seqs = seqs.index_select(0, active)
    missing = [row for row, out in enumerate(outputs) if out is None]
    if missing:
        raise ValueError(f"sampling finished no sequence for rows {missing[:5]}")
    return outputs  # type: ignore[return-value]
