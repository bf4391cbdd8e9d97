"""`python -m slt translate CLIP.mp4 [CLIP ...] --lang eng_Latn fra_Latn [--encoder NAME|PATH ...] [--json]`.

`--encoder` takes the model set's labels (``zero-shot``), fine-tuned encoder checkpoints (read from the set's
SignHiera, or from ``--signhiera PATH``), and trained systems: a run folder with a ``system.json`` (or the file), whose
encoder reads its own, stage-1-adapted SignHiera. Encoders reading different SignHieras cannot share features: the
clip goes through each SignHiera once (the timings show each pass; ``--json`` says which SignHiera each label used).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

from slt.engine import TranslationEngine
from slt.errors import InvalidArgumentError
from slt.modelset import is_system, read_system
from slt.registry import MODEL_SETS, build_demo_set, demo_set_built, pick_model_set, resolve_model_set
from slt.runtime import reserve_cpu_core
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
                        help="encoder labels of the model set, fine-tuned encoder checkpoints, and/or trained "
                        "systems (a run folder with a system.json, or the file: encoder + its own SignHiera) "
                        "(default: all of the set)")
    parser.add_argument("--signhiera", type=Path, default=None, metavar="PATH",
                        help="the SignHiera checkpoint the --encoder checkpoint paths were trained on (e.g. a "
                        "stage-1 run's signhiera.pt; default: the model set's)")
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
    labels, detectors = add_requested_encoders(engine, args.encoder or list(model_set.encoders), args.signhiera)
    detector = args.detector or model_set.detector
    for label, trained_with in detectors.items():
        if args.detector is None and trained_with != detector:
            print(f"note: system '{label}' was trained on {trained_with} crops; this run uses the {detector} "
                  f"detector (pass --detector {trained_with} to match it)", file=sys.stderr)
    # The settings for the detector on the engine's device (full-resolution CNN detection on CUDA), plus the flags.
    preprocess = replace(default_preprocess(detector, engine.device), center_crop_fallback=args.center_crop_fallback)
    # A missing file fails at once, without loading anything (the translation names it).
    loader = _load_in_background(engine, labels) if all(Path(v).is_file() for v in args.videos) else None
    try:
        results = engine.translate_batch(args.videos, args.lang, encoders=labels,
                                         decoding=decoding_from_args(args), preprocess=preprocess)
    finally:
        if loader is not None:  # a thread still inside torch when the interpreter exits aborts the process
            loader.join()
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
        distinct = len(set(result.signhiera.values()))
        if distinct > 1 or any(source != "model set" for source in result.signhiera.values()):
            shared = (f"features cannot be shared: the clip went through {distinct} SignHieras" if distinct > 1
                      else "one SignHiera, features shared")
            print("   SignHiera: " + "; ".join(f"[{label}] {source}" for label, source in result.signhiera.items())
                  + f" ({shared})")
        print("   timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return 0


def add_requested_encoders(engine: TranslationEngine, items: list[str],
                           signhiera: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """Add what `--encoder` names to the engine: set labels as they are, systems (a folder with system.json, or
    a .json file) under their run's name, checkpoints under their file name, read from `signhiera` when given.
    Returns the labels in order and {system label: the detector it was trained with}."""
    labels, detectors, checkpoints = [], {}, 0
    for item in items:
        if item in engine.model_set.encoders:
            if item not in labels:
                labels.append(item)
            continue
        path = Path(item)
        if is_system(path):
            system = read_system(path)
            label = _free_label(system.name, labels, engine, item)
            engine.add_system(label, system)
            if system.detector:
                detectors[label] = system.detector
        elif path.is_dir():
            raise InvalidArgumentError(f"--encoder {item}: a folder must hold a system.json (a finished two-stage "
                                       "or stage-1 run); for a checkpoint give the .pt file")
        else:
            label = _free_label(path.stem, labels, engine, item)
            engine.add_encoder(label, path, signhiera)
            checkpoints += 1
        labels.append(label)
    if signhiera is not None and not checkpoints:
        raise InvalidArgumentError("--signhiera applies to encoder checkpoints given by path (--encoder PATH.pt); "
                                   "none was given (a system.json names its own SignHiera)")
    return labels, detectors


def _free_label(label: str, taken: list[str], engine: TranslationEngine, item: str) -> str:
    if label in taken or label in engine.model_set.encoders:
        raise InvalidArgumentError(f"--encoder {item} would be labelled '{label}', which is already taken (by the "
                                   "model set or another --encoder); rename the run folder or checkpoint file")
    return label


def _load_in_background(engine: TranslationEngine, labels: list[str]) -> threading.Thread:
    """Load the models (imports and weights: mostly one core) while the clips are decoded and their faces found
    (the detector runs on the other cores): a one-shot command then waits for the slower of the two, not for both.
    The engine's model lock makes the translation wait for a model still loading. A failure here is left for the
    translation to meet again and report."""

    def load() -> None:
        # The detector offers one thread fewer while this runs (slt.runtime.reserve_cpu_core).
        with reserve_cpu_core():
            try:
                for label in labels:  # what this translation reads: each label's SignHiera and encoder, the decoder
                    engine.signhiera_for(label)
                    engine.encoder(label)
                engine.decoder  # noqa: B018 - loading is the point
            except Exception:  # reported by the translation, which loads the same model
                pass

    thread = threading.Thread(target=load, name="slt-model-loader", daemon=True)
    thread.start()
    return thread


def _save_previews(results, target: Path) -> None:
    import cv2

    for index, result in enumerate(results):
        path = target if len(results) == 1 else target.with_name(f"{target.stem}_{index}{target.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(result.preview, cv2.COLOR_RGB2BGR))
