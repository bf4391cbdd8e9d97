"""`python -m slt <command>`: one entry point, one module per command.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only when its
command is used, so ``python -m slt models`` does not pay for importing torch models or fairseq2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from slt.errors import SLTError, os_error_message

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "translate": ("slt.cli.translate", "translate signed video clips into text"),
    "captions": ("slt.cli.captions", "timed captions of a long signed video (segments, SRT/WebVTT/JSON)"),
    "live": ("slt.cli.live", "live captions: play a video file as a camera (--realtime) and caption as it goes"),
    "models": ("slt.cli.models", "list model sets: what is cached, what would be downloaded"),
    "extract-features": ("slt.data.extract",
                         "run preprocessing + SignHiera over a manifest, one [N,768] tensor per clip"),
    "crop-cache": ("slt.data.crop_cache", "cache the uint8 signer crops of a manifest for training from video"),
    "synth": ("slt.data.synth.cli", "generate the synthetic signing corpus (videos + manifests)"),
    "demo": ("slt.demo.cli", "build or evaluate the offline demo model set"),
    "train": ("slt.train.cli", "fine-tune (sonar-finetune, t5-bridge, scratch, signhiera-finetune; or a two-stage "
                               "chain config)"),
    "evaluate": ("slt.train.evaluate", "evaluate an encoder or a run on a manifest split"),
    "tune": ("slt.train.tune", "hyperparameter search with Optuna"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    parser = argparse.ArgumentParser(prog="python -m slt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (keeps `--help` and light commands fast).
        if argv and argv[0] == name:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
            chosen = sub_parser
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except SLTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # unreadable input, a file where a folder belongs, a full disk: one line, no traceback
        print(f"error: {os_error_message(error)}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:  # readers that know the file name say it; this is the fallback
        print(f"error: a file is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8",
              file=sys.stderr)
        return 1


def _fast_exit() -> None:
    """For `python -m slt` only (a caller of main() keeps its own process): the command is done, so freeze every
    object the process holds, so that the interpreter's last garbage
    collection at exit does not walk them all (torch, transformers and fairseq2 make millions of objects: that walk
    took 1.0-1.4 s of each command on the 2-core machine, 0.2 s frozen). Files are closed and output flushed as
    before; only reference cycles still alive now are not collected, and Python promises no finalizers for objects
    alive at exit anyway."""
    import gc

    gc.freeze()


if __name__ == "__main__":
    code = main()
    _fast_exit()
    sys.exit(code)
