"""`python -m slt train --config cfg.json [--flag overrides] [--resume]` (also under torchrun for DDP)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from slt.train.config import TrainConfig, add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or YAML file with TrainConfig fields (flags override it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir (or the config's run_dir) from its last.pt")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from slt.train.trainer import Trainer  # heavy imports only once the arguments are fine

    if args.resume:
        run_dir = Path(args.cfg_run_dir or (TrainConfig.load(args.config).run_dir if args.config else "runs/run"))
        saved = run_dir / "config.json"
        base = TrainConfig.load(saved) if saved.exists() else None
        cfg = config_from_args(args, base=base)
    else:
        cfg = config_from_args(args)
    summary = Trainer(cfg, resume=args.resume).fit()
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0 if summary["state"] == "finished" else 3
