"""Timed captions: sentence segmentation of long synthetic videos, the captions CLI (SRT/WebVTT/JSON) with the
demo models, incremental features equal to one-shot features, and memory bounded by the longest segment."""

from __future__ import annotations

import itertools
import json
import re

import cv2
import numpy as np
import pytest
import srt
import torch
import webvtt

from slt.__main__ import main as slt_main
from slt.captions import (
    Caption,
    CaptionStream,
    caption_video,
    captions_to_srt,
    captions_to_vtt,
    crops_bound,
    iter_sampled_crops,
    segment_video,
)
from slt.data.synth import Grammar, get_domain
from slt.data.synth.long import (
    generate_long_videos,
    plan_long_video,
    read_long_manifest,
    render_long_video,
)
from slt.errors import InvalidArgumentError, ModelUnavailableError
from slt.video import PreprocessConfig
from slt.video.clips import (
    build_clips,
    clip_frame_indices,
    clip_padding,
    join_clip_features,
)
from slt.video.pipeline import locate_signer
from slt.video.segment import (
    MotionSegmenter,
    SegmentationConfig,
    boundary_errors,
    global_shift,
    grey_normalised,
    motion_energy,
    pair_boundary_errors,
    stabilized_energy,
    thumbnail,
)

# The look of the demo set's domain B (a webcam-like plain room with sensor noise, slight shake and flicker).
WEBCAM = dict(background="plain", background_colours=((60, 100, 70), (115, 95, 70)), noise_sigma=3.0, shake=0.5,
              brightness_jitter=0.02)
# Calibration (bench/bench_captions.py, 30 videos per domain, seed 100): mean boundary error 0.04-0.07 s on
# studio/webcam and about 0.1 s on the textured "instructional" preset, max 0.3 s. 0.25 s (about 3 sampled frames)
# leaves room for the unlucky draw of a small test set while still failing if a rest or a sign is missed
# (that costs a whole rest or sentence: >= 0.8 s) or if the boundaries are shifted by a smoothing bug.
MEAN_ERROR_LIMIT_S = 0.25


def _segments_of(video: str, segmentation: SegmentationConfig | None = None):
    return segment_video(video, segmentation, PreprocessConfig(detector="hog", size=128))


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> dict[str, list[dict]]:
    root = tmp_path_factory.mktemp("long")
    return {name: read_long_manifest(generate_long_videos(root / name, domain, 6, seed=3, **overrides))
            for name, (domain, overrides) in {"studio": ("studio", {}), "webcam": ("instructional", WEBCAM),
                                              "instructional": ("instructional", {})}.items()}


def test_long_video_truth_matches_the_rendered_motion():
    """Outside the true sentence times the (noise-free) frames do not change; inside, the hands move."""
    spec = get_domain("studio")
    rng = np.random.default_rng(5)
    long = plan_long_video(Grammar(spec.vocabulary).sample(rng, 3), spec, rng)
    frames = list(render_long_video(long, spec))
    assert len(frames) == long.n_frames
    changed = np.array([np.any(a != b) for a, b in itertools.pairwise(frames)])  # changed[i]: frame i -> i + 1
    moving = np.zeros(len(changed), bool)
    for segment in long.segments():
        first, end = round(segment["start_s"] * spec.fps), round(segment["end_s"] * spec.fps)
        moving[first - 1:end - 1] = True  # frame `first` is the first off the rest pose, end - 1 the last
        assert changed[first - 1:end - 1].mean() > 0.75, segment  # a few signs hold a pose for a frame or two
    assert not changed[~moving].any()
    gaps = [b["start_s"] - a["end_s"] for a, b in itertools.pairwise(long.segments())]
    assert all(0.76 <= g <= 1.84 for g in gaps), gaps


