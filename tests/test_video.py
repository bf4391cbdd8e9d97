"""slt.video on real videos: OpenCV decoding, real dlib detectors, real optical flow (CPU, offline)."""

from __future__ import annotations

import dataclasses
import os
import time
import tracemalloc

import cv2
import numpy as np
import pytest
import torch

from slt.errors import (
    EmptyVideoError,
    InvalidArgumentError,
    NoSignerError,
    PreprocessConfigError,
    VideoReadError,
    VideoTooLongError,
    VideoTooShortError,
)
from slt.video import PreprocessConfig, join_clip_features, preprocess_video, preprocess_videos, probe_video
from slt.video.clips import clip_frame_indices, clip_padding, crop_square
from slt.video.decode import iter_frames
from slt.video.detect import _load_detector, cnn_model_path, detect_faces, downscale, get_detector
from slt.video.scan import FrameBuffer, ScanJob, scan_video, scan_videos
from slt.video.signer_box import Detection, choose_face_box, expand_face_box, iou, link_tubes, make_square
from tests.helpers.video import (
    ASTRONAUT_FACE,
    astronaut_bgr,
    astronaut_video,
    carphone_path,
    level_video,
    two_face_video,
    write_video,
)

BLACK = (0.0 - 0.45) / 0.225
HOG = PreprocessConfig(detector="hog")


def contains(outer, inner, tol: float = 0.0) -> bool:
    return (outer[0] <= inner[0] + tol and outer[1] <= inner[1] + tol
            and outer[2] >= inner[2] - tol and outer[3] >= inner[3] - tol)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    astro, astro_face = astronaut_video(root / "astronaut.mp4")
    two, static_face, moving_face = two_face_video(root / "two_faces.mp4")
    return {"root": root, "astro": astro, "astro_face": astro_face, "two": two,
            "static_face": static_face, "moving_face": moving_face}


@pytest.fixture(scope="module")
def astro_result(videos):
    return preprocess_video(videos["astro"], HOG)


# ------------------------------------------------------------------ decoding
def test_probe_carphone_reads_container_facts():
    info = probe_video(carphone_path())
    assert (info.width, info.height, info.n_frames) == (176, 144, 120)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration_s == pytest.approx(120 / 29.97, abs=0.01)


def test_probe_counts_frames_when_container_misreports(tmp_path):
    full = write_video(tmp_path / "full.avi", (np.full((64, 64, 3), 4 * i, np.uint8) for i in range(30)), 25, "MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # header still says 30 frames
    assert cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT) == 30
    decodable = sum(1 for _ in iter_frames(cut))
    assert 0 < decodable < 30
    assert probe_video(cut).n_frames == decodable
    assert probe_video(cut).reported_frames == 30
    # Preprocessing counts by decoding too, and the container's 1.2 s claim does not trip a 1 s limit.
    config = PreprocessConfig(detector="hog", center_crop_fallback=True, max_duration_s=1.0)
    r = preprocess_video(cut, config)
    assert r.info.n_frames == decodable and max(r.clip_indices[0]) == decodable - 1
    assert r.paddings == [128 - len(set(r.clip_indices[0]))]


def test_not_a_video_missing_and_empty_files(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoReadError, match="cannot open"):
        probe_video(text)
    with pytest.raises(VideoReadError, match="not found"):
        preprocess_video(tmp_path / "missing.mp4", HOG)
    with pytest.raises(VideoReadError, match="Not a file"):
        probe_video(tmp_path)
    (tmp_path / "zero_bytes.mp4").write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="0 bytes"):
        preprocess_video(tmp_path / "zero_bytes.mp4", HOG)


def test_zero_frame_videos(tmp_path):
    for name, fourcc in (("zero.avi", "MJPG"), ("zero.mp4", "mp4v")):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 25, (64, 64))
        writer.release()
    with pytest.raises(EmptyVideoError, match="no decodable frames"):
        preprocess_video(tmp_path / "zero.avi", HOG)
    with pytest.raises(VideoReadError, match="MP4/MOV file, but OpenCV finds no decodable video stream"):
        preprocess_video(tmp_path / "zero.mp4", HOG)


