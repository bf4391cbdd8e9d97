"""The training loop shared by every recipe.

AdamW (decay on weights only), warmup + cosine / plateau, clipping, AMP (float16 with a GradScaler, or bfloat16;
CUDA, or bfloat16 on a CPU when asked for), gradient accumulation, DDP,
early stopping on validation BLEU, atomic best/last checkpoints that resume exactly, a clear stop on NaN/inf
loss, and graceful SIGTERM/SIGINT. Everything a run does is written to its run directory as it happens.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from analysis.metrics import validation_scores
from slt.data.features import FeatureBatch
from slt.errors import ManifestError, TrainingError
from slt.runtime import (
    barrier,
    cleanup_distributed,
    on_stop_signals,
    pick_device,
    seed_everything,
    setup_distributed,
)
from slt.train import distributed as D
from slt.train.checkpoint import load_training_state, save_training_state, set_rng_state
from slt.train.config import TrainConfig
from slt.train.recipes import Recipe, get_recipe
from slt.train.rundir import RunDir
from slt.train.sampling import epoch_batches
from slt.train.schedule import WarmupSchedule

log = logging.getLogger("slt.train")


def amp_settings(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """(whether training steps run under autocast, its dtype). On CUDA `amp` turns it on with `amp_dtype`; on the
    CPU only `amp_dtype` bfloat16 does (CPU autocast has no float16 path worth using); elsewhere it stays off.
    Validation always runs in float32."""
    dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    on = cfg.amp and (device.type == "cuda" or (device.type == "cpu" and dtype == torch.bfloat16))
    return bool(on), dtype


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The random source a DataLoader draws its worker base seed from when it starts iterating.

    Without one it takes a draw from the global torch RNG, so a run resumed mid-epoch (RNG restored, then a new
    loader built for the rest of the epoch) would shift every later dropout mask away from the uninterrupted run.
    """
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""

    epoch: int = 1  # the epoch in progress (1-based)
    batches_done: int = 0  # batches of this epoch already trained (this rank's count; equal on all ranks)
    step: int = 0  # optimiser steps so far
    loss_sum: float = 0.0  # token-weighted train loss of this epoch so far (global)
    tokens: float = 0.0
    best_bleu: float = -1.0
    best_epoch: int = 0
    epochs_since_best: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    # The metrics line of the last finished epoch, saved with the epoch-end checkpoint so that a resume can redo
    # what follows that checkpoint (best.pt, the metrics line) if the process was killed before doing it.
    epoch_record: dict[str, Any] | None = None


class StopRequested(Exception):
    """Internal: SIGTERM/SIGINT arrived; the loop checkpoints and returns."""


class StopTraining(Exception):
    """Raise from an `on_evaluated` callback to end the run after that epoch (e.g. an Optuna pruner).

    The epoch's checkpoints and metrics are already written; `fit()` returns `{"state": "stopped", "reason":
    str(exception), ...}` and status.json says "stopped" with that reason (not "failed").
    """


# on_evaluated(epoch, scores): called on the main process after each validation, once the epoch is saved.
EvalCallback = Callable[[int, dict[str, float]], None]


