"""A run directory that a UI can follow live: metrics.jsonl, predictions_epochN.jsonl, status.json, train.log.

Lines are flushed as they are written; status.json is replaced atomically. Optional TensorBoard / W&B / MLflow
mirrors are used only when asked for and installed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from slt.train.tracking import open_mirrors
from slt.utils.io import atomic_write_json, atomic_write_text, write_boundary

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
        write_boundary(self.metrics_path)
        for mirror in self.mirrors:
            mirror.log(record)

    def truncate_metrics(self, last_step: int, epoch_record: dict[str, Any] | None = None) -> None:
        """On resume: drop lines written after the checkpoint being resumed (they will be redone).

        `epoch_record` is the summary line of the epoch that the checkpoint closed (stored in it, with its "time"):
        a kill after the checkpoint but before that line was appended would otherwise lose it, so it is kept
        exactly once whether or not it had been written.
        """
        if not self.enabled or not self.metrics_path.exists() and epoch_record is None:
            return
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines() if self.metrics_path.exists() else []
        kept = []
        for line in lines:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed process
            if epoch_record is not None and (item.get("time"), item.get("epoch")) == \
                    (epoch_record.get("time"), epoch_record.get("epoch")):
                continue  # re-added below, last
            if item.get("step", 0) <= last_step:
                kept.append(line)
        if epoch_record is not None:
            kept.append(json.dumps(epoch_record))
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
        """status.json: {"state": running|finished|stopped|failed, "epoch", "step", "best_bleu", "message",
        "pid", "pid_start", "host"}; read it with `read_status`, which knows a killed writer's "running" is stale."""
        if self.enabled:
            atomic_write_json(self.path / "status.json", {"state": state, **fields, "pid": os.getpid(),
                                                          "pid_start": process_start_time(os.getpid()),
                                                          "host": socket.gethostname()})

    def add_optional_mirrors(self, tensorboard: bool, wandb: bool, mlflow: bool, config: dict) -> None:
        """Attach the requested tracker mirrors that are installed (slt.train.tracking); warn about the others."""
        if self.enabled:
            self.mirrors.extend(open_mirrors(self.path, config, tensorboard=tensorboard, wandb=wandb, mlflow=mlflow))


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22); None if unknown or gone.

    Together with the pid it names one process: a later process that reuses the pid has another start time.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # a zombie has finished; only its exit status waits to be collected
        return None
    return int(fields[19])  # field 22 overall; fields[0] is field 3 (the state)


def writer_alive(status: dict[str, Any]) -> bool:
    """Whether the process that wrote `status` still runs (True when that cannot be judged from here)."""
    pid = status.get("pid")
    if not isinstance(pid, int) or status.get("host", socket.gethostname()) != socket.gethostname():
        return True  # another machine's process (shared run folder): trust the file
    if not Path("/proc/self/stat").exists():  # no procfs (macOS): existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    started = process_start_time(pid)
    return started is not None and status.get("pid_start", started) == started


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """A run's status.json ({} if there is none or it is unreadable), with a stale "running" corrected.

    A trainer killed with SIGKILL (or by the OOM killer, or a power cut) cannot write its final state, so its
    status.json says "running" forever; when its process is gone (or the pid now belongs to another process)
    the run is reported as "stopped", which is what it is: last.pt holds its last checkpoint for --resume.
    """
    try:
        status = json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(status, dict):
        return {}
    if status.get("state") == "running" and not writer_alive(status):
        status["message"] = (f"the training process (pid {status.get('pid')}) ended without a final status "
                             f"(killed or crashed) after: {status.get('message', '')}; --resume continues from last.pt")
        status["state"] = "stopped"
    return status
