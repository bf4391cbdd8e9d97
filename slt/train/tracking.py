"""Experiment-tracker mirrors of a run directory: TensorBoard, MLflow and Weights & Biases.

metrics.jsonl and predictions_epochN.jsonl stay the record of a run (the UI and the analysis library read them);
a mirror copies every metrics line (numeric fields, at the line's ``step``) and every predictions file to one
tracker as it is written, so people who already follow their experiments there see these runs too:

- TensorBoard: event files in ``RUN/tensorboard`` (scalars per metric; each predictions file as a text table).
- MLflow: ``$MLFLOW_TRACKING_URI`` when set (a server, a database), else a local file store ``RUN/mlruns``
  (experiment "slt", run named after the run directory; flat config fields as params; predictions files as
  artifacts under ``predictions/``). MLflow 3 refuses new file stores unless ``MLFLOW_ALLOW_FILE_STORE=true``;
  the mirror sets it for its own default store only (a file store needs no server or database package).
- W&B: offline mode unless ``$WANDB_MODE`` says otherwise; the run lives in ``RUN/wandb/offline-run-*`` and
  ``wandb sync`` uploads it later. Predictions files are logged as ``wandb.Table`` objects.

A resumed run continues the same MLflow / W&B run (their ids are kept in ``RUN/tracking.json``). Steps a resume
redoes are logged again: TensorBoard shows the later value, MLflow keeps both points, W&B ignores steps lower than
the last one it has seen (its history is monotonic).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

from slt.utils.io import atomic_write_json

log = logging.getLogger("slt.train")

_IDS_FILE = "tracking.json"
# Predictions tables shown in TensorBoard's text tab are cut here (the full file is in the run directory).
_TENSORBOARD_MAX_ROWS = 200


class Mirror(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def log_predictions(self, path: Path, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def numeric_fields(record: dict[str, Any]) -> dict[str, float]:
    """The fields a tracker plots: numbers other than the step/epoch/time keys (booleans are not metrics)."""
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch", "time")}


def open_mirrors(run_dir: Path, config: dict[str, Any], tensorboard: bool, wandb: bool, mlflow: bool) -> list[Mirror]:
    """The requested mirrors that are installed; a missing package is a warning (the run itself goes on)."""
    makers = [(tensorboard, "tensorboard", lambda: TensorBoardMirror(run_dir)),
              (mlflow, "mlflow", lambda: MLflowMirror(run_dir, config)),
              (wandb, "wandb", lambda: WandbMirror(run_dir, config))]
    mirrors: list[Mirror] = []
    for wanted, name, make in makers:
        if not wanted:
            continue
        try:
            mirrors.append(make())
        except ImportError as exc:
            log.warning("%s logging asked for but the package is not installed (%s); skipping it", name, exc)
    return mirrors


def _read_ids(run_dir: Path) -> dict[str, str]:
    path = run_dir / _IDS_FILE
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError):
        log.warning("%s is unreadable; trackers start new runs", path)
        return {}


def _remember_id(run_dir: Path, tracker: str, run_id: str) -> None:
    atomic_write_json(run_dir / _IDS_FILE, {**_read_ids(run_dir), tracker: run_id})


def _flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dicts as dotted keys (``decoding.beam_size``): trackers' params are flat strings."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


class TensorBoardMirror:
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.step = 0

    def log(self, record: dict[str, Any]) -> None:
        self.step = int(record.get("step", self.step))
        for key, value in numeric_fields(record).items():
            self.writer.add_scalar(key, value, self.step)
        self.writer.flush()

    def log_predictions(self, path: Path, rows: list[dict[str, Any]]) -> None:
        def cell(value: Any) -> str:
            return str(value).replace("|", "\\|").replace("\n", " ")

        columns = ["id", "reference", "prediction", "sentence_bleu"]
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows[:_TENSORBOARD_MAX_ROWS]]
        self.writer.add_text(f"predictions/{path.stem}", "\n".join(lines), self.step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowMirror:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from mlflow import MlflowClient  # needs mlflow (or mlflow-skinny)

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        run_id = _read_ids(run_dir).get("mlflow")
        if run_id is None:
            experiment = self.client.get_experiment_by_name("slt")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("slt")
            run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
            _remember_id(run_dir, "mlflow", run_id)
            from mlflow.entities import Param

            self.client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in _flat_params(config).items()])
        self.run_id = run_id
        self.step = 0

    def log(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self.step = int(record.get("step", self.step))
        stamp = int(float(record.get("time", time.time())) * 1000)
        metrics = [Metric(k, v, stamp, self.step) for k, v in numeric_fields(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_predictions(self, path: Path, rows: list[dict[str, Any]]) -> None:
        self.client.log_artifact(self.run_id, str(path), "predictions")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbMirror:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        run_id = _read_ids(run_dir).get("wandb") or secrets.token_hex(6)
        _remember_id(run_dir, "wandb", run_id)
        settings = wandb.Settings(mode=os.environ.get("WANDB_MODE", "offline"), silent=True, console="off",
                                  x_disable_stats=True, disable_git=True, save_code=False)
        self.run = wandb.init(dir=str(run_dir), project=os.environ.get("WANDB_PROJECT", "slt"), name=run_dir.name,
                              id=run_id, resume="allow", config=config, settings=settings)
        self.step = 0

    def log(self, record: dict[str, Any]) -> None:
        self.step = int(record.get("step", self.step))
        values = numeric_fields(record)
        if values:
            self.run.log(values, step=self.step)

    def log_predictions(self, path: Path, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0]) if rows else ["id", "reference", "prediction"]
        table = self.wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
        self.run.log({f"predictions/{path.stem}": table}, step=self.step)

    def close(self) -> None:
        self.run.finish()
