"""Learning-rate schedules: linear warmup, then half-cycle cosine to `min_lr` or ReduceLROnPlateau on val BLEU."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from slt.train.config import TrainConfig


class WarmupSchedule:
    """Stepped once per optimiser step (`step()`) and once per evaluation (`on_eval(bleu)`).

    cosine: LambdaLR with warmup then cosine from each group's peak lr down to `min_lr`.
    plateau: linear warmup set by hand, then torch's ReduceLROnPlateau (mode max on validation BLEU).
    """

    def __init__(self, optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        self.optimizer = optimizer
        self.kind = cfg.scheduler
        self.total_steps = max(1, cfg.epochs * steps_per_epoch)
        self.warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.steps_done = 0
        self.peak_lrs = [group["initial_lr"] if "initial_lr" in group else group["lr"]
                         for group in optimizer.param_groups]
        if self.kind == "cosine":
            lambdas = [self._cosine_factor(peak, cfg.min_lr) for peak in self.peak_lrs]
            self.scheduler = LambdaLR(optimizer, lambdas)
        else:
            self.scheduler = ReduceLROnPlateau(optimizer, mode="max", factor=cfg.plateau_factor,
                                               patience=cfg.plateau_patience, min_lr=cfg.min_lr)
            self._set_warmup_lr()

    def _warmup(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0

    def _cosine_factor(self, peak: float, min_lr: float):
        floor = min(1.0, min_lr / peak)

        def factor(step: int) -> float:
            if step < self.warmup_steps:
                return self._warmup(step)
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        return factor

    def _set_warmup_lr(self) -> None:
        if self.steps_done <= self.warmup_steps:
            for group, peak in zip(self.optimizer.param_groups, self.peak_lrs):
                group["lr"] = peak * self._warmup(self.steps_done)

    def step(self) -> None:
        """After each optimiser step."""
        self.steps_done += 1
        if self.kind == "cosine":
            self.scheduler.step()
        else:
            self._set_warmup_lr()

    def on_eval(self, bleu: float) -> None:
        """After each validation (plateau only; ignored during warmup)."""
        if self.kind == "plateau" and self.steps_done >= self.warmup_steps:
            self.scheduler.step(bleu)

    def state_dict(self) -> dict:
        return {"steps_done": self.steps_done, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps_done = state["steps_done"]
        self.scheduler.load_state_dict(state["scheduler"])
