"""Domain B of the demo set: the two-stage chain vs sonar-finetune alone, validation and test BLEU.

    python bench/bench_two_stage.py [--demo checkpoints/demo] [--out runs/two-stage-bench] [--stage1-epochs 4]

Both systems start where the demo set's "zero-shot" system stands (its SignHiera, and its encoder trained on domain
A "studio") and adapt to domain B "instructional" (another signer, colours, speed and new signs):

- sonar-finetune alone: the zero-shot encoder fine-tuned on domain-B features of the unchanged SignHiera;
- two-stage: stage 1 (signhiera-finetune from domain-B crop caches: SignHiera's last blocks and the encoder, from
  video) -> features from the adapted SignHiera -> stage 2, the same sonar-finetune settings and epochs as the
  baseline, from stage 1's encoder. Run as one chain config (`python -m slt train --config chain.json`).

Every step is the documented command in its own process; everything lands in --out (rerunning resumes: finished
steps are skipped). The table: each system's best validation BLEU (domain-B val split, as selected by training) and
BLEU / chrF on the domain-B test split, plus the zero-shot encoder for reference. The demo set must be built
(`python -m slt demo build`; the full set takes a few minutes on a 2-core CPU, the chain about as long again).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from slt.modelset import demo_dir, read_demo_bundle  # noqa: E402


def slt(*argv: str) -> None:
    """`python -m slt ARGV` in its own process; stops the bench with its error when it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print("$ python -m slt " + " ".join(argv), flush=True)
    result = subprocess.run([sys.executable, "-m", "slt", *argv], env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        sys.exit(f"step failed (exit code {result.returncode}): python -m slt {' '.join(argv)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=None, help="demo set folder (default: $SLT_DEMO_DIR or "
                        "checkpoints/demo)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "two-stage-bench")
    parser.add_argument("--stage1-epochs", type=int, default=4)
    parser.add_argument("--stage1-lr", type=float, default=1e-3)
    parser.add_argument("--freeze-fraction", type=float, default=0.8, help="stage 1's signhiera_freeze_fraction")
    parser.add_argument("--epochs", type=int, default=None, help="stage 2 and baseline epochs (default: the demo "
                        "recipe's domain-B epochs)")
    parser.add_argument("--stage1-freeze-encoder", action="store_true",
                        help="stage 1 trains SignHiera's last blocks only (the SONAR encoder stays frozen)")
    parser.add_argument("--chain-name", default="chain", help="the chain's folder in --out (variants share the crop "
                        "caches and the baseline)")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing processes (crop cache, features)")
    args = parser.parse_args(argv)
    bundle = read_demo_bundle(args.demo or demo_dir())
    recipe = bundle.recipe
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    videos, features = bundle.corpora["B"], bundle.features["B"]
    signhiera = str(bundle.files["signhiera"])
    zero_shot = str(bundle.files["encoder_zero_shot"])
    decoder = {"decoder": bundle.decoder, "tokenizer": bundle.tokenizer,
               "asset_cards": str(bundle.files["decoder_cards"]), "target_lang": bundle.languages[0]}
    epochs = args.epochs or recipe.get("epochs_b", 30)
    # The demo build's domain-B fine-tuning settings, shared by the baseline and stage 2.
    common = {**decoder, "batch_size": recipe.get("batch_size", 16),
              "label_smoothing": recipe.get("label_smoothing", 0.1), "dropout": recipe.get("dropout", 0.1),
              "seed": recipe.get("seed", 0), "device": "cpu",
              "warmup_epochs": 1.0, "decoding": {"beam_size": 2, "max_len": 32}}
    finetune = {**common, "epochs": epochs, "lr": recipe.get("lr_b", 2e-3), "early_stop_patience": epochs}

    for split in ("train", "val"):
        slt("crop-cache", "--manifest", str(videos[split]), "--out", str(out / "crops" / split), "--signhiera",
            signhiera, "--detector", bundle.detector, "--workers", str(args.workers))

    chain_dir = out / args.chain_name
    chain = {"run_dir": str(chain_dir), "videos": {s: str(videos[s]) for s in ("train", "val", "test")},
             "extract_workers": args.workers, "description": "demo set adapted to domain B in two stages",
             "stage1": {**common, "train_features": str(out / "crops" / "train"),
                        "val_features": str(out / "crops" / "val"), "signhiera_checkpoint": signhiera,
                        "base_encoder": zero_shot, "epochs": args.stage1_epochs, "lr": args.stage1_lr,
                        "signhiera_freeze_fraction": args.freeze_fraction, "early_stop_patience": args.stage1_epochs,
                        "freeze_encoder": args.stage1_freeze_encoder},
             "stage2": dict(finetune)}
    (out / f"{args.chain_name}.json").write_text(json.dumps(chain, indent=2))
    slt("train", "--config", str(out / f"{args.chain_name}.json"), "--resume")

    baseline = {**finetune, "recipe": "sonar-finetune", "train_features": str(features["train"]),
                "val_features": str(features["val"]), "base_encoder": zero_shot, "run_dir": str(out / "baseline")}
    (out / "baseline.json").write_text(json.dumps(baseline, indent=2))
    status = out / "baseline" / "status.json"
    if not (status.exists() and json.loads(status.read_text()).get("state") == "finished"):
        slt("train", "--config", str(out / "baseline.json"), *(["--resume"] if (out / "baseline" / "last.pt").exists()
                                                                 else []))
    flags = ["--decoder", bundle.decoder, "--tokenizer", bundle.tokenizer, "--asset-cards", decoder["asset_cards"],
             "--target-lang", decoder["target_lang"], "--beam-size", "2", "--max-len", "32", "--device", "cpu"]
    slt("evaluate", "--run", str(out / "baseline"), "--manifest", str(features["test"]), "--out",
        str(out / "eval_baseline"), *flags)
    slt("evaluate", "--encoder", zero_shot, "--manifest", str(features["test"]), "--out", str(out / "eval_zero_shot"),
        *flags)

    def test_scores(folder: Path) -> dict:
        return json.loads((folder / "test_results.json").read_text())

    def best_val(run: Path) -> float | None:
        return json.loads((run / "status.json").read_text()).get("best_bleu")

    rows = [("zero-shot (domain A encoder)", None, test_scores(out / "eval_zero_shot")),
            (f"sonar-finetune alone ({epochs} epochs)", best_val(out / "baseline"), test_scores(out / "eval_baseline")),
            (f"two-stage: stage 1 ({args.stage1_epochs} epochs, from video) + stage 2 ({epochs} epochs)",
             best_val(chain_dir / "stage2"), test_scores(chain_dir / "evaluate"))]
    n_test = test_scores(out / "eval_baseline").get("samples", "")
    print(f"\nDomain B (instructional) of the demo set in {bundle.root}; stage 1 val BLEU "
          f"{best_val(chain_dir / 'stage1'):.2f}\n")
    print(f"| system | val BLEU (best epoch) | test BLEU ({n_test} clips) | test chrF |")
    print("|---|---|---|---|")
    for name, val, scores in rows:
        shown = "-" if val is None else f"{val:.2f}"
        print(f"| {name} | {shown} | {scores['bleu']:.2f} | {scores['chrf']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