@pytest.mark.parametrize("name, min_count_right", [("studio", 6), ("webcam", 6), ("instructional", 5)])
def test_segmentation_finds_every_sentence(long_videos, name, min_count_right):
    """Clean and webcam-like videos: every sentence found. The textured, shaking, flickering "instructional"
    preset is the hard case (slow signing changes the crop little): nearly all videos right (bench: 93-97 %)."""
    errors, right = [], 0
    for row in long_videos[name]:
        truth = [(s["start_s"], s["end_s"]) for s in row["segments"]]
        predicted = [(s.start_s, s.end_s) for s in _segments_of(row["video_path"])]
        right += len(predicted) == len(truth)
        errors += pair_boundary_errors(predicted, truth)
    assert right >= min_count_right, (name, right)
    assert np.mean(errors) <= MEAN_ERROR_LIMIT_S, np.mean(errors)


def _textured_scene(shift: tuple[float, float], hand_at: int | None = None) -> np.ndarray:
    """A 256x256 textured frame moved by `shift` (camera shake), a hand-sized bright square drawn on the scene
    (moves with the camera), cut as a signer crop whose box leaves the frame at the right (black border) -> 128x128
    uint8 RGB (the box as crop_square pads it)."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(40, 200, (256, 256)).astype(np.float32), (0, 0), 1.5)
    if hand_at is not None:
        texture[120:150, hand_at:hand_at + 30] = 250.0
    moved = cv2.warpAffine(texture, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (256, 256),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    crop = np.zeros((256, 256), np.float32)
    crop[:, :200] = moved[:, 56:]  # box x 56..312: its last 56 columns are outside the frame (black)
    grey = cv2.resize(np.clip(crop, 0, 255).astype(np.uint8), (128, 128), interpolation=cv2.INTER_AREA)
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_stabilized_energy_ignores_camera_shake_but_not_a_moving_hand():
    """Over a textured background a 1.5 px shake changes the plain thumbnail difference as much as a moving hand;
    the stabilized energy removes the shake (the frame's black border stays still) and keeps the hand."""
    still = _textured_scene((0.0, 0.0), hand_at=100)
    shaken = _textured_scene((1.5, -1.2), hand_at=100)
    hand_moved = _textured_scene((0.0, 0.0), hand_at=112)
    hand_moved_and_shaken = _textured_scene((1.5, -1.2), hand_at=112)

    def plain(a, b):
        return motion_energy(thumbnail(a), thumbnail(b))

    def stable(a, b):
        return stabilized_energy(grey_normalised(a, 128), grey_normalised(b, 128))

    dx, dy = global_shift(grey_normalised(still, 128), grey_normalised(shaken, 128))
    assert dx == pytest.approx(0.75, abs=0.2) and dy == pytest.approx(-0.6, abs=0.2)  # half size: 128 of 256 px
    assert stable(still, still) == 0.0
    assert plain(still, shaken) > 0.5 * plain(still, hand_moved)  # the problem: shake looks like signing
    assert stable(still, shaken) < 0.2 * stable(still, hand_moved)
    assert stable(still, hand_moved_and_shaken) > 0.7 * stable(still, hand_moved)
    gain = np.clip(still.astype(np.float32) * 1.04, 0, 255).astype(np.uint8)  # flicker
    assert stable(still, gain) < 0.2 * stable(still, hand_moved)


def test_boundary_errors_pairs_by_overlap():
    scores = boundary_errors([(0.0, 1.0), (2.2, 3.0), (9.0, 9.5)], [(0.1, 1.1), (2.0, 3.0)])
    assert scores["count_correct"] == 0.0 and scores["matched"] == 2.0
    assert scores["mean_boundary_error_s"] == pytest.approx((0.1 + 0.1 + 0.2 + 0.0) / 4)
    assert np.isnan(boundary_errors([], [(0.0, 1.0)])["mean_boundary_error_s"])


def test_no_rest_falls_back_to_max_duration_cuts_and_fixed_windows(tmp_path):
    """A signer who never rests still gets captions, at most max_duration_s long, covering the signing."""
    manifest = generate_long_videos(tmp_path, "studio", 1, seed=1, min_sentences=4, max_sentences=4, gap_s=(0.04, 0.08))
    row = read_long_manifest(manifest)[0]
    segments = _segments_of(row["video_path"], SegmentationConfig(max_duration_s=3.0))
    assert len(segments) >= 3
    assert all(s.end_s - s.start_s <= 3.0 + 0.1 for s in segments)
    assert {s.reason for s in segments[:-1]} == {"max_duration"}
    for before, after in itertools.pairwise(segments):
        assert after.start_s == pytest.approx(before.end_s, abs=0.09)  # cut, not a gap
    fixed = _segments_of(row["video_path"], SegmentationConfig(method="fixed", window_s=2.0))
    duration = row["n_frames"] / row["fps"]
    assert len(fixed) == int(np.ceil(duration / 2.0 - 1e-6)) or len(fixed) == int(duration / 2.0) + 1
    assert all(s.reason == "window" for s in fixed)
    assert fixed[0].start_s == 0.0 and fixed[-1].end_s == pytest.approx(duration, abs=0.1)


@pytest.mark.parametrize("kwargs", [dict(method="pauses"), dict(min_rest_s=0), dict(min_duration_s=20.0),
                                    dict(threshold=-1.0), dict(threshold_ratio=1.5), dict(lag=0),
                                    dict(align_size=16)])
def test_bad_segmentation_settings_raise(kwargs):
    with pytest.raises(InvalidArgumentError):
        SegmentationConfig(**kwargs)


def test_segmenter_rejects_time_going_backwards():
    segmenter = MotionSegmenter()
    crop = np.zeros((32, 32, 3), np.uint8)
    segmenter.push(1.0, crop)
    with pytest.raises(InvalidArgumentError, match="increase"):
        segmenter.push(1.0, crop)


# ------------------------------------------------------------------------------------------ with the demo models
@pytest.fixture(scope="module")
def demo_engine(demo_bundle_dir):
    from slt.engine import TranslationEngine
    from slt.modelset import read_demo_bundle

    return TranslationEngine(read_demo_bundle(demo_bundle_dir).model_set(), device="cpu")


def _srt_spec_ok(text: str) -> bool:
    """SubRip as players read it: blocks of index line, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text, blank line."""
    blocks = text.strip("\n").split("\n\n")
    stamp = r"\d{2}:\d{2}:\d{2},\d{3}"
    return all(re.fullmatch(rf"{i + 1}\n{stamp} --> {stamp}\n[^\n]+", b) for i, b in enumerate(blocks))


def _vtt_spec_ok(text: str) -> bool:
    """WebVTT: `WEBVTT` first line, blank line, cues of optional id, `HH:MM:SS.mmm --> HH:MM:SS.mmm`, text."""
    head, *cues = text.strip("\n").split("\n\n")
    stamp = r"\d{2}:\d{2}:\d{2}\.\d{3}"
    return head == "WEBVTT" and all(re.fullmatch(rf"(\S+\n)?{stamp} --> {stamp}\n[^\n]+", c) for c in cues)


def test_captions_cli_end_to_end(demo_bundle_dir, long_videos, tmp_path, capsys):
    row = long_videos["webcam"][0]
    srt_path, vtt_path = tmp_path / "out" / "a.srt", tmp_path / "out" / "a.vtt"
    assert slt_main(["captions", row["video_path"], "--model-set", "demo", "--srt", str(srt_path),
                     "--vtt", str(vtt_path), "--json", "--beam-size", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    captions = result["captions"]
    truth = row["segments"]
    assert len(captions) == len(truth)
    for caption, sentence in zip(captions, truth, strict=True):
        assert abs(caption["start_s"] - sentence["start_s"]) < 0.3 and abs(caption["end_s"] - sentence["end_s"]) < 0.3
        assert caption["texts"]["eng_Latn"].strip()
        assert caption["n_features"] > 0
    srt_text, vtt_text = srt_path.read_text(), vtt_path.read_text()
    assert _srt_spec_ok(srt_text) and _vtt_spec_ok(vtt_text)
    parsed = list(srt.parse(srt_text))
    assert [s.content for s in parsed] == [c["texts"]["eng_Latn"] for c in captions]
    assert [round(s.start.total_seconds(), 3) for s in parsed] == [c["start_s"] for c in captions]
    cues = webvtt.from_string(vtt_text)
    assert [c.text for c in cues] == [c["texts"]["eng_Latn"] for c in captions]
    assert [c.end for c in cues] == [_vtt_stamp(c["end_s"]) for c in captions]


def _vtt_stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def test_caption_files_escape_and_keep_cues_valid():
    captions = [Caption(0, 0.0, 1.5, {"eng_Latn": "A <b> & c --> d"}, "rest"),
                Caption(1, 3661.25, 3662.0, {"eng_Latn": "two\n\nlines"}, "rest"),
                Caption(2, 3663.0, 3664.0, {"eng_Latn": ""}, "end")]
    vtt_text, srt_text = captions_to_vtt(captions, "eng_Latn"), captions_to_srt(captions, "eng_Latn")
    assert _vtt_spec_ok(vtt_text) and _srt_spec_ok(srt_text)
    assert "A &lt;b&gt; &amp; c -&gt; d" in vtt_text and "01:01:01.250 --> 01:01:02.000" in vtt_text
    assert [s.content for s in srt.parse(srt_text)] == ["A <b> & c -> d", "two lines", "…"]
    with pytest.raises(InvalidArgumentError, match="fra_Latn"):
        captions_to_srt(captions, "fra_Latn")


def test_cli_errors_are_messages(demo_bundle_dir, tmp_path, capsys):
    assert slt_main(["captions", str(tmp_path / "missing.mp4"), "--model-set", "demo"]) == 1
    assert "not found" in capsys.readouterr().err
    assert slt_main(["captions", str(tmp_path / "missing.mp4"), "--model-set", "demo", "--max-duration", "0.1",
                     "--min-duration", "0.5"]) == 1
    assert "min_duration_s" in capsys.readouterr().err


def test_incremental_features_equal_one_shot_features(demo_engine, long_videos):
    """Clips run while the sentence is signed and reused at its end give the same features as running every clip
    of the segment at once; no clip runs twice."""
    row = long_videos["studio"][1]
    kept: dict[int, np.ndarray] = {}

    class Recording(CaptionStream):
        def push(self, time_s, crop, wall_s=None):
            kept[self.n_samples] = crop
            return super().push(time_s, crop, wall_s)

    stream = Recording(demo_engine, keep_features=True)
    located = locate_signer(row["video_path"], stream.config)
    for _, time_s, crop in iter_sampled_crops(row["video_path"], located.box, located.info.fps,
                                              located.info.n_frames, stream.config):
        stream.push(time_s, crop)
    stream.finish()
    assert len(stream.captions) == len(row["segments"])
    expected_clips = 0
    for caption in stream.captions:
        n = caption.last_sample - caption.first_sample + 1
        windows = [caption.first_sample + w for w in clip_frame_indices(n, 1.0, stream.clip_frames, 1, 1.0, stream.hop)]
        expected_clips += len(windows)
        clips = build_clips(kept, windows, stream.config.mean, stream.config.std)
        one_shot = join_clip_features(demo_engine.clip_features(clips, [clip_padding(w) for w in windows]),
                                      [clip_padding(w) for w in windows])
        assert caption.features.shape == one_shot.shape
        torch.testing.assert_close(caption.features, one_shot, rtol=1e-5, atol=1e-5)
    # Incremental clips whose frames later fell past the segment's end are the only extra work.
    assert expected_clips <= stream.clips_run <= expected_clips + len(stream.captions)


def test_memory_is_bounded_by_the_longest_segment_not_the_video(demo_engine, tmp_path):
    """A video four times longer holds no more crops at once; the bound follows from the segmentation settings."""
    peaks, samples = {}, {}
    for n in (3, 12):
        manifest = generate_long_videos(tmp_path / str(n), "studio", 1, seed=2, min_sentences=n, max_sentences=n)
        row = read_long_manifest(manifest)[0]
        result = caption_video(demo_engine, row["video_path"])
        assert len(result.captions) == n
        peaks[n] = result.peak_crops
        samples[n] = round(row["n_frames"] / row["fps"] * 12.5)
    bound = crops_bound(SegmentationConfig(), CaptionStream(demo_engine).config)
    assert peaks[12] <= bound and peaks[3] <= bound
    assert peaks[12] < samples[12] / 4  # about one sentence (plus context) at a time, not the video


def test_stream_refuses_wrong_crops_and_unknown_encoder(demo_engine):
    stream = CaptionStream(demo_engine)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        stream.push(0.0, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ModelUnavailableError, match="unknown encoder"):
        CaptionStream(demo_engine, encoder="nope")


# ------------------------------------------------------------------------------------------ live
def test_live_session_features_equal_one_shot_features_of_the_same_frames(demo_engine, long_videos):
    from slt.live import LiveCaptionSession, play_file

    row = long_videos["webcam"][2]
    session = LiveCaptionSession(demo_engine, keep_features=True)
    kept: dict[int, np.ndarray] = {}
    push = session.stream.push

    def recording_push(time_s, crop, wall_s=None):
        kept[session.stream.n_samples] = crop
        return push(time_s, crop, wall_s)

    session.stream.push = recording_push
    counts = play_file(session, row["video_path"], realtime=False)
    assert counts["dropped"] == 0 and counts["frames"] == row["n_frames"]
    assert session.faces_seen == session.detections > 0  # the box came from the face detector
    assert len(session.captions) == len(row["segments"])
    assert [c.index for c in session.captions] == list(range(len(row["segments"])))
    for caption, truth in zip(session.captions, row["segments"], strict=True):
        assert abs(caption.start_s - truth["start_s"]) < 0.3 and abs(caption.end_s - truth["end_s"]) < 0.3
        assert caption.latency_s is not None and caption.latency_s >= 0
        n = caption.last_sample - caption.first_sample + 1
        windows = [caption.first_sample + w for w in clip_frame_indices(n, 1.0, session.stream.clip_frames, 1, 1.0,
                                                                        session.stream.hop)]
        paddings = [clip_padding(w) for w in windows]
        clips = build_clips(kept, windows, session.config.mean, session.config.std)
        one_shot = join_clip_features(demo_engine.clip_features(clips, paddings), paddings)
        torch.testing.assert_close(caption.features, one_shot, rtol=1e-5, atol=1e-5)


def test_live_session_resamples_an_irregular_camera_onto_the_model_grid(demo_engine):
    from slt.live import LiveCaptionSession

    session = LiveCaptionSession(demo_engine)
    frame = np.full((120, 160, 3), 90, np.uint8)
    times = np.cumsum(np.random.default_rng(0).uniform(0.05, 0.2, size=60))  # 5-20 frames per second
    for t in times:
        assert session.push_frame(frame, time_s=float(t)) == []  # a still picture never makes a caption
    assert session.stream.n_samples == pytest.approx((times[-1] - times[0]) / 0.08, abs=1.5)
    assert session.box is not None and session.faces_seen == 0  # nobody there: centre box
    session.push_frame(frame, time_s=float(times[-1]) + 5.0)  # a stall restarts the grid instead of filling it
    assert session.stream.n_samples == pytest.approx((times[-1] - times[0]) / 0.08 + 1, abs=1.5)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        session.push_frame(np.zeros((10, 10), np.uint8))
    assert session.finish() == []


def test_live_cli_realtime_prints_captions_in_order(demo_bundle_dir, long_videos, capsys):
    row = long_videos["studio"][0]
    assert slt_main(["live", row["video_path"], "--model-set", "demo", "--realtime", "--json", "--beam-size", "2"]) == 0
    captions = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(captions) == len(row["segments"])
    assert [c["start_s"] for c in captions] == sorted(c["start_s"] for c in captions)
    assert all(c["latency_s"] >= 0 and c["texts"]["eng_Latn"] for c in captions)
