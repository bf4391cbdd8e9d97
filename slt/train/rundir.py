"""A run directory that a UI can follow live: metrics.jsonl, predictions_epochN.jsonl, status.json, train.log.

Lines are flushed as they are written; status.json is replaced atomically. Optional TensorBoard / W&B / MLflow
mirrors are used only when asked for and installed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from slt.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("slt.train")


class RunDir:
    """Writers for one run directory (only the main process writes)."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self.mirrors: list[Any] = []
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)
            self._attach_log_file()

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def _attach_log_file(self) -> None:
        target = str((self.path / "train.log").resolve())
        if any(getattr(h, "baseFilename", None) == target for h in log.handlers):
            return
        handler = logging.FileHandler(target, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    def close(self) -> None:
        for handler in list(log.handlers):
            if getattr(handler, "baseFilename", "").startswith(str(self.path.resolve())):
                handler.close()
                log.removeHandler(handler)
        for mirror in self.mirrors:
            mirror.close()
        self.mirrors.clear()

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (flushed) and mirror to the optional loggers."""
        if not self.enabled:
            return
        record = {"time": time.time(), **record}
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        for mirror in self.mirrors:
            mirror.log(record)

    def truncate_metrics(self, last_step: int) -> None:
        """On resume: drop lines written after the checkpoint being resumed (they will be redone)."""
        if not self.enabled or not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= last_step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed process
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept))

    def write_predictions(self, epoch: int, rows: list[dict[str, Any]], name: str | None = None) -> Path:
        """predictions_epoch{N}.jsonl: {"id","reference","prediction","sentence_bleu","chrf"} per line."""
        path = self.path / (name or f"predictions_epoch{epoch}.jsonl")
        if self.enabled:
            atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return path

    def set_status(self, state: str, **fields: Any) -> None:
        """status.json: {"state": running|finished|stopped|failed, "epoch", "step", "best_bleu", "pid", "message"}."""
        if self.enabled:
            atomic_write_json(self.path / "status.json", {"state": state, "pid": os.getpid(), **fields})

    def add_optional_mirrors(self, tensorboard: bool, wandb: bool, mlflow: bool, config: dict) -> None:
        """Attach the requested external loggers that are installed; warn about the others."""
        if not self.enabled:
            return
        if tensorboard:
            self._try(lambda: _TensorBoard(self.path / "tensorboard"), "tensorboard")
        if wandb:
            self._try(lambda: _WandB(self.path, config), "wandb")
        if mlflow:
            self._try(lambda: _MLflow(self.path, config), "mlflow")

    def _try(self, make, name: str) -> None:
        try:
            self.mirrors.append(make())
        except ImportError:
            log.warning("%s logging asked for but the package is not installed; skipping it", name)


def _numeric(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch", "time")}


class _TensorBoard:
    def __init__(self, path: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(str(path))

    def log(self, record: dict[str, Any]) -> None:
        for key, value in _numeric(record).items():
            self.writer.add_scalar(key, value, record.get("step", 0))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, path: Path, config: dict):
        import wandb

        self.run = wandb.init(dir=str(path), config=config, name=path.name)

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(_numeric(record), step=record.get("step", 0))

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, path: Path, config: dict):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=path.name)
        mlflow.log_params({k: v for k, v in config.items() if not isinstance(v, dict)})

    def log(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_numeric(record), step=int(record.get("step", 0)))

    def close(self) -> None:
        self.mlflow.end_run()
