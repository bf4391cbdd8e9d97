"""`python -m slt.bench`: the engine's speed and memory, as ratios measured in one run.

Rows:
- preprocessing a 10-s 1280x720 one-face clip with each face detector (the CNN port, dlib's CNN, HOG) vs plain
  OpenCV decoding of the same video (decoding is the physical floor), and whether the port's box equals dlib's;
- the CNN port's detection cost per frame, one call for all sampled frames vs one call per frame;
- `python -m slt translate` on that clip with --detector cnn vs dlib-cnn (whole command and its preprocessing);
- peak memory of preprocessing a long 720p video vs the size of its raw frames (streaming keeps it far below);
- batched vs one-at-a-time translation of N clips;
- two encoders on one clip (features shared) vs translating it twice;
- feature extraction clips/s with and without worker overlap (bench/bench_extract.py);
- peak memory of one stage-1 training step with and without gradient checkpointing (bench/bench_stage1_memory.py).
Absolute seconds are printed for context; compare only the ratios (these machines are noisy).

Start-up time: each benchmark imports the parts it measures (video, engine, registry) itself, so `--help` and a
single row run without loading the rest.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# scikit-image's astronaut.png, rows 0:300, columns 120:380 (head and shoulders), carried in the repository so
# benchmarks also run where scikit-image is not installed (bench/gpu_check.sh).
ASTRONAUT_HEAD = REPO_ROOT / "bench" / "data" / "astronaut_head.png"


def astronaut_head() -> np.ndarray:
    """BGR 300x260 uint8: a real face dlib's detectors find."""
    image = cv2.imread(str(ASTRONAUT_HEAD))
    if image is None:
        raise FileNotFoundError(f"{ASTRONAUT_HEAD} is missing (it is part of the repository)")
    return image