class Trainer:
    """Build with a config, call `fit()`. `resume=True` continues from `run_dir/last.pt`.

    `on_evaluated(epoch, scores)` runs after every validation (main process only) with the epoch's scores
    (val_loss, bleu, bleu1..4, chrf, distinct_ratio); raising `StopTraining` there stops the run cleanly.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, recipe: Recipe | None = None,
                 on_evaluated: EvalCallback | None = None):
        self.cfg = cfg.validate()
        self.resume = resume
        self.on_evaluated = on_evaluated
        if not cfg.train_features or not cfg.val_features:
            raise TrainingError("train_features and val_features (features manifest paths) are required")
        self.device = pick_device(cfg.device)  # under torchrun: this rank's GPU
        self.dist = setup_distributed(self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.run = RunDir(cfg.run_dir, enabled=self.dist.is_main)
        self.recipe = recipe or get_recipe(cfg.recipe)
        self.use_amp, self.amp_dtype = amp_settings(cfg, self.device)
        self._stop_signal: int | None = None
        self._owns_status = False

    # ------------------------------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.train_set = self.recipe.dataset(cfg.train_features, cfg.max_samples, cfg, train=True)
        self.val_set = self.recipe.dataset(cfg.val_features, cfg.max_val_samples or cfg.max_samples, cfg, train=False)
        if self.dist.is_main and hasattr(self.val_set, "check_all"):
            self.val_set.check_all()  # read whole at every evaluation anyway; fail now, not after an epoch
        self.model = self.recipe.build(cfg, self.device)
        groups = self.recipe.param_groups(self.model, cfg)
        if not any(p.requires_grad for g in groups for p in g["params"]):
            raise TrainingError(f"recipe {cfg.recipe!r} built a model with nothing to train")
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        batches = len(epoch_batches(len(self.train_set), cfg.batch_size, self.dist.world_size, 0, cfg.seed, 1))
        if batches == 0:
            raise TrainingError(f"{len(self.train_set)} training samples cannot fill one batch on "
                                f"{self.dist.world_size} processes")
        self.steps_per_epoch = math.ceil(batches / cfg.grad_accum)
        self.schedule = WarmupSchedule(self.optimizer, cfg, self.steps_per_epoch)
        # Only float16 needs loss scaling (its range underflows small gradients); bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.ddp_model: nn.Module = self.model
        self._ddp_trainable: frozenset[str] | None = None
        self.progress = Progress()
        if self.resume:
            self._load(self.run.path / "last.pt")
        elif self.dist.is_main:
            self.run.path.mkdir(parents=True, exist_ok=True)
            if (self.run.path / "last.pt").exists():
                raise TrainingError(f"{self.run.path} already holds a run (last.pt); use --resume to continue it "
                                    "or choose another --run-dir")
            self.run.metrics_path.unlink(missing_ok=True)
        self._owns_status = True  # from here on a failure is this run's to report in status.json
        self._sync_ddp()  # after a resume, which may have unfrozen parts
        if self.dist.is_main:
            cfg.save(self.run.path / "config.json")
            self.run.add_optional_mirrors(cfg.tensorboard, cfg.wandb, cfg.mlflow, cfg.to_dict())

    def _trainable_names(self) -> frozenset[str]:
        return frozenset(name for name, param in self.model.named_parameters() if param.requires_grad)

    def _sync_ddp(self) -> None:
        """(Re)wrap the model in DDP whenever its set of trainable parameters changed.

        DDP only all-reduces the parameters that required grad when it was built, so after unfreezing an old
        wrapper would let each rank train the newly unfrozen weights on its own data and drift apart.
        """
        if not self.dist.enabled:
            return
        trainable = self._trainable_names()
        if trainable == self._ddp_trainable:
            return
        if self._ddp_trainable is not None:
            log.info("trainable parameters changed (%d -> %d tensors): rebuilding the DDP wrapper",
                     len(self._ddp_trainable), len(trainable))
            self.ddp_model = self.model
            gc.collect()  # the old wrapper's reducer removes its autograd hooks when it is freed
        self.ddp_model = DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=False)
        self._ddp_trainable = trainable

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": self.progress.__dict__.copy(),
            "config": self.cfg.to_dict(),
            "recipe": self.cfg.recipe,
            "world_size": self.dist.world_size,
        }

    def _save(self, name: str) -> None:
        if self.dist.is_main:
            save_training_state(self.run.path / name, **self._state())

    def _load(self, path: Path) -> None:
        state = load_training_state(path)
        if state.get("recipe") != self.cfg.recipe:
            raise TrainingError(f"{path} was written by recipe {state.get('recipe')!r}, not {self.cfg.recipe!r}")
        self.progress = Progress(**state["progress"])
        # Unfreezing hooks must see the same epoch as when the state was saved, before the optimizer loads.
        for epoch in range(1, self.progress.epoch + 1):
            self.recipe.on_epoch_start(self.model, epoch, self.cfg)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        at_epoch_end = self.progress.batches_done == 0 and self.progress.epoch_record is not None
        self.run.truncate_metrics(self.progress.step, self.progress.epoch_record if at_epoch_end else None)
        if at_epoch_end and self.progress.best_epoch == self.progress.epoch_record["epoch"] and \
                not self._best_is_current():
            # That epoch was the best, and the kill came before its best.pt was written. This state is exactly
            # what best.pt holds (the epoch-end state), so it is written from it.
            log.info("best.pt did not hold the best epoch (%d) yet: writing it from %s", self.progress.best_epoch, path)
            self._save("best.pt")
        log.info("resumed from %s at epoch %d, batch %d, step %d", path, self.progress.epoch,
                 self.progress.batches_done, self.progress.step)

    def _best_is_current(self) -> bool:
        """Whether best.pt holds the state at this step (read memory-mapped: only its small progress record)."""
        try:
            saved = torch.load(self.run.path / "best.pt", map_location="cpu", weights_only=False, mmap=True)
            return saved["progress"]["step"] == self.progress.step
        except Exception:  # missing, cut short, an older format: write it again
            return False

    # ------------------------------------------------------------------------------------------ signals
    def _signals(self):
        def handler(signum, _frame):
            self._stop_signal = signum
            log.warning("received %s: stopping after the current step", signal.Signals(signum).name)

        return on_stop_signals(handler)

    def _should_stop(self) -> bool:
        flag = [1.0 if self._stop_signal is not None else 0.0]
        return D.all_reduce_sum(flag, self.dist, self.device)[0] > 0

    # ------------------------------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop / signal); return a summary. Raises TrainingError on NaN/inf loss."""
        clean = False  # every rank got to a planned end (so they can meet once more before teardown)
        try:
            self._setup()
            self._status("running", "training")
            with self._signals():
                summary = self._fit()
            clean = True
            return summary
        except StopRequested:
            self._save("last.pt")
            message = (f"stopped by signal at epoch {self.progress.epoch}, step {self.progress.step}; "
                       "resume with --resume")
            log.warning(message)
            self._status("stopped", message)
            clean = True
            return {"state": "stopped", "reason": message, **self._summary()}
        except StopTraining as stop:  # asked for by on_evaluated; last.pt of that epoch is already written
            message = str(stop)
            log.info("stopped early: %s (last.pt kept; --resume continues)", message)
            self._status("stopped", message)
            clean = True
            return {"state": "stopped", "reason": message, **self._summary()}
        except BaseException as error:
            # Not before the run directory is known to be this run's: a refused --resume (unreadable last.pt) or a
            # fresh start over an existing run must leave that run's status.json as it is.
            if self._owns_status:
                try:
                    self._status("failed", f"{type(error).__name__}: {error}")
                except OSError as status_error:  # e.g. the disk is full: report the first error, not this one
                    log.warning("could not write status.json: %s", status_error)
            log.error("training failed: %s", error)
            raise
        finally:
            self.run.close()
            self._teardown_distributed(clean)

    def _teardown_distributed(self, clean: bool) -> None:
        """Free the DDP wrapper, then the process group. After a clean end every rank first meets at a barrier,
        so no gloo worker thread still releases a Python-owned tensor while the group is destroyed (that races
        for the GIL and can hang the process at exit)."""
        if self.dist.enabled and clean:
            barrier(self.dist)
        self.ddp_model = getattr(self, "model", None)
        gc.collect()
        cleanup_distributed()

    def _summary(self) -> dict[str, Any]:
        p = self.progress
        return {"epochs_done": p.epoch - 1, "step": p.step, "best_bleu": p.best_bleu, "best_epoch": p.best_epoch,
                "history": p.history}

    def _status(self, state: str, message: str) -> None:
        p = getattr(self, "progress", Progress())
        self.run.set_status(state, epoch=p.epoch, step=p.step, best_bleu=p.best_bleu, message=message)

    def _early_stop_due(self) -> bool:
        p = self.progress
        if p.epoch > 1 and p.batches_done == 0 and p.epochs_since_best >= self.cfg.early_stop_patience:
            log.info("early stop: no BLEU gain for %d epochs (best %.2f at epoch %d)",
                     p.epochs_since_best, p.best_bleu, p.best_epoch)
            return True
        return False

    def _fit(self) -> dict[str, Any]:
        """Epochs until the end, an early stop or a signal.

        Crash-consistency: at an epoch's end last.pt is written first and is the commit point. It carries the
        epoch's metrics record, so what follows it (best.pt, the metrics line, status.json) is redone by a resume
        when a kill came first, and what comes before it (predictions) is rewritten when the epoch is redone.
        A kill at any write boundary therefore resumes to the run directory an uninterrupted run writes.
        """
        cfg, p = self.cfg, self.progress
        while p.epoch <= cfg.epochs:
            if self._early_stop_due():  # resumed right after the epoch that used up the patience
                break
            if p.batches_done == 0:
                self.recipe.on_epoch_start(self.model, p.epoch, cfg)
                self._sync_ddp()
            self._train_epoch()
            epoch = p.epoch
            record: dict[str, Any] = {"epoch": epoch, "step": p.step,
                                      "train_loss": p.loss_sum / max(p.tokens, 1.0),
                                      "lr": self.optimizer.param_groups[0]["lr"]}
            improved = False
            scores = None
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                scores = self._evaluate(epoch)
                record.update(scores)
                self.schedule.on_eval(scores["bleu"])
                improved = scores["bleu"] > p.best_bleu
                if improved:
                    p.best_bleu, p.best_epoch, p.epochs_since_best = scores["bleu"], epoch, 0
                else:
                    p.epochs_since_best = epoch - p.best_epoch
            p.history.append({k: record[k] for k in record if k in ("epoch", "train_loss", "val_loss", "bleu")})
            p.epoch, p.batches_done, p.loss_sum, p.tokens = epoch + 1, 0, 0.0, 0.0
            p.epoch_record = {"time": time.time(), **record}
            self._save("last.pt")  # the commit point (see the docstring)
            if improved:
                self._save("best.pt")
            self.run.log_metrics(p.epoch_record)
            log.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()})
            self._status("running", f"epoch {epoch} done")
            if scores is not None:
                self._run_eval_callback(epoch, scores)
            if self._early_stop_due():
                break
            if self._should_stop():
                raise StopRequested
        if self.dist.is_main:
            self._export_best()
        self._status("finished", f"best BLEU {p.best_bleu:.2f} at epoch {p.best_epoch}")
        return {"state": "finished", **self._summary()}

    def _run_eval_callback(self, epoch: int, scores: dict[str, float]) -> None:
        """Call on_evaluated on the main process; every rank agrees on a StopTraining it raised."""
        if self.on_evaluated is None:
            return
        reason = ""
        if self.dist.is_main:
            try:
                self.on_evaluated(epoch, dict(scores))
            except StopTraining as stop:
                reason = str(stop) or f"stopped by the on_evaluated callback after epoch {epoch}"
        if D.all_reduce_sum([1.0 if reason else 0.0], self.dist, self.device)[0] > 0:
            raise StopTraining(reason or f"stopped by the main process's on_evaluated callback after epoch {epoch}")

    def _export_best(self) -> None:
        """Export the best epoch's weights (best.pt, by validation BLEU); last.pt keeps the final ones for resume.

        Afterwards `self.model` holds those best weights too, so it matches what was exported.
        """
        p, best = self.progress, self.run.path / "best.pt"
        if best.is_file():
            self.model.load_state_dict(load_training_state(best)["model"])
            source = f"the best epoch ({p.best_epoch}, BLEU {p.best_bleu:.2f}) from {best}"
        else:  # no validation has run in this directory's history (cannot happen with eval at the last epoch)
            source = f"the final epoch ({p.epoch - 1}); no best.pt was written"
        exported = self.recipe.export(self.model, self.run.path)
        log.info("exported %s: %s (last.pt keeps the final epoch for --resume)", source,
                 {k: str(v) for k, v in exported.items()})

    def _loader(self, batches: list[list[int]], dataset: Dataset) -> DataLoader:
        if hasattr(dataset, "set_epoch"):  # augmentation drawn per (seed, epoch, item): a resume sees the same
            dataset.set_epoch(self.progress.epoch)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=self.recipe.collate,
                          num_workers=self.cfg.num_workers, persistent_workers=False,
                          generator=loader_generator(self.cfg.seed, self.progress.epoch))

    def _train_epoch(self) -> None:
        cfg, p = self.cfg, self.progress
        batches = epoch_batches(len(self.train_set), cfg.batch_size, self.dist.world_size, self.dist.rank,
                                cfg.seed, p.epoch)
        start = p.batches_done  # batches of this epoch trained before (a resumed run); p.batches_done grows below
        remaining = batches[start:]
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            self._train_batches(remaining, start, len(batches))
        except ManifestError as error:  # an unusable features file: keep the steps done so far
            self._save("last.pt")
            raise TrainingError(f"{error}. Training stopped at epoch {p.epoch}, step {p.step} and saved "
                                f"{self.run.path / 'last.pt'}: fix that sample, then continue with --resume") from error

    def _train_batches(self, remaining: list[list[int]], start: int, n_batches: int) -> None:
        """Train on `remaining`, the batches after the first `start` of this epoch's `n_batches`."""
        cfg, p = self.cfg, self.progress
        group: list[FeatureBatch] = []
        wait = compute = 0.0
        samples = 0
        t_ask = time.perf_counter()
        for i, batch in enumerate(self._loader(remaining, self.train_set)):
            t_got = time.perf_counter()
            wait += t_got - t_ask
            group.append(batch)
            last_of_epoch = start + i + 1 == n_batches
            if len(group) == cfg.grad_accum or last_of_epoch:
                samples += self._optimizer_step(group)
                p.batches_done += len(group)
                group = []
                compute += time.perf_counter() - t_got
                if p.step % cfg.log_every == 0 or last_of_epoch:
                    self.run.log_metrics({"epoch": p.epoch, "step": p.step, "train_loss": self._last_loss,
                                          "lr": self.optimizer.param_groups[0]["lr"],
                                          "samples_per_s": samples * self.dist.world_size / max(wait + compute, 1e-9),
                                          "data_wait_share": wait / max(wait + compute, 1e-9)})
                if cfg.save_every_steps and p.step % cfg.save_every_steps == 0:
                    self._save("last.pt")
                if not last_of_epoch and self._should_stop():
                    raise StopRequested
            else:
                compute += time.perf_counter() - t_got
            t_ask = time.perf_counter()
        self.epoch_timing = {"wait": wait, "compute": compute, "samples": samples * self.dist.world_size}

    def _optimizer_step(self, group: list[FeatureBatch]) -> int:
        """One optimiser step over `group` micro-batches; the loss is the mean over every target token of the
        global batch (all ranks, all micro-batches), so any split of the batch gives the same gradient."""
        cfg, p = self.cfg, self.progress
        loss_sum = tokens = 0.0
        for j, batch in enumerate(group):
            batch = batch.to(self.device)
            sync = j == len(group) - 1
            ctx = self.ddp_model.no_sync() if (self.dist.enabled and not sync) else contextlib.nullcontext()
            with ctx:
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    mean_loss, n_tokens = self.recipe.loss(self.ddp_model, batch, cfg)
                if n_tokens <= len(batch):
                    raise TrainingError(f"step {p.step + 1}: the loss covers {n_tokens} tokens for {len(batch)} "
                                        "sentences; it must cover every target token, not one per sentence")
                # Agree on finiteness before backward, so that no rank waits forever in a gradient all-reduce.
                value = float(mean_loss.detach()) * n_tokens
                if not math.isfinite(D.all_reduce_sum([value], self.dist, self.device)[0]):
                    self._nan_stop(batch, value)
                self.scaler.scale(mean_loss.float() * n_tokens).backward()
            loss_sum += value
            tokens += n_tokens
        loss_sum, tokens = D.all_reduce_sum([loss_sum, tokens], self.dist, self.device)
        self.scaler.unscale_(self.optimizer)
        # DDP averaged the per-rank token sums over ranks: x world / global tokens = mean over all tokens.
        scale = self.dist.world_size / tokens
        params = [q for g in self.optimizer.param_groups for q in g["params"] if q.grad is not None]
        for q in params:
            q.grad.mul_(scale)
        if cfg.clip_grad > 0 and params:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        p.step += 1
        p.loss_sum += loss_sum
        p.tokens += tokens
        self._last_loss = loss_sum / tokens
        return sum(len(b) for b in group)

    def _nan_stop(self, batch: FeatureBatch, value: float) -> None:
        step = self.progress.step + 1
        rows = batch.features if isinstance(batch, FeatureBatch) else []  # clips (stage 1) are uint8: always finite
        bad_inputs = [i for i, row in zip(batch.ids, rows) if not torch.isfinite(row).all()]
        cause = (f"; non-finite input features in {bad_inputs}" if bad_inputs else
                 "; inputs are finite, so the model diverged (lower --lr, check --clip-grad)")
        raise TrainingError(
            f"Non-finite training loss ({value}) at step {step} (epoch {self.progress.epoch}, batch ids "
            f"{batch.ids}){cause}. The last good checkpoint is kept: {self.run.path / 'last.pt'}")

    # ------------------------------------------------------------------------------------------ eval
    @torch.no_grad()
    def _evaluate(self, epoch: int) -> dict[str, float]:
        """Validation loss + decoding on the main process; scores are broadcast to every rank."""
        values = [0.0] * 8
        if self.dist.is_main:
            scores = evaluate_split(self.recipe, self.model, self.val_set, self.cfg, self.device, self.run, epoch)
            if scores["distinct_ratio"] < 0.5 and len(self.val_set) > 2:
                log.warning("epoch %d: possible mode collapse: %.0f%% distinct predictions, the most common one "
                            "covers %.0f%%", epoch, 100 * scores["distinct_ratio"],
                            100 * scores["top_prediction_share"])
            keys = ["val_loss", "bleu", "bleu1", "bleu2", "bleu3", "bleu4", "chrf", "distinct_ratio"]
            values = [scores[k] for k in keys]
        values = D.broadcast_floats(values, self.dist, self.device)
        keys = ["val_loss", "bleu", "bleu1", "bleu2", "bleu3", "bleu4", "chrf", "distinct_ratio"]
        return dict(zip(keys, values))


