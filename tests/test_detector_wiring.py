"""How the face detectors are wired into preprocessing: the CNN port gives dlib's signer box, batched detection
equals one frame at a time, several videos share one scan, errors and early stops end the reader thread.
Real videos, real detectors (dlib as the oracle), CPU."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from slt.errors import PreprocessConfigError, VideoTooLongError
from slt.video import PreprocessConfig, default_preprocess, preprocess_video, preprocess_videos
from slt.video.detect import DETECTORS, downscale, get_detector
from slt.video.scan import ScanJob, scan_video, scan_videos
from tests.helpers.video import astronaut_video, carphone_path, two_face_video


def carphone_frames(every: int = 16) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(carphone_path()))
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return frames


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "slt-video-reader"]


def test_cnn_port_and_dlib_give_the_same_faces_and_signer_box_on_a_real_video():
    """The released pipeline's detector run by dlib ("dlib-cnn") and by the PyTorch port ("cnn"): every sampled
    frame's boxes and so the signer box are identical (same frames, same upsampling)."""
    scans = {name: scan_video(carphone_path(), detector=name, detect_every=16, detect_max_side=512, upsample=1)
             for name in ("cnn", "dlib-cnn")}
    assert scans["cnn"].sampled == scans["dlib-cnn"].sampled == list(range(0, 120, 16))
    boxes = {name: [[d.box for d in faces] for faces in scan.faces] for name, scan in scans.items()}
    assert boxes["cnn"] == boxes["dlib-cnn"]
    assert scans["cnn"].frames_with_face >= 6  # the man's face is found on (nearly) every sampled frame
    config = {"detect_every": 40, "clip_frames": 16, "stride": 8}  # 3 sampled frames: dlib is slow
    results = {name: preprocess_video(carphone_path(), PreprocessConfig(detector=name, **config), materialize=False)
               for name in ("cnn", "dlib-cnn")}
    assert results["cnn"].box == results["dlib-cnn"].box
    assert results["cnn"].faces_found == results["dlib-cnn"].faces_found


def test_batched_cnn_detection_equals_one_frame_at_a_time():
    frames = carphone_frames(every=30)  # 4 real frames
    frames.append(cv2.resize(frames[0], (300, 240)))  # sizes may differ within one batch
    detect = get_detector("cnn", "cpu")
    batched = detect(frames, 1)
    single = [detect([frame], 1)[0] for frame in frames]
    assert batched == single
    assert all(len(found) == 1 for found in batched)


def test_several_videos_share_one_scan_and_give_what_each_gives_alone(tmp_path):
    one, _ = astronaut_video(tmp_path / "one.mp4", n_frames=40)
    two, big_face, _ = two_face_video(tmp_path / "two.mp4", n_frames=40)
    videos = [one, carphone_path(), two]
    config = PreprocessConfig(detector="cnn", clip_frames=16, stride=8, detect_max_side=320)
    together = list(preprocess_videos(videos, config, materialize=False))
    alone = [preprocess_video(video, config, materialize=False) for video in videos]
    assert len(together) == 3
    for a, b in zip(together, alone, strict=True):
        assert (a.box, a.faces_found, a.frames_sampled, a.box_method) == (b.box, b.faces_found, b.frames_sampled,
                                                                          b.box_method)
        assert a.clip_indices == b.clip_indices and a.crops.keys() == b.crops.keys()
        assert all(np.array_equal(a.crops[i], b.crops[i]) for i in a.crops)
    assert together[2].box_method in ("motion", "largest", "mean")  # two faces: still one signer box
    assert not reader_threads()


def test_a_failing_video_raises_in_its_turn_and_the_reader_thread_ends(tmp_path):
    good, _ = astronaut_video(tmp_path / "good.mp4", n_frames=40)
    jobs = [ScanJob(good), ScanJob(carphone_path(), max_frames=10, max_duration_s=0.33, fps=29.97), ScanJob(good)]
    scans = scan_videos(jobs, detector="hog", detect_every=16, detect_max_side=512, upsample=1)
    first = next(scans)
    assert first.n_frames == 40 and first.frames_with_face == 3
    with pytest.raises(VideoTooLongError, match="more than 10 frames"):
        next(scans)
    assert not reader_threads()
    # A caller that stops early (e.g. the first video has no signer) stops the reader too.
    early = scan_videos([ScanJob(good)] * 4, detector="hog", detect_every=4, detect_max_side=512, upsample=1)
    assert next(early).n_frames == 40
    early.close()
    assert not reader_threads()


def test_detector_choice_and_full_resolution_setting():
    assert DETECTORS == ("cnn", "dlib-cnn", "hog")
    assert PreprocessConfig(detect_max_side=None).detect_max_side is None
    with pytest.raises(PreprocessConfigError, match="detect_max_side"):
        PreprocessConfig(detect_max_side=0)
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert downscale(frame, None)[0] is frame and downscale(frame, 512)[0].shape == (288, 512, 3)
    # The engine's default: full-resolution CNN detection on CUDA (as released), 512 px on a CPU; HOG stays 512.
    assert default_preprocess("cnn", torch.device("cuda")).detect_max_side is None
    assert default_preprocess("cnn", torch.device("cpu")).detect_max_side == 512
    assert default_preprocess("hog", torch.device("cuda")).detect_max_side == 512
