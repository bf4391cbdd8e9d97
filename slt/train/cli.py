"""`python -m slt train --config cfg.json [--flag overrides] [--resume]` (also under torchrun for DDP).

A config with `stage1` / `stage2` sections is a two-stage chain (slt.train.chain): its steps run one after the
other, each in its own run dir under the chain's `run_dir`; it takes `--resume` and no field flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from slt.errors import TrainingError
from slt.train.config import TrainConfig, add_config_arguments, config_from_args, read_config_mapping


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or YAML file with TrainConfig fields (flags override it), or a "
                        "two-stage chain config (stage1 and stage2 sections, see slt.train.chain)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir (or the config's run_dir) from its last.pt")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.config:
        from slt.train.chain import is_chain_config

        data = read_config_mapping(args.config)
        if is_chain_config(data):
            return run_chain(args, data)
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


def run_chain(args: argparse.Namespace, data: dict) -> int:
    """A two-stage chain config: every field lives in the file (its stage1/stage2 sections), so flags are refused."""
    from slt.train.chain import Chain, ChainConfig

    flags = sorted("--" + key[4:].replace("_", "-") for key, value in vars(args).items()
                   if key.startswith(("cfg_", "dec_")) and value is not None)
    if flags:
        raise TrainingError(f"{args.config} is a two-stage chain config: set {flags} in its stage1/stage2 sections "
                            "(it takes --resume and no field flags)")
    summary = Chain(ChainConfig.from_dict(data, source=args.config), resume=args.resume).run()
    print(json.dumps(summary))
    return 0 if summary["state"] == "finished" else 3
