"""`python -m slt live VIDEO [--realtime]`: play a file as if it were a camera and print captions as they appear."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slt.cli.captions import (
    add_engine_arguments,
    add_segmentation_arguments,
    engine_from_args,
    segmentation_from_args,
)
from slt.cli.translate import add_decoding_arguments, decoding_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a signed video, played as a camera")
    parser.add_argument("--realtime", action="store_true",
                        help="deliver frames at the video's pace (drop them when processing lags), as a camera does")
    parser.add_argument("--redetect", type=float, default=2.0, help="seconds between two face detections")
    parser.add_argument("--json", action="store_true", help="print one JSON object per caption (JSON lines)")
    add_engine_arguments(parser)
    add_segmentation_arguments(parser)
    add_decoding_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from slt.live import LiveCaptionSession, play_file

    segmentation = segmentation_from_args(args)
    engine, encoder, preprocess = engine_from_args(args)
    engine.load([encoder] if encoder else None)  # load before the clock starts, as the app does at start-up
    session = LiveCaptionSession(engine, args.lang, encoder, segmentation, preprocess, decoding_from_args(args),
                                 redetect_s=args.redetect)

    def show(caption) -> None:
        if args.json:
            print(json.dumps(caption.to_dict(), ensure_ascii=False), flush=True)
            return
        latency = "" if caption.latency_s is None else f"  (+{caption.latency_s:.2f} s)"
        for lang, text in caption.texts.items():
            print(f"{caption.start_s:8.2f} -> {caption.end_s:8.2f}  [{lang}] {text}{latency}", flush=True)

    counts = play_file(session, args.video, realtime=args.realtime, on_caption=show)
    latencies = [c.latency_s for c in session.captions if c.latency_s is not None and c.reason != "end"]
    if not args.json:
        summary = f"{len(session.captions)} captions, {counts['frames']} frames"
        if counts["dropped"]:
            summary += f" ({counts['dropped']} dropped while busy)"
        if latencies and args.realtime:
            summary += (f"; latency from the end of a sentence to its caption: median {np.median(latencies):.2f} s, "
                        f"max {np.max(latencies):.2f} s")
        print(summary)
    return 0