@torch.no_grad()
def evaluate_split(recipe: Recipe, model: nn.Module, dataset: Dataset, cfg: TrainConfig,
                   device: torch.device, run: RunDir | None = None, epoch: int | None = None,
                   predictions_name: str | None = None) -> dict[str, Any]:
    """Teacher-forced loss, decoded predictions and corpus/sentence metrics over a whole split (streamed)."""
    was_training = model.training
    model.eval()
    loss_sum = tokens = 0.0
    ids: list[str] = []
    refs: list[str] = []
    hyps: list[str] = []
    decode_time = 0.0
    batches = epoch_batches(len(dataset), cfg.batch_size, 1, 0, cfg.seed, 0, shuffle=False)
    for batch in DataLoader(dataset, batch_sampler=batches, collate_fn=recipe.collate, num_workers=cfg.num_workers,
                            generator=loader_generator(cfg.seed, 0)):
        batch = batch.to(device)
        mean_loss, n_tokens = recipe.loss(model, batch, cfg)
        loss_sum += float(mean_loss) * n_tokens
        tokens += n_tokens
        start = time.perf_counter()
        hyps.extend(recipe.predict(model, batch, cfg))
        decode_time += time.perf_counter() - start
        ids.extend(batch.ids)
        refs.extend(batch.texts)
    model.train(was_training)
    corpus, rows = validation_scores(ids, refs, hyps)
    scores: dict[str, Any] = {"val_loss": loss_sum / max(tokens, 1.0), **corpus,
                              "seconds_per_clip": decode_time / max(len(hyps), 1)}
    if run is not None:
        run.write_predictions(epoch or 0, rows, predictions_name)
    scores["rows"] = rows
    return scores
