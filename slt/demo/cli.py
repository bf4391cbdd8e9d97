"""`python -m slt demo build|eval`: the offline demo model set."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from slt.modelset import demo_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["build", "eval"])
    parser.add_argument("--out", default=None, help="bundle folder (default: $SLT_DEMO_DIR or checkpoints/demo)")
    parser.add_argument("--force", action="store_true", help="rebuild from scratch")
    parser.add_argument("--quick", action="store_true", help="a smaller build (tests, quick looks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="eval: print rows as JSON")


def run(args: argparse.Namespace) -> int:
    # Imported here for start-up time: building pulls in the data and training code.
    from slt.demo.build import DemoRecipe, build
    from slt.demo.evaluate import evaluate_demo, format_table

    root = Path(args.out) if args.out else demo_dir()
    if args.action == "build":
        logging.basicConfig(level=logging.WARNING)
        recipe = DemoRecipe.quick() if args.quick else DemoRecipe()
        recipe.seed = args.seed
        path = build(root, recipe, force=args.force)
        print(f"demo model set written: {path}")
        return 0
    rows = evaluate_demo(root)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
