"""`python -m slt evaluate --run DIR | --encoder CKPT --manifest M [--features DIR]`: score a split.

Writes `test_results.json` (BLEU-1..4, chrF, ROUGE-L, WER, mode-collapse figures, seconds per clip) and a
predictions file next to it. Decoding flags (beam, length penalty, n-gram blocking, repetition penalty,
sampling) are selectable because they decide whether a weak model collapses to one sentence.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from slt.errors import ManifestError, TrainingError
from slt.train.config import TrainConfig, add_config_arguments, config_from_args
from slt.utils.io import atomic_write_json, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a training run directory (uses its config and best.pt's exported encoder)")
    source.add_argument("--encoder", help="a SONAR ASL encoder checkpoint to evaluate")
    parser.add_argument("--manifest", required=True,
                        help="features manifest (id, path, n_steps, translation), or with --features a video "
                             "manifest (id, video_path, n_frames, translation)")
    parser.add_argument("--features", help="folder with one <id>.pt features tensor per manifest id")
    parser.add_argument("--out", help="output folder (default: the run dir, else ./eval)")
    parser.add_argument("--split-name", default="test", help="names the output files (default: test)")
    add_config_arguments(parser)


def features_manifest_from_videos(manifest: Path, features_dir: Path, out: Path) -> Path:
    """Pair a video manifest's ids and translations with `<features_dir>/<id>.pt` as a features manifest."""


    if not manifest.is_file():
        raise ManifestError(f"manifest not found: {manifest}")
    if not features_dir.is_dir():
        raise ManifestError(f"features folder not found: {features_dir}")
    lines = ["id\tpath\tn_steps\ttranslation"]
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames or not {"id", "translation"} <= set(reader.fieldnames):
            raise ManifestError(f"{manifest}:1: needs columns id and translation, got {reader.fieldnames}")
        for line_no, row in enumerate(reader, start=2):
            path = features_dir / f"{row['id']}.pt"
            if not path.is_file():
                raise ManifestError(f"{manifest}:{line_no}: no features for id {row['id']!r}: {path} is missing "
                                    "(run `python -m slt extract-features` first)")
            n_steps = torch.load(path, map_location="cpu", weights_only=True).shape[0]
            lines.append(f"{row['id']}\t{path.resolve()}\t{n_steps}\t{row['translation']}")
    out.mkdir(parents=True, exist_ok=True)
    return Path(atomic_write_text(out / "features_manifest.tsv", "\n".join(lines) + "\n"))


def extra_metrics(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-L F1 (rouge-score) and WER (jiwer), both in percent."""
    import jiwer
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hypotheses, references)]
    return {"rouge_l": 100.0 * sum(rouge) / max(len(rouge), 1),
            "wer": 100.0 * float(jiwer.wer(references, [h if h.strip() else "<empty>" for h in hypotheses]))}


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
    from slt.train.trainer import evaluate_split, resolve_device

    base = None
    if args.run:
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
    out = Path(args.out or (args.run or "eval"))
    manifest = Path(args.manifest)
    if args.features:
        manifest = features_manifest_from_videos(manifest, Path(args.features), out)
    dataset = FeaturesDataset(manifest, cfg.max_samples)
    device = resolve_device(cfg.device)
    recipe = get_recipe(cfg.recipe)
    model = recipe.build(cfg, device)
    scores = evaluate_split(recipe, model, dataset, cfg, device)
    rows = scores.pop("rows")
    hyps, refs = [r["prediction"] for r in rows], [r["reference"] for r in rows]
    scores.update(extra_metrics(hyps, refs))
    results = {"split": args.split_name, "manifest": str(manifest), "encoder": cfg.base_encoder,
               "samples": len(rows), "decoding": cfg.to_dict()["decoding"], **scores,
               "collapse": collapse_figures(rows)}
    predictions = out / f"{args.split_name}_predictions.jsonl"
    atomic_write_text(predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_json(out / f"{args.split_name}_results.json" if args.split_name != "test" else out / "test_results.json",
                      results)
    print(json.dumps({k: v for k, v in results.items() if k != "collapse"}, indent=2))
    return 0
