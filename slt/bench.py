"""`python -m slt.bench`: the engine's speed and memory, as ratios measured in one run.

Rows:
- preprocessing vs plain OpenCV decoding of the same video (decoding is the physical floor);
- peak memory of preprocessing a long 720p video vs the size of its raw frames (streaming keeps it far below);
- batched vs one-at-a-time translation of N clips;
- two encoders on one clip (features shared) vs translating it twice;
- feature extraction clips/s with and without worker overlap (bench/bench_extract.py).
Absolute seconds are printed for context; compare only the ratios (these machines are noisy).

Start-up time: each benchmark imports the parts it measures (video, engine, registry) itself, so `--help` and a
single row run without loading the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _astronaut() -> np.ndarray:
    import importlib.util

    root = Path(importlib.util.find_spec("skimage").submodule_search_locations[0])
    image = cv2.imread(str(root / "data" / "astronaut.png"))
    return image  # BGR 512x512


def write_face_video(path: Path, seconds: float, size: tuple[int, int] = (640, 480), fps: float = 25.0) -> Path:
    """A real face (scikit-image's astronaut) drifting over a noisy background, written with OpenCV."""
    width, height = size
    face = _astronaut()[0:300, 120:380]  # head and shoulders
    scale = 0.45 * height / face.shape[0]
    face = cv2.resize(face, None, fx=scale, fy=scale)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8)
    for index in range(int(seconds * fps)):
        frame = background.copy()
        x = int(width / 2 - face.shape[1] / 2 + 20 * np.sin(index / 15))
        y = int(height * 0.12)
        frame[y : y + face.shape[0], x : x + face.shape[1]] = face
        writer.write(frame)
    writer.release()
    return path


def time_plain_decode(path: Path) -> float:
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    while capture.read()[0]:
        pass
    capture.release()
    return time.perf_counter() - start


def bench_preprocess(workdir: Path, detector: str) -> dict:
    from slt.video import PreprocessConfig, preprocess_video

    video = write_face_video(workdir / "clip.mp4", seconds=12)
    decode_s = min(time_plain_decode(video) for _ in range(2))
    start = time.perf_counter()
    preprocess_video(video, PreprocessConfig(detector=detector))
    pre_s = time.perf_counter() - start
    return {"row": f"preprocess ({detector}) vs plain decode, 12 s 640x480", "baseline_s": decode_s, "ours_s": pre_s,
            "ratio": pre_s / decode_s, "note": "x slower than decoding alone"}


_MEMORY_CHILD = """
import resource, sys, json
from slt.video import PreprocessConfig, preprocess_video
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# as the engine and extract-features run it: uint8 crops kept, float clips built a batch at a time
pre = preprocess_video(sys.argv[1], PreprocessConfig(detector="hog"), materialize=False)
batches = sum(1 for _ in pre.iter_clip_batches(1))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
crop_bytes = sum(c.nbytes for c in pre.crops.values())
print(json.dumps({"before_kb": before, "after_kb": after, "crop_bytes": crop_bytes, "clips": batches}))
"""


def bench_memory(workdir: Path, seconds: float) -> dict:
    video = write_face_video(workdir / "long720.mp4", seconds=seconds, size=(1280, 720))
    capture = cv2.VideoCapture(str(video))
    n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    raw_bytes = n_frames * 1280 * 720 * 3
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(video)], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    growth = (figures["after_kb"] - figures["before_kb"]) * 1024
    return {"row": f"peak memory, {seconds:.0f} s 720p video (raw frames {raw_bytes / 1e9:.2f} GB)",
            "baseline_s": None, "ours_s": None, "ratio": growth / raw_bytes,
            "note": f"peak RSS growth {growth / 1e6:.0f} MB ({figures['clips']} clips; kept crops "
                    f"{figures['crop_bytes'] / 1e6:.0f} MB) / raw frame bytes"}


def bench_translation(workdir: Path, n_clips: int) -> list[dict]:
    from slt.engine import TranslationEngine
    from slt.registry import build_demo_set, demo_set_built, resolve_model_set

    if not demo_set_built():
        build_demo_set()  # prints its steps; minutes, once
    model_set = resolve_model_set("demo")
    clips = [write_face_video(workdir / f"t{i}.mp4", seconds=3 + i % 3, size=(320, 240)) for i in range(n_clips)]
    engine = TranslationEngine(model_set, device="cpu", feature_cache_size=0).load()
    engine.translate(clips[0])  # warm-up (first-call allocations)
    start = time.perf_counter()
    for clip in clips:
        engine.translate(clip)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    engine.translate_batch(clips)
    batch_s = time.perf_counter() - start
    rows = [{"row": f"translate {n_clips} clips: batched vs one at a time", "baseline_s": single_s, "ours_s": batch_s,
             "ratio": batch_s / single_s, "note": "batched time / sequential time"}]
    labels = engine.encoder_names[:2]
    if len(labels) == 2:
        start = time.perf_counter()
        for label in labels:
            engine.translate(clips[0], encoders=[label])
        twice_s = time.perf_counter() - start
        start = time.perf_counter()
        engine.translate(clips[0], encoders=labels)
        shared_s = time.perf_counter() - start
        rows.append({"row": "two encoders on one clip vs translating it twice", "baseline_s": twice_s,
                     "ours_s": shared_s, "ratio": shared_s / twice_s, "note": "features extracted once"})
    return rows


def bench_extraction(workdir: Path) -> list[dict]:
    script = Path(__file__).resolve().parent.parent / "bench" / "bench_extract.py"
    if not script.exists():
        return []
    out = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        return [{"row": "feature extraction", "baseline_s": None, "ours_s": None, "ratio": None,
                 "note": f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"}]
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    def fmt(value, spec):
        width = int(spec.split(".")[0])
        return format(value, spec) if isinstance(value, (int, float)) else "-".rjust(width)

    width = max(len(r["row"]) for r in rows)
    print(f"{'measurement':{width}}  {'baseline s':>10}  {'ours s':>9}  {'ratio':>7}  note")
    for r in rows:
        print(f"{r['row']:{width}}  {fmt(r['baseline_s'], '10.2f')}  {fmt(r['ours_s'], '9.2f')}  "
              f"{fmt(r['ratio'], '7.3f')}  {r['note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-seconds", type=float, default=40.0, help="length of the 720p memory video")
    parser.add_argument("--clips", type=int, default=4, help="clips for the batching rows")
    parser.add_argument("--detector", default="hog", choices=["hog", "cnn"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["preprocess", "memory", "translate", "extract"])
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "preprocess" not in args.skip:
            rows.append(bench_preprocess(workdir, args.detector))
        if "memory" not in args.skip:
            rows.append(bench_memory(workdir, args.long_seconds))
        if "translate" not in args.skip:
            rows.extend(bench_translation(workdir, args.clips))
        if "extract" not in args.skip:
            rows.extend(bench_extraction(workdir))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
