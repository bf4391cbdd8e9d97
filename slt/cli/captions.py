"""`python -m slt captions VIDEO [--lang ...] [--srt OUT.srt] [--vtt OUT.vtt] [--json]`: timed captions of a long
video."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slt.cli.translate import add_decoding_arguments, decoding_from_args
from slt.registry import MODEL_SETS
from slt.video.detect import DETECTORS


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `captions` and `live`: how the video is cut into sentences."""
    from slt.video.segment import SEGMENT_METHODS, SegmentationConfig

    defaults = SegmentationConfig()
    group = parser.add_argument_group("segmentation")
    group.add_argument("--segment", choices=SEGMENT_METHODS, default=defaults.method,
                       help="motion: cut where the hands rest; fixed: plain windows of --window seconds")
    group.add_argument("--min-rest", type=float, default=defaults.min_rest_s,
                       help="seconds of still hands that end a sentence")
    group.add_argument("--min-duration", type=float, default=defaults.min_duration_s,
                       help="shorter movements are ignored (s)")
    group.add_argument("--max-duration", type=float, default=defaults.max_duration_s,
                       help="longer segments are cut (s)")
    group.add_argument("--window", type=float, default=defaults.window_s, help="window length for --segment fixed (s)")
    group.add_argument("--threshold", type=float, default=None,
                       help="motion energy threshold (percent of mean brightness); default: adapts to the video")
    group.add_argument("--no-stabilize", dest="stabilize", action="store_false",
                       help="do not compensate camera shake in the motion energy (cheaper; for a camera on a tripod)")


def segmentation_from_args(args: argparse.Namespace):
    from slt.video.segment import SegmentationConfig

    return SegmentationConfig(method=args.segment, min_rest_s=args.min_rest, min_duration_s=args.min_duration,
                              max_duration_s=args.max_duration, window_s=args.window, threshold=args.threshold,
                              stabilize=args.stabilize)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", nargs="+", default=["eng_Latn"], help="FLORES-200 target language codes")
    parser.add_argument("--model-set", choices=MODEL_SETS, default="auto",
                        help="official (Meta's release), demo (offline), auto (official if reachable)")
    parser.add_argument("--encoder", default=None, metavar="NAME|PATH",
                        help="encoder label of the model set, a fine-tuned checkpoint, or a trained system (a run "
                             "folder with a system.json: its own SignHiera reads the frames) (default: the set's "
                             "first)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto",
                        help="auto (fp32 on CPU, bf16/fp16 on CUDA), float32, float16, bfloat16")
    parser.add_argument("--detector", choices=DETECTORS, default=None,
                        help="face detector (default: the model set's): cnn, dlib-cnn or hog")


def engine_from_args(args: argparse.Namespace):
    """(engine, encoder label, preprocessing settings) built as the `translate` command builds them."""
    from dataclasses import replace

    from slt.engine import TranslationEngine
    from slt.registry import build_demo_set, demo_set_built, pick_model_set, resolve_model_set
    from slt.video import default_preprocess

    chosen = pick_model_set(args.model_set)
    if chosen == "demo" and not demo_set_built():
        build_demo_set()  # first use offline: build the demo set here, printing its steps
    model_set = resolve_model_set(chosen)
    engine = TranslationEngine(model_set, device=args.device, dtype=args.dtype,
                               decoder_backend=getattr(args, "decoder_backend", None))
    encoder = args.encoder
    if encoder is not None:  # a set label, a checkpoint path (labelled by its file name), or a trained system
        from slt.cli.translate import add_requested_encoders

        encoder = add_requested_encoders(engine, [encoder])[0][0]
    preprocess = replace(default_preprocess(args.detector or model_set.detector, engine.device),
                         center_crop_fallback=getattr(args, "center_crop_fallback", False))
    return engine, encoder, preprocess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a signed video of any length")
    add_engine_arguments(parser)
    parser.add_argument("--center-crop-fallback", action="store_true", help="use a centre crop when no signer is found")
    parser.add_argument("--srt", type=Path, default=None,
                        help="write SubRip captions here (several --lang: OUT.<lang>.srt per language)")
    parser.add_argument("--vtt", type=Path, default=None, help="write WebVTT captions here (same naming as --srt)")
    parser.add_argument("--json", action="store_true", help="print the captions as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on long videos")
    add_segmentation_arguments(parser)
    add_decoding_arguments(parser)


def caption_paths(target: Path, languages: list[str]) -> dict[str, Path]:
    """One file per language: the path itself for one language, else `stem.<lang>.suffix` next to it."""
    if len(languages) == 1:
        return {languages[0]: target}
    return {lang: target.with_name(f"{target.stem}.{lang}{target.suffix}") for lang in languages}


def run(args: argparse.Namespace) -> int:
    from slt.captions import caption_video
    from slt.utils.io import atomic_write_text

    segmentation = segmentation_from_args(args)
    engine, encoder, preprocess = engine_from_args(args)
    result = caption_video(engine, args.video, args.lang, encoder=encoder, segmentation=segmentation,
                           preprocess=preprocess, decoding=decoding_from_args(args), progress=not args.no_progress)
    written = []
    for target, render in ((args.srt, result.to_srt), (args.vtt, result.to_vtt)):
        if target is None:
            continue
        for lang, path in caption_paths(target, result.languages).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, render(lang))
            written.append(path)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"== {result.video}  ({result.duration_s:.1f} s, model set {result.model_set}, encoder {result.encoder}, "
          f"{len(result.captions)} captions)")
    for caption in result.captions:
        for lang, text in caption.texts.items():
            print(f"   {caption.start_s:8.2f} -> {caption.end_s:8.2f}  [{lang}] {text}")
    for path in written:
        print(f"   wrote {path}")
    return 0
