"""Render the app's sample clips: 3 per domain into assets/samples/ (small VP8 WebM files that browsers play,
committed).

Usage: python scripts/make_sample_clips.py [--out assets/samples] [--seed 7]
Writes <domain>_<n>.webm and samples.tsv (id, video_path, n_frames, translation, domain) so the app can show
the reference next to its translation. Same seed -> identical frames.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slt.data.synth import Grammar, get_domain, plan_performance, render_performance, write_clip
from slt.demo.build import DemoRecipe
from slt.utils.io import atomic_write_text

# Hand-picked so the samples show different lengths, tenses and both shared and domain-only signs.
SAMPLES = {
    "studio": [("MOTHER", "EAT", "APPLE", "YESTERDAY"), ("TEACHER", "READ", "BOOK"), ("YOU", "DRINK", "TEA", "NOW")],
    "instructional": [("STUDENT", "WASH", "CAR", "TOMORROW"), ("I", "WANT", "BREAD"), ("WE", "OPEN", "DOOR", "AGAIN")],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "samples")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = ["id\tvideo_path\tn_frames\ttranslation\tdomain"]
    for domain, sentences in SAMPLES.items():
        # Rendered like the demo model set's training data, so the demo encoders can be judged on them.
        spec = get_domain(domain, **(DemoRecipe().domain_b_overrides if domain == "instructional" else {}))
        texts = {s.glosses: s.text for s in Grammar(spec.vocabulary).sentences}
        for n, glosses in enumerate(sentences, start=1):
            clip_id = f"{domain}_{n}"
            perf = plan_performance(glosses, spec, np.random.default_rng([args.seed, n, len(domain)]))
            n_frames = write_clip(render_performance(perf, spec), args.out / f"{clip_id}.webm", spec.fps,
                                  spec.frame_size)
            rows.append(f"{clip_id}\t{clip_id}.webm\t{n_frames}\t{texts[glosses]}\t{domain}")
            print(f"{clip_id}.webm  {n_frames} frames  {texts[glosses]}")
    atomic_write_text(args.out / "samples.tsv", "".join(f"{r}\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
