"""`python -m slt synth`: render a synthetic signing corpus (videos + train/val/test manifests)."""

from __future__ import annotations

import argparse
import time

from slt.data.synth.corpus import FORMATS, SPLIT_POLICIES, generate_corpus
from slt.data.synth.domains import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the synth command."""
    parser.add_argument("out_dir", help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--domain", choices=sorted(PRESETS), default="studio",
                        help="studio (domain A) or instructional (domain B: other signer, faster, textured "
                        "background, noise)")
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical frames")
    parser.add_argument("--workers", type=int, default=1, help="parallel rendering processes")
    parser.add_argument("--format", choices=FORMATS, default="tsv",
                        help="tsv: <split>.tsv with header id/video_path/n_frames/translation; "
                        "ssvp: headerless manifests/<split>.tsv")
    parser.add_argument("--split-policy", choices=SPLIT_POLICIES, default="clip",
                        help="clip: splits share no clip, may share sentences; "
                        "sentence: val/test sentences never in train")
    parser.add_argument("--speed", type=float, help="signing speed (1 = studio default, 1.3 = instructional default)")
    parser.add_argument("--noise-sigma", type=float, help="camera noise in grey levels")
    parser.add_argument("--min-words", type=int, help="fewest signs per sentence (2..4)")
    parser.add_argument("--max-words", type=int, help="most signs per sentence (2..4)")
    parser.add_argument("--face-width", type=int, help="signer's face width in pixels")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")


def run(args: argparse.Namespace) -> int:
    """Generate the corpus and print where the manifests are."""
    overrides = {name: getattr(args, name) for name in ("speed", "noise_sigma", "min_words", "max_words", "face_width")
                 if getattr(args, name) is not None}
    start = time.perf_counter()
    manifests = generate_corpus(args.out_dir, args.domain, args.n_train, args.n_val, args.n_test, args.seed,
                                split_policy=args.split_policy, fmt=args.format, workers=args.workers,
                                overwrite=args.overwrite, **overrides)
    total = args.n_train + args.n_val + args.n_test
    print(f"{total} clips ({args.domain}) in {time.perf_counter() - start:.1f} s")
    for split, path in manifests.items():
        print(f"{split}\t{path}")
    return 0