def write_face_video(path: Path, seconds: float, size: tuple[int, int] = (640, 480), fps: float = 25.0) -> Path:
    """A real face (scikit-image's astronaut) drifting over a noisy background, written with OpenCV."""
    width, height = size
    face = astronaut_head()
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


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + sys): on a shared machine it moves far less
    with other processes' load than wall time does, so rows that run long on busy cores print it as well."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _ru_maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def peak_rss_mark() -> int:
    """Start measuring this process's peak memory: returns the mark for :func:`peak_rss_growth`.

    On Linux the kernel's peak-RSS figure (VmHWM) is reset to the current RSS (``/proc/self/clear_refs``), so the
    growth counts only what happens from here. ``ru_maxrss`` alone is wrong in a child process: after fork + exec
    it starts at the parent's peak, so a child of a bench that already held a few hundred MB reports no growth."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        current = _status_kb("VmRSS")
        if current is not None:
            return current * 1024
    except OSError:
        pass
    return _ru_maxrss_bytes()  # elsewhere: the best figure there is (growth of the process's peak)


def peak_rss_growth(mark: int) -> int:
    """Bytes the peak RSS rose above the mark since :func:`peak_rss_mark`."""
    peak_kb = _status_kb("VmHWM")
    return (peak_kb * 1024 if peak_kb is not None else _ru_maxrss_bytes()) - mark


def time_plain_decode(path: Path) -> float:
    start = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    while capture.read()[0]:
        pass
    capture.release()
    return time.perf_counter() - start


def bench_detectors(workdir: Path, detectors: list[str]) -> tuple[list[dict], Path]:
    """Preprocessing of a 10-s 720p one-face clip (30 fps: 19 sampled frames) with each detector vs plain decode."""
    from slt.video import PreprocessConfig, preprocess_video

    video = write_face_video(workdir / "face720.mp4", seconds=10, size=(1280, 720), fps=30.0)
    cpu = cpu_seconds()
    decode_s = min(time_plain_decode(video) for _ in range(2))
    decode_cpu = (cpu_seconds() - cpu) / 2
    rows, boxes, seconds, cpus = [], {}, {}, {}
    # "cnn, decoded twice": the port without the frame buffer (pass 2 decodes the video again), to show its share.
    runs = [(d, PreprocessConfig(detector=d)) for d in detectors]
    if "cnn" in detectors:
        runs.insert(detectors.index("cnn") + 1, ("cnn, decoded twice", PreprocessConfig(frame_buffer_mb=0)))
    for name, config in runs:
        if name == "cnn":  # load the port and warm its first pass outside the timing, as a server would
            from slt.video.detect import get_detector

            get_detector("cnn")([np.zeros((64, 64, 3), np.uint8)], 1)
        start, cpu = time.perf_counter(), cpu_seconds()
        pre = preprocess_video(video, config, materialize=False)
        seconds[name], cpus[name] = time.perf_counter() - start, cpu_seconds() - cpu
        boxes[name] = pre.box
        rows.append({"row": f"preprocess ({name}) vs plain decode, 10 s 1280x720", "baseline_s": decode_s,
                     "ours_s": seconds[name], "ratio": seconds[name] / decode_s,
                     "note": f"x decode (CPU time {cpus[name]:.1f} vs {decode_cpu:.2f} s: "
                             f"{cpus[name] / decode_cpu:.1f}x); detect {pre.timings['detect']:.2f} s for "
                             f"{pre.frames_sampled} frames; {pre.decode_passes} decode pass(es); box {list(pre.box)}"})
    if "cnn" in seconds and "dlib-cnn" in seconds:
        same = boxes["cnn"] == boxes["dlib-cnn"]
        rows.append({"row": "preprocess: cnn port vs dlib-cnn", "baseline_s": seconds["dlib-cnn"],
                     "ours_s": seconds["cnn"], "ratio": seconds["cnn"] / seconds["dlib-cnn"],
                     "note": f"time ratio (CPU time {cpus['cnn'] / cpus['dlib-cnn']:.3f}); signer boxes "
                             f"{'identical' if same else 'DIFFER'}"})
    return rows, video


def bench_detection_batching(video: Path) -> dict:
    """The port on the clip's sampled frames (downscaled to 512 px as on a CPU): one call vs one call per frame."""
    from slt.video.detect import downscale, get_detector

    frames = []
    capture = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 16 == 0:
            frames.append(cv2.cvtColor(downscale(frame, 512)[0], cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    detect = get_detector("cnn")
    detect(frames[:1], 1)  # warm-up
    start = time.perf_counter()
    single = [detect([frame], 1)[0] for frame in frames]
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = detect(frames, 1)
    batch_s = time.perf_counter() - start
    n = len(frames)
    return {"row": f"cnn detection, {n} frames 512x288: one call vs one per frame", "baseline_s": single_s,
            "ours_s": batch_s, "ratio": batch_s / single_s,
            "note": f"{1000 * batch_s / n:.0f} vs {1000 * single_s / n:.0f} ms/frame; "
                    f"boxes {'identical' if batched == single else 'DIFFER'}"}


def bench_translate_cli(video: Path) -> list[dict]:
    """`python -m slt translate` on the 720p clip with the demo models: --detector cnn vs dlib-cnn, whole command
    (process start, model loading, preprocessing, SignHiera, encoders, decoding) and its preprocessing stage."""
    # Imported here for start-up time (the registry pulls in the demo build only when it runs).
    from slt.registry import build_demo_set, demo_set_built

    if not demo_set_built():
        build_demo_set()  # before the clock starts: the first timed command would otherwise include the build
    runs = {}
    for detector in ("dlib-cnn", "cnn"):
        start, cpu = time.perf_counter(), cpu_seconds()
        out = subprocess.run([sys.executable, "-m", "slt", "translate", str(video), "--model-set", "demo",
                              "--detector", detector, "--device", "cpu", "--json"],
                             capture_output=True, text=True, cwd=REPO_ROOT)
        wall, used = time.perf_counter() - start, cpu_seconds() - cpu
        if out.returncode != 0:
            return [{"row": "translate CLI", "baseline_s": None, "ours_s": None, "ratio": None,
                     "note": f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"}]
        result = json.loads(out.stdout[out.stdout.index("{"):])
        runs[detector] = (wall, result["timings"]["preprocess"], result["box"], used)
    same = runs["cnn"][2] == runs["dlib-cnn"][2]
    (dlib_wall, dlib_pre, _, dlib_cpu), (cnn_wall, cnn_pre, box, cnn_cpu) = runs["dlib-cnn"], runs["cnn"]
    # The floor under the command on this machine: a process that only imports and loads the same models.
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _LOAD_ONLY_CHILD], check=True, capture_output=True, cwd=REPO_ROOT)
    load_wall = time.perf_counter() - start
    return [{"row": "translate CLI, demo models: --detector cnn vs dlib-cnn", "baseline_s": dlib_wall,
             "ours_s": cnn_wall, "ratio": cnn_wall / dlib_wall,
             "note": f"whole command, {dlib_wall / cnn_wall:.1f}x faster (CPU time {dlib_cpu:.0f} vs {cnn_cpu:.0f} s: "
                     f"{dlib_cpu / cnn_cpu:.1f}x); box {box}, {'identical' if same else 'DIFFERS'}"},
            {"row": "translate CLI preprocessing stage: cnn vs dlib-cnn", "baseline_s": dlib_pre, "ours_s": cnn_pre,
             "ratio": cnn_pre / dlib_pre, "note": f"{dlib_pre / cnn_pre:.1f}x faster"},
            {"row": "translate CLI (cnn) vs a process that only imports and loads its models", "baseline_s": load_wall,
             "ours_s": cnn_wall, "ratio": cnn_wall / load_wall,
             "note": f"the floor: start + imports + loading alone take {load_wall:.2f} s, i.e. "
                     f"{dlib_wall / load_wall:.0f}x below the dlib-cnn command at best"}]


_LOAD_ONLY_CHILD = """
from slt.engine import TranslationEngine
from slt.registry import resolve_model_set
engine = TranslationEngine(resolve_model_set("demo"), device="cpu")
engine.load()
import gc
gc.freeze()  # as `python -m slt` does at the end of a command (a faster exit)
"""

_MEMORY_CHILD = """
import sys, json
from slt.bench import peak_rss_growth, peak_rss_mark
from slt.video import PreprocessConfig, preprocess_video
import torch
mark = peak_rss_mark()
# as the engine and extract-features run it: uint8 crops kept, float clips built a batch at a time
pre = preprocess_video(sys.argv[1], PreprocessConfig(detector="hog"), materialize=False)
batches = sum(1 for _ in pre.iter_clip_batches(1))
growth = peak_rss_growth(mark)
crop_bytes = sum(c.nbytes for c in pre.crops.values())
print(json.dumps({"growth_bytes": growth, "crop_bytes": crop_bytes, "clips": batches}))
"""


def bench_memory(workdir: Path, seconds: float) -> dict:
    video = write_face_video(workdir / "long720.mp4", seconds=seconds, size=(1280, 720))
    capture = cv2.VideoCapture(str(video))
    n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    raw_bytes = n_frames * 1280 * 720 * 3
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(video)], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    growth = figures["growth_bytes"]
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


def bench_stage1_memory() -> list[dict]:
    """Stage-1 step peak memory, checkpointing off vs on (bench/bench_stage1_memory.py, one process per step)."""
    script = Path(__file__).resolve().parent.parent / "bench" / "bench_stage1_memory.py"
    if not script.exists():
        return []
    out = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        return [{"row": "stage-1 step peak memory", "baseline_s": None, "ours_s": None, "ratio": None,
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
    parser.add_argument("--detectors", nargs="+", default=["cnn", "dlib-cnn", "hog"],
                        choices=["cnn", "dlib-cnn", "hog"], help="detectors for the preprocessing rows")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["preprocess", "batching", "cli", "memory", "translate", "extract", "stage1"])
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        video = None
        if "preprocess" not in args.skip:
            found, video = bench_detectors(workdir, args.detectors)
            rows.extend(found)
        if video is None and {"batching", "cli"} - set(args.skip):
            video = write_face_video(workdir / "face720.mp4", seconds=10, size=(1280, 720), fps=30.0)
        if "batching" not in args.skip:
            rows.append(bench_detection_batching(video))
        if "cli" not in args.skip:
            rows.extend(bench_translate_cli(video))
        if "memory" not in args.skip:
            rows.append(bench_memory(workdir, args.long_seconds))
        if "translate" not in args.skip:
            rows.extend(bench_translation(workdir, args.clips))
        if "extract" not in args.skip:
            rows.extend(bench_extraction(workdir))
        if "stage1" not in args.skip:
            rows.extend(bench_stage1_memory())
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