def test_too_short_and_too_long(tmp_path, videos):
    short = level_video(tmp_path / "short.avi", 5, 25.0)
    with pytest.raises(VideoTooShortError, match="only 5 decodable frames; at least 8"):
        preprocess_video(short, PreprocessConfig(detector="hog", center_crop_fallback=True))
    with pytest.raises(VideoTooLongError, match="longer than the limit of 1 s"):
        preprocess_video(videos["astro"], PreprocessConfig(detector="hog", max_duration_s=1.0))  # 40 frames = 1.6 s
    with pytest.raises(VideoTooLongError, match="larger than the limit"):
        preprocess_video(videos["astro"], PreprocessConfig(detector="hog", max_bytes=1000))
    # The decode pass enforces the limit itself (containers may under-report their length).
    with pytest.raises(VideoTooLongError, match="more than 10 frames"):
        scan_video(videos["astro"], detector="hog", detect_every=16, detect_max_side=512, upsample=1,
                   max_frames=10, max_duration_s=0.4, fps=25.0)
    # A limit the video meets passes.
    ok = preprocess_video(videos["astro"], PreprocessConfig(detector="hog", max_duration_s=2.0, max_bytes=10**8))
    assert ok.info.n_frames == 40


def test_bad_config_is_rejected():
    with pytest.raises(PreprocessConfigError, match="Unknown face detector 'yolo'"):
        PreprocessConfig(detector="yolo")
    with pytest.raises(PreprocessConfigError, match="detect_every"):
        PreprocessConfig(detect_every=0)
    with pytest.raises(PreprocessConfigError, match="min_face_fraction"):
        PreprocessConfig(min_face_fraction=1.5)
    with pytest.raises(PreprocessConfigError, match="max_duration_s"):
        PreprocessConfig(max_duration_s=-3)
    with pytest.raises(PreprocessConfigError, match="frame_buffer_mb must be an integer >= 0, got -1"):
        PreprocessConfig(frame_buffer_mb=-1)


