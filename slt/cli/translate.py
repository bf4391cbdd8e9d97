"""`python -m slt translate CLIP.mp4 [CLIP ...] --lang eng_Latn fra_Latn [--encoder PATH ...] [--json]`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from slt.engine import TranslationEngine
from slt.registry import MODEL_SETS, build_demo_set, demo_set_built, pick_model_set, resolve_model_set
from slt.text import DecodingOptions
from slt.video import default_preprocess
from slt.video.detect import DETECTORS


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument("--beam-size", type=int, default=5)
    group.add_argument("--max-len", type=int, default=128, help="maximum generated tokens")
    group.add_argument("--len-penalty", type=float, default=1.0)
    group.add_argument("--no-repeat-ngram-size", type=int, default=0)
    group.add_argument("--repetition-penalty", type=float, default=1.0)
    group.add_argument("--sampling", action="store_true", help="sample instead of beam search")
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--top-k", type=int, default=0)
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--seed", type=int, default=None)
    group.add_argument("--decoder-backend", choices=["auto", "fairseq2", "transformers"], default=None,
                       help="library that runs the SONAR text decoder: fairseq2 (sonar-space, the reference) or "
                            "transformers (same token ids, no fairseq2 needed); auto = fairseq2 when it imports "
                            "(default: $SLT_DECODER_BACKEND or auto)")


def decoding_from_args(args: argparse.Namespace):
    return DecodingOptions(
        beam_size=args.beam_size, max_len=args.max_len, len_penalty=args.len_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size, repetition_penalty=args.repetition_penalty,
        sampling=args.sampling, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", type=Path, help="signed video clip(s)")
    parser.add_argument("--lang", nargs="+", default=["eng_Latn"], help="FLORES-200 target language codes")
    parser.add_argument("--model-set", choices=MODEL_SETS, default="auto",
                        help="official (Meta's release, downloaded on first use), demo (offline), "
                        "auto (official if reachable)")
    parser.add_argument("--encoder", nargs="+", default=None, metavar="NAME|PATH",
                        help="encoder labels of the model set and/or fine-tuned checkpoint paths "
                        "(default: all of the set)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto",
                        help="auto (fp32 on CPU, bf16/fp16 on CUDA), float32, float16, bfloat16")
    parser.add_argument("--detector", choices=DETECTORS, default=None,
                        help="face detector (default: the model set's): cnn (dlib's CNN model, PyTorch port on the "
                             "engine's device), dlib-cnn (same boxes via dlib, slow), hog (fast, different boxes)")
    parser.add_argument("--center-crop-fallback", action="store_true", help="use a centre crop when no signer is found")
    parser.add_argument("--preview", type=Path, default=None, help="save the crop preview image (PNG) here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_decoding_arguments(parser)


def run(args: argparse.Namespace) -> int:
    chosen = pick_model_set(args.model_set)
    if chosen == "demo" and not demo_set_built():
        build_demo_set()  # first use offline: build the demo set here, printing its steps
    model_set = resolve_model_set(chosen)
    engine = TranslationEngine(model_set, device=args.device, dtype=args.dtype, decoder_backend=args.decoder_backend)
    labels = []
    for item in args.encoder or model_set.encoders:
        if item in model_set.encoders:
            labels.append(item)
        else:  # a checkpoint path: label it by its file name
            label = Path(item).stem
            engine.add_encoder(label, item)
            labels.append(label)
    # The settings for the detector on the engine's device (full-resolution CNN detection on CUDA), plus the flags.
    preprocess = replace(default_preprocess(args.detector or model_set.detector, engine.device),
                         center_crop_fallback=args.center_crop_fallback)
    results = engine.translate_batch(args.videos, args.lang, encoders=labels,
                                     decoding=decoding_from_args(args), preprocess=preprocess)
    if args.preview:
        _save_previews(results, args.preview)
    if args.json:
        payload = [r.to_dict() for r in results] if len(results) > 1 else results[0].to_dict()
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    for result in results:
        print(f"== {result.video}  (model set: {result.model_set}, device: {result.device}, {result.dtype})")
        print(f"   signer box {result.box}, face in {result.faces_found}/{result.frames_sampled} sampled frames"
              + (" (centre crop fallback)" if result.used_center_crop else ""))
        for label, by_lang in result.translations.items():
            for lang, text in by_lang.items():
                print(f"   [{label}] {lang}: {text}")
        print("   timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return 0


def _save_previews(results, target: Path) -> None:
    import cv2

    for index, result in enumerate(results):
        path = target if len(results) == 1 else target.with_name(f"{target.stem}_{index}{target.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(result.preview, cv2.COLOR_RGB2BGR))
