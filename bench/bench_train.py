"""Training throughput: samples/s and the share of time spent waiting for data, per DataLoader worker count.

    python bench/bench_train.py --config cfg.json [--workers 0 2] [--epochs 1]

Each variant trains the config's recipe for `--epochs` in a fresh temporary run dir (evaluation only at the
end) and reads the trainer's own step records from metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slt.train.config import TrainConfig
from slt.train.trainer import Trainer


def bench(cfg: TrainConfig, workers: int, epochs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "run_dir": tmp, "num_workers": workers, "epochs": epochs,
                                     "eval_every": epochs, "log_every": 1})
        Trainer(cfg).fit()
        steps = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        last = [s for s in steps if "samples_per_s" in s][-1]  # cumulative figures for the last epoch
        return {"samples_per_s": last["samples_per_s"], "data_wait_share": last["data_wait_share"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    cfg = TrainConfig.load(args.config)
    rows = [(w, bench(cfg, w, args.epochs)) for w in args.workers]
    base = rows[0][1]["samples_per_s"]
    print(f"{'workers':>8} {'samples/s':>10} {'data wait':>10} {'vs first':>9}")
    for workers, r in rows:
        ratio = r["samples_per_s"] / base
        print(f"{workers:>8} {r['samples_per_s']:>10.1f} {r['data_wait_share']:>9.1%} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
