"""extract-features end to end: real videos, real dlib HOG, a tiny real SignHiera, real torchrun subprocesses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slt.__main__ import main
from slt.data.extract import ExtractOptions, extract_features, preprocess_config_for
from slt.data.features import read_features_manifest
from slt.data.safe_ids import safe_id
from slt.errors import FeatureExtractionError
from slt.models import SignHiera, SignHieraConfig, load_signhiera, save_model_checkpoint
from slt.video import default_preprocess, fit_preprocess_to_model, join_clip_features, preprocess_video
from tests.helpers.process import REPO_ROOT, VENV_BIN, VENV_LIB, child_env
from tests.helpers.video import make_broken_video, make_face_video

GOOD = {"short": 20, "clip/3": 36, "medium": 50, "long": 70}  # id -> frames (unsafe id on purpose)
TINY = dict(num_frames=16, image_size=32)


def tiny_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_model_checkpoint(SignHiera(SignHieraConfig.tiny(**TINY)), path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """4 real face videos, a broken file and a row whose video is missing, plus a tiny SignHiera checkpoint."""
    root = tmp_path_factory.mktemp("corpus")
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    for seed, (clip_id, frames) in enumerate(GOOD.items()):
        make_face_video(root / f"video{seed}.mp4", frames, size=160, seed=seed)
        lines.append(f"{clip_id}\tvideo{seed}.mp4\t{frames}\tSentence number {seed}.")
        if seed == 1:
            make_broken_video(root / "broken.mp4")
            lines.append("broken\tbroken.mp4\t\tThis file is not a video.")
    lines.append("ghost\tnot_there.mp4\t\tNo such file.")  # line 7: skipped by the manifest reader
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tiny_checkpoint(root / "signhiera.pt", seed=0)
    return root


def options(corpus: Path, **changes) -> ExtractOptions:
    return ExtractOptions(**{"signhiera": corpus / "signhiera.pt", "detector": "hog", "workers": 2,
                             "batch_size": 2, **changes})


@pytest.fixture(scope="module")
def reference(corpus: Path) -> Path:
    """A clean single-process run with worker overlap, in this process."""
    out = corpus / "ref"
    summary = extract_features(corpus / "manifest.tsv", out, options(corpus, npy=True))
    assert (summary.written, summary.reused, summary.failed) == (4, 0, 1)
    assert summary.features_manifest == out / "features.tsv"
    return out


def feature_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "feats").glob("*.pt"))}


def cli(*args: str) -> list[str]:
    return ["-m", "slt", "extract-features", *args]


def run_subprocess(command: list[str], timeout: float = 150) -> subprocess.CompletedProcess:
    env = child_env(LD_LIBRARY_PATH=str(VENV_LIB))
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_features_manifest_tensors_and_failures(corpus: Path, reference: Path) -> None:
    rows = read_features_manifest(reference / "features.tsv")  # the trainer's own reader accepts it
    assert [r.id for r in rows] == list(GOOD)  # manifest order, unsafe id kept in the id column
    assert rows[1].path.name == f"{safe_id('clip/3')}.pt" and "/" not in safe_id("clip/3")
    dim = SignHieraConfig.tiny(**TINY).feature_dim
    steps = []
    for row in rows:
        features = torch.load(row.path, weights_only=True)
        assert features.dtype == torch.float32 and features.shape == (row.n_steps, dim)
        assert torch.isfinite(features).all() and features.std() > 0
        np.testing.assert_array_equal(np.load(row.path.with_suffix(".npy")), features.numpy())
        steps.append(row.n_steps)
    assert steps == sorted(steps) and len(set(steps)) == 4  # longer videos -> more feature steps
    assert [r.translation for r in rows] == [f"Sentence number {i}." for i in range(4)]

    failures = [json.loads(line) for line in (reference / "failures.jsonl").read_text().splitlines()]
    by_id = {f["id"]: f for f in failures}
    assert set(by_id) == {"broken", "ghost"} and all(set(f) == {"id", "error_type", "message"} for f in failures)
    assert by_id["broken"]["error_type"] == "VideoReadError" and "broken.mp4" in by_id["broken"]["message"]
    assert by_id["ghost"]["error_type"] == "ManifestError"
    assert by_id["ghost"]["message"].startswith(f"{corpus / 'manifest.tsv'}:7: missing video")

    config = json.loads((reference / "extract_config.json").read_text())
    assert config["signhiera"]["size"] == (corpus / "signhiera.pt").stat().st_size
    assert config["preprocess"]["detector"] == "hog" and config["preprocess"]["clip_frames"] == 16


def test_features_equal_a_direct_model_call(corpus: Path, reference: Path) -> None:
    model = load_signhiera(corpus / "signhiera.pt", "cpu")
    video = preprocess_video(corpus / "video3.mp4", preprocess_config_for(model, options(corpus)))
    assert len(video.paddings) >= 3 and video.paddings[-1] > 0  # several clips, the last one padded
    with torch.inference_mode():
        expected = model.extract_video_features(video.clips, video.paddings)  # all clips in one batch
        unmasked = join_clip_features(model.extract_features(video.clips), video.paddings)
    saved = torch.load(reference / "feats" / "long.pt", weights_only=True)
    assert saved.shape == expected.shape
    torch.testing.assert_close(saved, expected, rtol=1e-5, atol=1e-6)  # extraction ran in batches of 2
    assert not torch.allclose(saved, unmasked, atol=1e-4)  # padding was really masked


def test_two_processes_give_byte_identical_features(corpus: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    result = run_subprocess([str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", *cli(
        "--manifest", str(corpus / "manifest.tsv"), "--out", str(out), "--signhiera", str(corpus / "signhiera.pt"),
        "--detector", "hog", "--batch-size", "2", "--workers", "1")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted((out / "shards").iterdir()) and "rank 1:" in result.stderr  # both ranks really ran
    assert feature_bytes(out) == feature_bytes(reference) and len(feature_bytes(out)) == 4
    assert (out / "features.tsv").read_bytes() == (reference / "features.tsv").read_bytes()
    assert (out / "failures.jsonl").read_bytes() == (reference / "failures.jsonl").read_bytes()


def test_killed_run_resumes_to_the_same_result(corpus: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    result = run_subprocess([sys.executable, *cli(
        "--manifest", str(corpus / "manifest.tsv"), "--out", str(out), "--signhiera", str(corpus / "signhiera.pt"),
        "--detector", "hog", "--batch-size", "2", "--workers", "0", "--stop-after", "2")])
    assert result.returncode == -9, result.stderr[-3000:]  # SIGKILLed mid-run, no clean-up code ran
    assert len(feature_bytes(out)) == 2 and not (out / "features.tsv").exists()
    # Also leave what a kill during a write could: a truncated feature file and a stray temp file.
    partial = out / "feats" / "long.pt"
    partial.write_bytes((reference / "feats" / "long.pt").read_bytes()[:700])
    (out / "feats" / ".medium.pt.abc123.tmp").write_bytes(b"half")

    summary = extract_features(corpus / "manifest.tsv", out, options(corpus, workers=0))
    assert (summary.reused, summary.written, summary.failed) == (2, 2, 1)
    assert feature_bytes(out) == feature_bytes(reference)
    assert (out / "features.tsv").read_bytes() == (reference / "features.tsv").read_bytes()
    assert not list((out / "feats").glob(".*.tmp"))


def test_resume_skips_finished_and_refuses_another_config(corpus: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    for item in ("feats", "extract_config.json"):
        subprocess.run(["cp", "-r", str(reference / item), str(out)], check=True)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "feats").glob("*.pt")}
    (out / "feats" / "short.npy").unlink()  # a missing .npy is rebuilt from its .pt, not re-extracted
    summary = extract_features(corpus / "manifest.tsv", out, options(corpus, npy=True))
    assert (summary.written, summary.reused) == (0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "feats").glob("*.pt")} == before
    np.testing.assert_array_equal(np.load(out / "feats" / "short.npy"),
                                  torch.load(out / "feats" / "short.pt", weights_only=True).numpy())

    with pytest.raises(FeatureExtractionError, match=r"preprocess\.detect_every: was 16, now 8"):
        extract_features(corpus / "manifest.tsv", out, options(corpus, detect_every=8))
    (out / "extract_config.json").unlink()  # features whose origin cannot be checked are not reused blindly
    with pytest.raises(FeatureExtractionError, match="holds features but .*extract_config.json is missing"):
        extract_features(corpus / "manifest.tsv", out, options(corpus))
    subprocess.run(["cp", str(reference / "extract_config.json"), str(out)], check=True)
    other = tiny_checkpoint(tmp_path / "other.pt", seed=1)
    with pytest.raises(FeatureExtractionError, match=r"signhiera\.sha256: was '[0-9a-f]{64}'"):
        extract_features(corpus / "manifest.tsv", out, options(corpus, signhiera=other))


def test_cli_reports_bad_input_clearly(corpus: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tvideo_path\tn_frames\ttranslation\nx\tmissing.mp4\t\tHello.\n")
    common = ["--out", str(tmp_path / "o"), "--signhiera", str(corpus / "signhiera.pt"), "--detector", "hog"]
    assert main(["extract-features", "--manifest", str(bad), *common]) == 1
    assert f"no usable rows in {bad}" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["extract-features", "--manifest", str(corpus / "manifest.tsv"), *common, "--batch-size", "0"]) == 1
    assert "--batch-size must be at least 1" in capsys.readouterr().err
    assert main(["extract-features", "--manifest", str(tmp_path / "none.tsv"), *common]) == 1
    assert "Manifest not found" in capsys.readouterr().err
    manifest = ["--manifest", str(corpus / "manifest.tsv")]
    assert main(["extract-features", *manifest, *common, "--device", "cuda"]) == 1  # tests hide every GPU
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert main(["extract-features", *manifest, *common, "--device", "gpu0"]) == 1
    assert "is not a device name" in capsys.readouterr().err
    missing = ["--signhiera", str(tmp_path / "missing.pt")]
    assert main(["extract-features", *manifest, "--out", str(tmp_path / "o"), *missing]) == 1
    assert "missing.pt" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_preprocessing_is_the_engines_for_the_device(corpus: Path) -> None:
    """Features made for training must match what the engine computes at inference on the same device: on CUDA
    the CNN detects at full resolution (and, without workers, on the GPU), on a CPU on 512-px copies."""
    model = load_signhiera(corpus / "signhiera.pt", "cpu")
    cnn = ExtractOptions(signhiera=corpus / "signhiera.pt", detector="cnn", detect_every=8)
    for device in ("cpu", torch.device("cuda")):  # a config only: no CUDA needed to compute it
        engine = fit_preprocess_to_model(default_preprocess("cnn", device), model.config)
        assert preprocess_config_for(model, cnn, device) == dataclasses.replace(engine, detect_every=8)
    assert preprocess_config_for(model, cnn, torch.device("cuda")).detect_max_side is None
    assert preprocess_config_for(model, cnn).detect_max_side == 512
