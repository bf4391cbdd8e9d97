"""Caption segmentation (and optionally caption quality) on synthetic long videos: prints one row per domain.

Run: ``python bench/bench_captions.py [--videos 30] [--translate demo]``. Each video signs 3-6 sentences of the
synthetic grammar with 0.8-1.8 s rests between them (``slt.data.synth.long``). Segmentation is scored against the
ground-truth sentence times: share of videos with the right segment count, mean / 90th percentile / max
boundary error in seconds (each true sentence paired with the predicted segment overlapping it most), seconds of
work per second of video, and the motion scan's share of that work (the rest: finding the signer box, decoding
and cropping). With
``--translate MODEL_SET`` every video is also captioned through the engine and the captions of the matched
segments are scored against the sentences (corpus BLEU / chrF).

Domains: "studio" (plain background, no camera noise), "webcam" (the demo set's domain B look: plain background,
noise 3 grey levels, 0.5 px shake, 2 % flicker), "instructional" (the hard preset: textured background, noise 6,
1.5 px shake, 4 % flicker, 30 % faster signing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slt.captions import iter_sampled_crops
from slt.data.synth.long import generate_long_videos, read_long_manifest
from slt.video import PreprocessConfig
from slt.video.pipeline import locate_signer
from slt.video.segment import MotionSegmenter, SegmentationConfig, boundary_errors, pair_boundary_errors

WEBCAM = dict(background="plain", background_colours=((60, 100, 70), (115, 95, 70)), noise_sigma=3.0, shake=0.5,
              brightness_jitter=0.02)
DOMAINS = {"studio": ("studio", {}), "webcam": ("instructional", WEBCAM), "instructional": ("instructional", {})}


def timed_segments(video: str, segmentation: SegmentationConfig, crop: PreprocessConfig) -> tuple[list, float]:
    """slt.captions.segment_video, also returning the seconds spent in the segmenter (the motion scan)."""
    located = locate_signer(video, crop, None)
    segmenter, segments, scan = MotionSegmenter(segmentation), [], 0.0
    for _, time_s, sample in iter_sampled_crops(video, located.box, located.info.fps, located.info.n_frames, crop):
        clock = time.perf_counter()
        segments += segmenter.push(time_s, sample)
        scan += time.perf_counter() - clock
    return segments + segmenter.finish(), scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=30, help="videos per domain")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--translate", default=None, metavar="MODEL_SET", help="also caption and score (e.g. demo)")
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--no-stabilize", dest="stabilize", action="store_false",
                        help="the motion energy without camera-shake compensation (the earlier method)")
    args = parser.parse_args()
    segmentation = SegmentationConfig(stabilize=args.stabilize)
    crop = PreprocessConfig(detector="hog", size=128)  # the demo models' crop
    engine = None
    if args.translate:
        from slt.engine import TranslationEngine
        from slt.registry import resolve_model_set

        engine = TranslationEngine.shared(resolve_model_set(args.translate), device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.domains:
            domain, overrides = DOMAINS[name]
            manifest = generate_long_videos(Path(tmp) / name, domain, args.videos, args.seed, **overrides)
            counts, errors, hyps, refs, seconds, video_s, scan_s = [], [], [], [], 0.0, 0.0, 0.0
            for row in read_long_manifest(manifest):
                truth = [(s["start_s"], s["end_s"]) for s in row["segments"]]
                video_s += row["n_frames"] / row["fps"]
                start = time.perf_counter()
                if engine is None:
                    segments, scan = timed_segments(row["video_path"], segmentation, crop)
                    predicted = [(s.start_s, s.end_s) for s in segments]
                    scan_s += scan
                else:
                    from slt.captions import caption_video

                    result = caption_video(engine, row["video_path"], encoder=args.encoder, segmentation=segmentation)
                    predicted = [(c.start_s, c.end_s) for c in result.captions]
                    for t_start, t_end, sentence in ((s["start_s"], s["end_s"], s["text"]) for s in row["segments"]):
                        overlaps = [max(0.0, min(t_end, c.end_s) - max(t_start, c.start_s)) for c in result.captions]
                        best = int(np.argmax(overlaps)) if overlaps and max(overlaps) > 0 else None
                        hyps.append(result.captions[best].texts["eng_Latn"] if best is not None else "")
                        refs.append(sentence)
                seconds += time.perf_counter() - start
                scores = boundary_errors(predicted, truth)
                counts.append(scores["count_correct"])
                errors.extend(pair_boundary_errors(predicted, truth))
            quality = ""
            if engine is not None:
                from analysis.metrics import validation_scores

                metrics, _ = validation_scores([str(i) for i in range(len(refs))], refs, hyps)
                quality = f" {metrics['bleu']:6.2f} {metrics['chrf']:6.2f}"
            rows.append(f"| {name:13s} | {len(counts):6d} | {100 * np.mean(counts):6.1f} | {np.mean(errors):6.3f} | "
                        f"{np.percentile(errors, 90):6.3f} | {np.max(errors):6.3f} | {seconds / video_s:8.3f} | "
                        + (f"{100 * scan_s / seconds:5.1f} |" if engine is None else "    - |")
                        + (f"{quality} |" if quality else ""))
    header = ("| domain        | videos | count right % | mean err s | p90 err s | max err s | s per video s "
              "| scan % |")
    print(header + (" BLEU chrF |" if engine is not None else ""))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
