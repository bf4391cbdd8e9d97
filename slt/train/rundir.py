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

from slt.train.tracking import open_mirrors
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
            for mirror in self.mirrors:
                mirror.log_predictions(path, rows)
        return path

    def set_status(self, state: str, **fields: Any) -> None:
        """status.json: {"state": running|finished|stopped|failed, "epoch", "step", "best_bleu", "pid", "message"}."""
        if self.enabled:
            atomic_write_json(self.path / "status.json", {"state": state, "pid": os.getpid(), **fields})

    def add_optional_mirrors(self, tensorboard: bool, wandb: bool, mlflow: bool, config: dict) -> None:
        """Attach the requested tracker mirrors that are installed (slt.train.tracking); warn about the others."""
        if self.enabled:
            self.mirrors.extend(open_mirrors(self.path, config, tensorboard=tensorboard, wandb=wandb, mlflow=mlflow))
