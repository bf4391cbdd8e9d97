"""`python -m slt models`: which model files are cached and which would be downloaded (and from where)."""

from __future__ import annotations

import argparse
import json

from slt.download import default_cache_dir
from slt.registry import demo_dir, describe_model_sets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace) -> int:
    rows = describe_model_sets()
    if args.json:
        print(json.dumps({"cache_dir": str(default_cache_dir()), "demo_dir": str(demo_dir()), "files": rows}, indent=2))
        return 0
    print(f"cache dir (SLT_CACHE_DIR): {default_cache_dir()}\ndemo dir (SLT_DEMO_DIR):   {demo_dir()}\n")
    for row in rows:
        state = "cached" if row["cached"] else "missing"
        size = f"{row['size_bytes'] / 1e6:,.1f} MB" if row["size_bytes"] else ""
        print(f"{row['set']:9} {row['role']:20} {state:13} {size:>12}  {row['file']}")
        if not row["cached"]:
            print(f"{'':44}would come from {row['url']} -> {row['path']}")
        if row.get("note"):
            print(f"{'':44}({row['note']})")
    return 0
