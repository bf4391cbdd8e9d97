"""`python -m slt evaluate --run DIR | --system DIR | --encoder CKPT --manifest M [--features DIR | --signhiera CKPT]`:
score a split.

Three ways to give the split's features:
- `--manifest FEATURES_MANIFEST` (id, path, n_steps, translation), e.g. extract-features' features.tsv;
- `--manifest VIDEO_MANIFEST --features DIR`: the video manifest's ids and references paired with `<id>.pt` files
  in DIR (an extract-features output folder or its feats/ folder);
- `--manifest VIDEO_MANIFEST --signhiera CKPT`: features extracted from the videos first (slt.data.extract, into
  `<out>/features_<split>`, resumable, so a second evaluation reuses them).

`--system DIR` (a folder with a system.json, or the file: a two-stage or stage-1 result) evaluates the system's
encoder on features of the system's own SignHiera, extracted from a video manifest as with `--signhiera` (default
detector: the system's); decoder settings come from the encoder's run config when it has one.

Writes `test_results.json` (BLEU-1..4, chrF, ROUGE-L, WER, mode-collapse figures, seconds per clip) and a
predictions file next to it. Decoding flags (beam, length penalty, n-gram blocking, repetition penalty,
sampling) are selectable because they decide whether a weak model collapses to one sentence.

Start-up time: torch, the trainer, extraction and the analysis library are imported inside the functions that
use them, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from slt.errors import FeatureExtractionError, ManifestError, TrainingError
from slt.runtime import pick_device
from slt.train.config import TrainConfig, add_config_arguments, config_from_args
from slt.utils.io import atomic_write_json, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a training run directory (uses its config and exported encoder.pt, which "
                        "holds the best epoch's weights)")
    source.add_argument("--encoder", help="a SONAR ASL encoder checkpoint to evaluate")
    source.add_argument("--system", help="a trained system (a run folder with a system.json, or the file): its "
                        "encoder on features of its own SignHiera, extracted from the --manifest videos")
    parser.add_argument("--manifest", required=True,
                        help="features manifest (id, path, n_steps, translation), or with --features/--signhiera "
                             "a video manifest (id, video_path, n_frames, translation)")
    features = parser.add_mutually_exclusive_group()
    features.add_argument("--features", help="folder with one <id>.pt features tensor per manifest id "
                          "(an extract-features --out folder or its feats/)")
    features.add_argument("--signhiera", help="SignHiera checkpoint: extract features from the manifest's videos "
                          "first (cached in <out>/features_<split-name>)")
    parser.add_argument("--detector", choices=("cnn", "dlib-cnn", "hog"), default=None,
                        help="with --signhiera/--system: dlib face detector (cnn as released, hog much faster on "
                             "CPU; default: the system's, else cnn)")
    parser.add_argument("--extract-workers", type=int, default=2,
                        help="with --signhiera: preprocessing worker processes (0: none)")
    parser.add_argument("--out", help="output folder (default: the run dir, else ./eval)")
    parser.add_argument("--split-name", default="test", help="names the output files (default: test)")
    add_config_arguments(parser)


def features_manifest_from_videos(manifest: Path, features_dir: Path, out: Path) -> Path:
    """Pair a video manifest's ids and translations with `<features_dir>/<id>.pt` as a features manifest.

    File names follow extract-features (`slt.data.safe_ids.safe_id`); the video files themselves need not exist.
    """
    import torch

    from slt.data.manifest import read_manifest
    from slt.data.safe_ids import safe_id

    if not features_dir.is_dir():
        raise ManifestError(f"features folder not found: {features_dir}")
    if (features_dir / "feats").is_dir():  # an extract-features --out folder
        features_dir = features_dir / "feats"
    rows = read_manifest(manifest, check_files=False, strict=True).rows
    if not rows:
        raise ManifestError(f"{manifest}: no clips listed")
    lines = ["id\tpath\tn_steps\ttranslation"]
    for row in rows:
        path = features_dir / f"{safe_id(row.id)}.pt"
        if not path.is_file():
            raise ManifestError(f"{manifest}:{row.line}: no features for id {row.id!r}: {path} is missing "
                                "(run `python -m slt extract-features` first, or pass --signhiera)")
        try:  # mmap: only the header is read, not the whole tensor
            features = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:
            raise ManifestError(f"{manifest}:{row.line}: cannot read features {path}: {error}") from error
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ManifestError(f"{manifest}:{row.line}: {path} must hold one [N, D] tensor")
        lines.append(f"{row.id}\t{path.resolve()}\t{features.shape[0]}\t{row.translation}")
    out.mkdir(parents=True, exist_ok=True)
    return Path(atomic_write_text(out / "features_manifest.tsv", "\n".join(lines) + "\n"))


def features_manifest_by_extraction(manifest: Path, signhiera: Path, out_dir: Path, detector: str,
                                    workers: int, device: str) -> Path:
    """Extract features for every clip of a video manifest (resumable) and return the features manifest.

    A clip that cannot be extracted is an error naming it: scoring a silently smaller split would mislead.
    """
    from slt.data.extract import ExtractOptions, extract_features

    if workers < 0:
        raise FeatureExtractionError(f"--extract-workers must be 0 or more, got {workers}")
    options = ExtractOptions(signhiera=Path(signhiera), detector=detector, workers=workers, device=device)
    summary = extract_features(manifest, out_dir, options)
    failures = out_dir / "failures.jsonl"
    failed = [json.loads(line) for line in failures.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if failures.is_file() else []
    if failed:
        named = ", ".join(f"{f.get('id')!r} ({f.get('error_type')}: {f.get('message')})" for f in failed[:5])
        raise FeatureExtractionError(f"{len(failed)} clip(s) of {manifest} have no features: {named}"
                                     f"{' ...' if len(failed) > 5 else ''}; see {failures}. Fix or remove them "
                                     "and run again (finished clips are reused)")
    assert summary.features_manifest is not None  # single process: rank 0 always merges
    return Path(summary.features_manifest)


def collapse_figures(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The analysis library's mode-collapse report, when that library is importable."""
    try:
        import pandas as pd

        from analysis import collapse_report
    except ImportError:
        return None
    report = collapse_report(pd.DataFrame(rows))
    import dataclasses

    if dataclasses.is_dataclass(report):
        report = dataclasses.asdict(report)
    return json.loads(json.dumps(report, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from slt.data.features import FeaturesDataset
    from slt.train.recipes import get_recipe
    from slt.train.trainer import evaluate_split

    base, system = None, None
    if args.system:
        from slt.modelset import read_system

        system = read_system(args.system)
        if args.signhiera or args.features:
            raise TrainingError("--system evaluates on features of the system's own SignHiera (extracted from the "
                                "--manifest videos); drop --signhiera/--features, or use --encoder with them")
        base = TrainConfig(recipe="sonar-finetune", base_encoder=str(system.encoder))
        run_config = system.encoder.parent / "config.json"
        if run_config.is_file():  # the text side the encoder was trained with (stage-1 or stage-2 run)
            trained = TrainConfig.load(run_config)
            for name in ("decoder", "tokenizer", "asset_cards", "target_lang", "decoding", "device"):
                setattr(base, name, getattr(trained, name))
    elif args.run:
        run_dir = Path(args.run)
        if not (run_dir / "config.json").is_file():
            raise TrainingError(f"{run_dir} is not a training run (no config.json)")
        base = TrainConfig.load(run_dir / "config.json")
        encoder = run_dir / "encoder.pt"
        if not encoder.is_file():
            raise TrainingError(f"{run_dir} has no exported encoder.pt (the run has not finished)")
        base.base_encoder = str(encoder)
    cfg = config_from_args(args, base=base)
    if args.encoder:
        cfg.base_encoder = args.encoder
    if cfg.recipe != "sonar-finetune":
        raise TrainingError(f"evaluate scores SONAR encoders (recipe sonar-finetune), not {cfg.recipe!r} runs")
    out = Path(args.out or (args.run or (system.path.parent if system else "eval")))
    manifest = Path(args.manifest)
    signhiera = system.signhiera if system else args.signhiera
    detector = args.detector or (system.detector if system else None) or "cnn"
    if args.features:
        manifest = features_manifest_from_videos(manifest, Path(args.features), out)
    elif signhiera:
        manifest = features_manifest_by_extraction(manifest, Path(signhiera), out / f"features_{args.split_name}",
                                                   detector, args.extract_workers, cfg.device)
    dataset = FeaturesDataset(manifest, cfg.max_samples)
    device = pick_device(cfg.device)
    recipe = get_recipe(cfg.recipe)
    model = recipe.build(cfg, device)
    scores = evaluate_split(recipe, model, dataset, cfg, device)
    rows = scores.pop("rows")
    results = {"split": args.split_name, "manifest": str(manifest), "encoder": cfg.base_encoder,
               **({"signhiera": str(signhiera)} if signhiera else {}),
               "samples": len(rows), "decoding": cfg.to_dict()["decoding"], **scores,
               "collapse": collapse_figures(rows)}
    predictions = out / f"{args.split_name}_predictions.jsonl"
    atomic_write_text(predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    results_name = f"{args.split_name}_results.json" if args.split_name != "test" else "test_results.json"
    atomic_write_json(out / results_name, results)
    print(json.dumps({k: v for k, v in results.items() if k != "collapse"}, indent=2))
    return 0
