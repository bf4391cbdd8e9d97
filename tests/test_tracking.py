"""Tracker mirrors with the real packages: a tiny training run with TensorBoard, MLflow (local file store) and W&B
(offline) on, then each tracker's own files are read back and must hold what metrics.jsonl and the predictions files
hold; a resume continues the same MLflow and W&B runs."""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path

import pytest

from slt.text import DecodingOptions
from slt.train.config import TrainConfig
from slt.train.tracking import numeric_fields
from tests.helpers import features as F
from tests.helpers.predictions import read_jsonl


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    # Imported here: slt.text / the trainer import fairseq2 (seconds) and the fixture is the only user.
    from slt.text import pretrain_text_decoder
    from slt.train.trainer import Trainer

    root = tmp_path_factory.mktemp("tracking")
    decoder, tokenizer, _ = pretrain_text_decoder(F.DOMAIN_SENTENCES, root / "text", model_dim=F.MODEL_DIM, steps=20,
                                                  seed=0, vocab_size=64, name_prefix="tracking_tiny")
    train, val = F.split_sentences()
    cfg = TrainConfig(
        train_features=str(F.write_domain(root / "B", train[:12], "B", 3)),
        val_features=str(F.write_domain(root / "B", val[:6], "B", 4, name="val.tsv", prefix="v")),
        run_dir=str(root / "run"), base_encoder=str(F.tiny_encoder_checkpoint(root / "enc0.pt")), decoder=decoder,
        tokenizer=tokenizer, asset_cards=str(root / "text" / "text_assets.yaml"), epochs=1, batch_size=6, lr=3e-3,
        warmup_epochs=0.5, seed=0, log_every=1, decoding=DecodingOptions(beam_size=1, max_len=8),
        tensorboard=True, mlflow=True, wandb=True).validate()
    Trainer(cfg).fit()
    # A second epoch in a resumed process: the same MLflow / W&B runs continue.
    Trainer(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), resume=True).fit()
    return root / "run"


def _expected(run: Path) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {metric: {step: last value}} (trackers plot the numeric fields at each line's step)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for record in read_jsonl(run / "metrics.jsonl"):
        for key, value in numeric_fields(record).items():
            out[key][int(record["step"])] = value
    return out


def test_tensorboard_event_files_hold_the_metrics_and_predictions(tracked_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    expected = _expected(tracked_run)
    assert {"train_loss", "val_loss", "bleu", "chrf", "lr"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for key, by_step in expected.items():
        got = {e.step: e.value for e in events.Scalars(key)}  # a redone step: the later value wins
        assert got == pytest.approx(by_step, rel=1e-6), key
    texts = {tag: events.Tensors(tag) for tag in events.Tags()["tensors"] if tag.startswith("predictions/")}
    assert set(texts) == {"predictions/predictions_epoch1/text_summary", "predictions/predictions_epoch2/text_summary"}
    table = texts["predictions/predictions_epoch2/text_summary"][-1].tensor_proto.string_val[0].decode()
    for row in read_jsonl(tracked_run / "predictions_epoch2.jsonl"):
        assert f"| {row['id']} | {row['reference']} | {row['prediction']} |" in table


def test_mlflow_file_store_holds_one_run_with_metrics_params_and_artifacts(tracked_run: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=(tracked_run / "mlruns").resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("slt").experiment_id])
    assert len(runs) == 1  # the resume continued it
    run = runs[0]
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.003" and run.data.params["decoding.beam_size"] == "1"
    for key, by_step in _expected(tracked_run).items():
        history = client.get_metric_history(run.info.run_id, key)
        got = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
        assert got == pytest.approx(by_step), key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "predictions")}
    assert artifacts == {"predictions/predictions_epoch1.jsonl", "predictions/predictions_epoch2.jsonl"}
    local = Path(client.download_artifacts(run.info.run_id, "predictions/predictions_epoch2.jsonl",
                                           str(tracked_run.parent)))
    assert local.read_bytes() == (tracked_run / "predictions_epoch2.jsonl").read_bytes()


def _wandb_records(path: Path) -> list[bytes]:
    """The protobuf records of a .wandb file: a 7-byte file header, then LevelDB-log blocks of 32 KiB whose records
    have a 7-byte header (checksum u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last)."""
    raw, block, pos = path.read_bytes(), 32768, 7
    assert raw[:4] == b":W&B"
    records, pending = [], b""
    while pos + 7 <= len(raw):
        room = block - pos % block
        _checksum, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if room < 7 or (kind == 0 and length == 0):
            pos += room  # block trailer padding
            continue
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(data)
        elif kind in (2, 3):
            pending += data
        else:
            records.append(pending + data)
            pending = b""
    return records


def test_wandb_offline_run_holds_the_metrics_and_prediction_tables(tracked_run: Path) -> None:
    from wandb.proto import wandb_internal_pb2

    ids = json.loads((tracked_run / "tracking.json").read_text())
    run_dirs = sorted((tracked_run / "wandb").glob(f"offline-run-*-{ids['wandb']}"))
    assert run_dirs, "no offline W&B run directory"
    history: dict[str, dict[int, object]] = defaultdict(dict)
    for run_dir in run_dirs:  # one directory per process; the resume appends to the same run id
        for data in _wandb_records(run_dir / f"run-{ids['wandb']}.wandb"):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                step = record.history.step.num
                for item in record.history.item:
                    history[item.key or "/".join(item.nested_key)][step] = json.loads(item.value_json)
    for key, by_step in _expected(tracked_run).items():
        assert history[key] == pytest.approx(by_step), key
    tables = list((run_dirs[-1] / "files" / "media" / "table" / "predictions").glob("predictions_epoch2_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    rows = read_jsonl(tracked_run / "predictions_epoch2.jsonl")
    assert [dict(zip(table["columns"], r)) for r in table["data"]] == rows