# ------------------------------------------------------------------ detection
def test_both_detectors_find_the_astronaut_and_downscaled_boxes_map_back():
    rgb = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2RGB)
    for detector, upsample_full in (("hog", 1), ("cnn", 0)):
        full = detect_faces(rgb, 1.0, 1.0, detector, upsample_full)
        small, fx, fy = downscale(rgb, 256)
        assert small.shape[:2] == (256, 256) and fx == fy == 0.5
        mapped = detect_faces(small, fx, fy, detector, 1)
        face_full = max(full, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        assert iou(face_full, ASTRONAUT_FACE) > 0.8, (detector, face_full)  # the known face region
        closest = min(mapped, key=lambda b: max(abs(np.subtract(b, face_full))))
        # Within ~8 % of the face width (90 px): a 2x coarser search grid, mapped back.
        assert max(abs(np.subtract(closest, face_full))) <= 8, (detector, full, mapped)


def test_detectors_are_loaded_once():
    assert cnn_model_path().name == "mmod_human_face_detector.dat" and cnn_model_path().stat().st_size > 100_000
    get_detector("hog")
    misses = _load_detector.cache_info().misses
    for _ in range(3):
        get_detector("hog")
    assert _load_detector.cache_info().misses == misses
    with pytest.raises(PreprocessConfigError):
        get_detector("haar")


# ------------------------------------------------------------------ signer box
def test_box_expansion_and_square():
    assert expand_face_box((100, 100, 140, 150)) == (40, 50, 200, 300)
    square = make_square((40, 50, 200, 300))
    assert square[2] - square[0] == square[3] - square[1] == 250
    assert (square[0] + square[2]) / 2 == 120 and (square[1] + square[3]) / 2 == 175


def test_tubes_keep_persistent_faces_and_fall_back():
    a, b = (10, 10, 50, 50), (200, 10, 260, 70)
    frames = [[Detection(i, a), Detection(i, b)] for i in range(4)]
    tubes = link_tubes(frames)
    assert sorted(len(t.detections) for t in tubes) == [4, 4]
    choice = choose_face_box(frames)  # no motion measured -> the largest tube
    assert choice.method == "largest" and choice.face_box == pytest.approx(b)
    frames[0][0].motion = 5.0  # motion in the small one wins
    assert choose_face_box(frames).face_box == pytest.approx(a)
    # A face present in only 2 of 4 frames (not > 50 %) is dropped; nothing else persists -> centre.
    sparse = [[Detection(0, a), Detection(0, b)], [Detection(1, a)], [], [Detection(3, b)]]
    assert choose_face_box(sparse).method == "center"
    single = [[Detection(0, (0, 0, 10, 10))], [], [Detection(2, (2, 2, 12, 12))]]
    assert choose_face_box(single).face_box == pytest.approx((1, 1, 11, 11))


# ------------------------------------------------------------------ end to end
def test_astronaut_box_clips_and_preview(videos, astro_result):
    r = astro_result
    x0, y0, x1, y1 = r.box
    assert x1 - x0 == y1 - y0  # square
    face = videos["astro_face"]
    w, h = face[2] - face[0], face[3] - face[1]
    assert contains(r.box, face)
    assert contains(r.box, expand_face_box(face), tol=0.25 * w)  # head, hands and torso region
    assert 4 * w * 0.8 <= x1 - x0 <= 5 * h * 1.25
    assert (r.faces_found, r.frames_sampled, r.used_center_crop, r.box_method) == (3, 3, False, "mean")
    # 40 frames at 25 fps: one clip, frames 0, 2, ..., 38 then the last frame repeated.
    assert r.clips.shape == (1, 3, 128, 224, 224) and r.clips.dtype == torch.float32
    assert r.clip_indices[0][:3] == [0, 2, 4] and r.clip_indices[0][-1] == 39
    assert r.paddings == [128 - 21]
    assert r.info.n_frames == 40 and r.info.duration_s == pytest.approx(1.6)
    assert r.preview.dtype == np.uint8 and r.preview.ndim == 3 and r.preview.shape[0] == 112
    assert r.preview.shape[2] == 3 and r.preview.shape[1] > 6 * 112
    assert set(r.timings) >= {"decode", "detect", "crop", "normalise", "total"}


def test_normalisation_and_black_padding(videos, astro_result):
    r = astro_result
    assert r.box[1] < 0  # the box starts above the frame: the top rows are black padding
    top_rows = round(-r.box[1] * 224 / (r.box[3] - r.box[1])) - 1
    assert torch.allclose(r.clips[0, :, :, :top_rows, :], torch.tensor(BLACK))
    assert r.clips.min().item() == pytest.approx(BLACK)
    assert r.clips.max().item() <= (1 - 0.45) / 0.225 + 1e-6
    # The first frame of the clip is exactly the RGB crop of the decoded first frame, normalised.
    _, frame = next(iter(iter_frames(videos["astro"])))
    crop = torch.from_numpy(crop_square(frame, r.box, 224)).permute(2, 0, 1).float()
    assert torch.allclose(r.clips[0, :, 0], (crop / 255 - 0.45) / 0.225, atol=1e-5)
    # RGB order: a pure blue BGR frame lands in the third channel.
    blue = np.zeros((50, 50, 3), np.uint8)
    blue[..., 0] = 255
    assert crop_square(blue, (0, 0, 50, 50), 224)[..., 2].min() == 255


def _peak_traced(fn):
    tracemalloc.start()  # numpy (and OpenCV's numpy-backed frames) report their buffers to tracemalloc
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_full_resolution_frames_are_kept_only_within_the_frame_buffer(tmp_path):
    """A 1280x720 video of 48 frames is 133 MB decoded. The scan keeps the 25 frames the clips sample (69 MB) when
    they fit `frame_buffer_mb` (one decode), else nothing (a second decode: a few frames in flight); the crops
    are the same either way, also for two videos sharing one budget."""
    video, face = astronaut_video(tmp_path / "hd.mp4", n_frames=48, size=(1280, 720), patch_size=420, at=(400, 60))
    frame_bytes = 1280 * 720 * 3
    runs = {}
    for budget_mb in (512, 20, 0):
        config = dataclasses.replace(HOG, frame_buffer_mb=budget_mb)
        runs[budget_mb] = _peak_traced(lambda c=config: preprocess_video(video, c, materialize=False))
        print(f"\nframe_buffer_mb={budget_mb}: {runs[budget_mb][0].decode_passes} decode pass(es), peak traced "
              f"memory {runs[budget_mb][1] / 1e6:.1f} MB (full video {48 * frame_bytes / 1e6:.0f} MB)")
    (once, once_peak), (over, over_peak), (twice, twice_peak) = runs[512], runs[20], runs[0]
    assert (once.decode_passes, over.decode_passes, twice.decode_passes) == (1, 2, 2)
    assert once.faces_found == 3 and contains(once.box, face)
    assert len(set(once.clip_indices[0])) == 25  # 0, 2, ..., 46 and the last frame 47
    for other in (over, twice):
        assert other.box == once.box and other.clip_indices == once.clip_indices
        assert other.crops.keys() == once.crops.keys()
        assert all(np.array_equal(other.crops[i], once.crops[i]) for i in once.crops)
        assert np.array_equal(other.preview, once.preview)
    # Streaming: a couple of full frames in flight plus 25 crops of 224x224 (3.8 MB).
    assert twice_peak < 6 * frame_bytes, f"peak {twice_peak / 1e6:.0f} MB"
    assert over_peak < 20 * 2**20 + 6 * frame_bytes, f"peak {over_peak / 1e6:.0f} MB over a 20 MB buffer"
    assert once_peak < 25 * frame_bytes + 6 * frame_bytes, f"peak {once_peak / 1e6:.0f} MB"
    assert once_peak > 25 * frame_bytes, "the 25 sampled frames were kept"

    # Two videos, a budget for one: the first is decoded once; both crop exactly as alone.
    other_video, _ = astronaut_video(tmp_path / "hd2.mp4", n_frames=48, size=(1280, 720), patch_size=400,
                                     at=(300, 80))
    alone = preprocess_video(other_video, HOG, materialize=False)
    both = list(preprocess_videos([video, other_video], dataclasses.replace(HOG, frame_buffer_mb=100),
                                  materialize=False))
    assert both[0].decode_passes == 1
    for got, want in zip(both, (once, alone), strict=True):
        assert got.box == want.box and got.crops.keys() == want.crops.keys()
        assert all(np.array_equal(got.crops[i], want.crops[i]) for i in want.crops)


def test_concurrent_calls_share_one_process_wide_frame_pool(tmp_path, monkeypatch):
    """Each call borrows its frame buffer from the process's pool while it runs: with the pool lent out (another
    upload being preprocessed) a call decodes twice, with the same crops; every loan comes back, also when a call
    fails or its caller stops early."""
    from slt.video import pipeline
    from slt.video.scan import FramePool

    video, _ = astronaut_video(tmp_path / "a.mp4", n_frames=40)
    pool = FramePool(64 * 2**20)
    monkeypatch.setattr(pipeline, "FRAME_POOL", pool)
    config = dataclasses.replace(HOG, frame_buffer_mb=48)
    alone = preprocess_video(video, config, materialize=False)
    assert alone.decode_passes == 1 and pool.free == pool.total
    frame_bytes = alone.info.width * alone.info.height * 3
    with pool.borrow(pool.total - frame_bytes) as other:  # another call holds all but one frame's room
        assert other.budget == pool.total - frame_bytes and pool.free == frame_bytes
        squeezed = preprocess_video(video, config, materialize=False)
        assert pool.free == frame_bytes
    assert pool.free == pool.total
    assert squeezed.decode_passes == 2
    again = preprocess_video(video, config, materialize=False)
    assert again.decode_passes == 1, "the loan came back: the next call keeps its frames again"
    assert squeezed.box == alone.box and squeezed.crops.keys() == alone.crops.keys()
    assert all(np.array_equal(squeezed.crops[i], alone.crops[i]) for i in alone.crops)
    with pytest.raises(VideoReadError):
        preprocess_video(tmp_path / "missing.mp4", config)
    assert pool.free == pool.total
    videos = preprocess_videos([video, video], config, materialize=False)
    next(videos)
    assert pool.free < pool.total  # lent while the caller may still ask for the second video
    videos.close()
    assert pool.free == pool.total


def test_scan_keeps_the_frames_asked_for_until_its_budget_runs_out(tmp_path):
    """The reader keeps the `keep` frames (and the last one) unchanged; over budget it keeps none and gives the
    room back."""
    video, _ = astronaut_video(tmp_path / "a.mp4", n_frames=21)
    decoded = dict(iter_frames(video))
    frame_bytes = decoded[0].nbytes
    keep = frozenset(range(0, 21, 4))

    def scan(buffer):
        return next(scan_videos([ScanJob(video, keep=keep)], detector="hog", detect_every=8, detect_max_side=None,
                                upsample=0, buffer=buffer))

    roomy = FrameBuffer(100 * frame_bytes)
    kept = scan(roomy).frames
    assert sorted(kept) == [0, 4, 8, 12, 16, 20] and all(np.array_equal(kept[i], decoded[i]) for i in kept)
    assert roomy.free == 94 * frame_bytes
    roomy.give_back(kept)
    assert roomy.free == 100 * frame_bytes
    tight = FrameBuffer(3 * frame_bytes)
    assert scan(tight).frames is None and tight.free == 3 * frame_bytes
    assert scan(None).frames is None  # no buffer: nothing kept
    # The last decoded frame is kept too (clips past the end repeat it), also when it is not asked for.
    last = next(scan_videos([ScanJob(video, keep=frozenset({0, 4}))], detector="hog", detect_every=8,
                            detect_max_side=None, upsample=0, buffer=FrameBuffer(10 * frame_bytes)))
    assert sorted(last.frames) == [0, 4, 20]


def test_two_faces_pick_the_moving_one(videos):
    r = preprocess_video(videos["two"], HOG)
    assert r.box_method == "motion"
    assert contains(r.box, videos["moving_face"])
    assert not contains(r.box, videos["static_face"])
    assert r.box[2] - r.box[0] == r.box[3] - r.box[1]


def test_no_signer_error_names_counts_and_centre_crop_fallback(tmp_path):
    video = level_video(tmp_path / "levels.avi", 60, 50.0)
    with pytest.raises(NoSignerError, match="in 0 of 4 sampled frames") as caught:
        preprocess_video(video, HOG)
    assert (caught.value.faces_found, caught.value.frames_sampled) == (0, 4)
    r = preprocess_video(video, PreprocessConfig(detector="hog", center_crop_fallback=True))
    assert r.used_center_crop and r.box == (16, 0, 80, 64)
    # 50 fps: sampling rate 2 at 25 fps means every 4th source frame; 60 frames -> 0..56 (15) + the last
    # frame 59 (clamped), the rest repeats it.
    assert r.clip_indices[0][:4] == [0, 4, 8, 12] and r.clip_indices[0][15] == 59 and r.paddings == [128 - 16]
    means = r.clips[0].mean(dim=(0, 2, 3)) * 0.225 + 0.45  # per sampled frame, back in [0, 1]
    for k in range(15):
        assert means[k].item() * 255 == pytest.approx(4 * (4 * k), abs=1.5)
    assert means[-1].item() * 255 == pytest.approx(4 * 59, abs=1.5)


def test_cnn_end_to_end_on_small_frames(tmp_path):
    video, face = astronaut_video(tmp_path / "small.mp4", n_frames=20, size=(320, 180), patch_size=150, at=(90, 0))
    r = preprocess_video(video, PreprocessConfig(detector="cnn", detect_max_side=320))
    assert (r.faces_found, r.frames_sampled) == (2, 2)
    assert contains(r.box, face) and r.box[2] - r.box[0] == r.box[3] - r.box[1]


# ------------------------------------------------------------------ clip maths
def test_clip_indices_and_padding():
    one = clip_frame_indices(100, 25.0)  # 0, 2, ..., 98 then the last frame 99 (clamped) repeated
    assert len(one) == 1 and one[0][49] == 98 and one[0][50] == 99 and clip_padding(one[0]) == 128 - 51
    exact = clip_frame_indices(256, 25.0)  # exactly 10.24 s: one full clip
    assert len(exact) == 1 and clip_padding(exact[0]) == 0 and exact[0][-1] == 254
    assert len(clip_frame_indices(257, 25.0)) == 2
    two = clip_frame_indices(300, 25.0)
    assert len(two) == 2 and two[1][0] == 128 and clip_padding(two[1]) == 128 - 87  # 128..298 and 299
    slow = clip_frame_indices(600, 50.0)  # step 4 source frames, windows every 256
    assert len(slow) == 2 and list(slow[0][:3]) == [0, 4, 8] and slow[1][0] == 256
    odd = clip_frame_indices(120, 29.97)
    assert list(odd[0][:4]) == [0, 2, 4, 7] and odd[0].max() == 119


def test_join_clip_features():
    features = torch.arange(2 * 64 * 3, dtype=torch.float32).reshape(2, 64, 3)
    joined = join_clip_features(features, [0, 78])
    assert joined.shape == (64 + 64 - 39, 3)
    assert torch.equal(joined[:64], features[0]) and torch.equal(joined[64:], features[1, :25])
    with pytest.raises(InvalidArgumentError, match="2 clips"):
        join_clip_features(features, [0])


# ------------------------------------------------------------------ measurement (printed, not asserted)
def test_print_detector_timings_on_carphone():
    """Prints HOG vs CNN cost per detection at several detect_max_side values (used to pick the default)."""
    capture = cv2.VideoCapture(str(carphone_path()))
    ok, frame = capture.read()
    capture.release()
    assert ok
    # Carphone scaled to 720 px tall and centred in a black 1280x720 frame: the shape of a 16:9 signing video.
    big = np.zeros((720, 1280, 3), np.uint8)
    big[:, 200:1080] = cv2.resize(frame, (880, 720), interpolation=cv2.INTER_CUBIC)
    rgb = cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
    rows = []
    for side in (256, 384, 512):
        small, fx, fy = downscale(rgb, side)
        for detector in ("hog", "cnn") if side != 384 else ("hog",):  # CNN at 2 sizes keeps the test short
            get_detector(detector)
            start, cpu = time.perf_counter(), time.process_time()
            found = detect_faces(small, fx, fy, detector, 1)
            # CPU time too: wall time swings with whatever else the shared cores are running.
            rows.append(f"{detector} max_side={side} ({small.shape[1]}x{small.shape[0]}, upsample 1): "
                        f"wall {time.perf_counter() - start:.3f} s, cpu {time.process_time() - cpu:.3f} s, "
                        f"{len(found)} face(s)")
    start = time.perf_counter()
    hog = preprocess_video(carphone_path(), HOG)
    hog_s = time.perf_counter() - start
    rows.append(f"carphone 176x144 whole video (8 detections) hog: {hog_s:.2f} s, "
                f"faces {hog.faces_found}/{hog.frames_sampled}")
    print("\n" + "\n".join(rows) + f"\n(os.cpu_count={os.cpu_count()})")


def test_lazy_clip_batches_equal_materialised_clips_and_keep_less(tmp_path):
    """The engine's path (uint8 crops, clips normalised a batch at a time) gives exactly the full clips."""
    video, _ = astronaut_video(tmp_path / "long.mp4", n_frames=160)
    config = PreprocessConfig(detector="hog", clip_frames=16, stride=8)
    full = preprocess_video(video, config)
    lazy = preprocess_video(video, config, materialize=False)
    assert lazy.clips is None and full.crops == {}
    batches = list(lazy.iter_clip_batches(3))
    remainder = [full.n_clips % 3] if full.n_clips % 3 else []
    assert [b.shape[0] for b, _ in batches] == [3] * (full.n_clips // 3) + remainder
    assert torch.equal(torch.cat([b for b, _ in batches]), full.clips)
    assert sum((p for _, p in batches), []) == full.paddings
    kept = sum(c.nbytes for c in lazy.crops.values())
    assert kept * 4 < full.clips.numel() * full.clips.element_size(), "overlapping clips share their uint8 frames"
    assert lazy.without_frames().crops == {} and lazy.without_frames().preview is lazy.preview
