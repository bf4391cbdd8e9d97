"""Live-caption latency: synthetic long videos played as a camera (`python -m slt live VIDEO --realtime --json`).

    python bench/bench_live.py [--videos 6] [--domain studio] [--seed 300] [--demo-dir DIR]

Each video (3-6 sentences with rests, slt/data/synth/long.py) runs in its own `slt live --realtime` process with
the demo models (loaded before the clock starts, as the app loads them at start-up); frames arrive at the video's
pace and are dropped while the session is busy, as a camera's would be. Latency is the wall time from the end of a
sentence (the last frame of its segment) to its caption; 0.4 s of it is the rest that proves the sentence ended.
Captions closed by the end of the file are left out (no rest followed them). Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from slt.data.synth.long import generate_long_videos, read_long_manifest  # noqa: E402


def run_live(video: Path, env: dict[str, str]) -> tuple[list[dict], str]:
    """The captions `slt live --realtime --json` prints for one video, and its stderr's last line."""
    out = subprocess.run([sys.executable, "-m", "slt", "live", str(video), "--realtime", "--json",
                          "--model-set", "demo"], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"slt live failed on {video.name}: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    captions = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return captions, (out.stderr.strip().splitlines() or [""])[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--domain", default="studio", help="studio or instructional (slt.data.synth presets)")
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--demo-dir", type=Path, default=None,
                        help="the demo model set to use (default: $SLT_DEMO_DIR or checkpoints/demo, built if missing)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.demo_dir is not None:
        env["SLT_DEMO_DIR"] = str(args.demo_dir.resolve())
    latencies, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_long_videos(tmp, args.domain, n_videos=args.videos, seed=args.seed)
        for video in read_long_manifest(manifest):
            captions, _ = run_live(Path(video["video_path"]), env)
            timed = [c["latency_s"] for c in captions if c.get("latency_s") is not None and c["reason"] != "end"]
            latencies.extend(timed)
            rows.append((video["id"], len(video["segments"]), len(captions), timed))
    print(f"{'video':28s} {'sentences':>9s} {'captions':>8s}  latencies (s)")
    for name, truth, found, timed in rows:
        print(f"{name:28s} {truth:9d} {found:8d}  {' '.join(f'{t:.2f}' for t in timed)}")
    if latencies:
        values = np.array(latencies)
        print(f"\n{len(values)} captions after a rest: latency median {np.median(values):.2f} s, "
              f"p90 {np.percentile(values, 90):.2f} s, max {values.max():.2f} s, "
              f"within 2 s: {100 * np.mean(values <= 2.0):.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
