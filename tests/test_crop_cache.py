"""Crop cache: the cached crops rebuild exactly the clips inference feeds SignHiera; a rebuild skips finished
videos; two shards give the same cache as one; other settings are refused; unreadable videos and missing files
are recorded with their row; a killed build (the real CLI, in a subprocess) resumes to the same cache and redoes a
damaged file."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slt.data.crop_cache import CropCache, CropClipsDataset, build_crop_cache, collate_clips
from slt.data.safe_ids import safe_id
from slt.errors import FeatureExtractionError, ManifestError
from slt.models import SignHiera, SignHieraConfig, save_model_checkpoint
from slt.video import PreprocessConfig, preprocess_video
from slt.video.config import fit_preprocess_to_model
from tests.helpers.process import REPO_ROOT, VENV_LIB, child_env
from tests.helpers.video import make_broken_video, make_face_video

VIDEOS = {"short": 20, "clip/2": 36, "long": 50}  # id -> frames (an id that is not a safe file name on purpose)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crop_corpus")
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    for seed, (clip_id, frames) in enumerate(VIDEOS.items()):
        make_face_video(root / f"v{seed}.mp4", frames, size=160, seed=seed)
        lines.append(f"{clip_id}\tv{seed}.mp4\t{frames}\tSentence {seed}.")
    make_broken_video(root / "broken.mp4")
    lines.append("broken\tbroken.mp4\t\tNot a video.")
    lines.append("ghost\tnot_there.mp4\t\tNo such file.")  # line 6
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    torch.manual_seed(0)  # the CLI takes the clip length and image size from a checkpoint
    save_model_checkpoint(SignHiera(SignHieraConfig.tiny(num_frames=16, image_size=32)), root / "signhiera.pt")
    return root


@pytest.fixture(scope="module")
def preprocess() -> PreprocessConfig:
    return fit_preprocess_to_model(PreprocessConfig(detector="hog"), SignHieraConfig.tiny(num_frames=16, image_size=32))


@pytest.fixture(scope="module")
def cache_dir(corpus: Path, preprocess: PreprocessConfig) -> Path:
    out = corpus / "cache"
    build_crop_cache(corpus / "manifest.tsv", out, preprocess, rank=0, world=1)
    return out


def test_cached_crops_rebuild_the_inference_clips_exactly(corpus, preprocess, cache_dir) -> None:
    cache = CropCache(cache_dir, preprocess)
    assert [row[0] for row in cache.rows] == list(VIDEOS)
    for index, (clip_id, path) in enumerate(zip(VIDEOS, ("v0.mp4", "v1.mp4", "v2.mp4"))):
        expected = preprocess_video(corpus / path, preprocess)
        clips, paddings = cache.clip_tensor(index)
        assert paddings == expected.paddings
        assert torch.equal(clips, expected.clips), clip_id
        video = cache.video(index)
        assert video.frames.dtype == torch.uint8 and video.frames.shape[1:] == (32, 32, 3)
        assert video.frames.shape[0] == len({i for clip in expected.clip_indices for i in clip})  # no duplicates
    failures = [json.loads(line) for line in (cache_dir / "failures.rank0of1.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["ghost", "broken"] and failures[1]["message"]
    assert failures[0]["error_type"] == "ManifestError" and "manifest.tsv:6:" in failures[0]["message"]
    assert "not_there.mp4" in failures[0]["message"]


def test_rebuild_skips_finished_videos_and_shards_equal_one_process(corpus, preprocess, cache_dir) -> None:
    stamps = {p.name: p.stat().st_mtime_ns for p in (cache_dir / "crops").iterdir()}
    build_crop_cache(corpus / "manifest.tsv", cache_dir, preprocess, rank=0, world=1)
    assert {p.name: p.stat().st_mtime_ns for p in (cache_dir / "crops").iterdir()} == stamps
    sharded = corpus / "sharded"
    for rank in (1, 0):
        build_crop_cache(corpus / "manifest.tsv", sharded, preprocess, rank=rank, world=2)
    one, two = CropCache(cache_dir), CropCache(sharded)
    assert sorted(r[0] for r in two.rows) == sorted(r[0] for r in one.rows)
    by_id = {r[0]: i for i, r in enumerate(two.rows)}
    for index, row in enumerate(one.rows):
        assert torch.equal(one.clip_tensor(index)[0], two.clip_tensor(by_id[row[0]])[0])


def test_other_settings_and_missing_caches_are_refused(corpus, preprocess, cache_dir, tmp_path) -> None:
    other = dataclasses.replace(preprocess, detect_every=preprocess.detect_every + 1)
    with pytest.raises(FeatureExtractionError, match=r"different configuration.*detect_every: was"):
        build_crop_cache(corpus / "manifest.tsv", cache_dir, other)
    with pytest.raises(FeatureExtractionError, match="detect_every"):
        CropCache(cache_dir, other)
    with pytest.raises(ManifestError, match="not a crop cache"):
        CropCache(tmp_path)
    with pytest.raises(FeatureExtractionError, match="shard 2 of 2 does not exist"):
        build_crop_cache(corpus / "manifest.tsv", tmp_path / "x", preprocess, rank=2, world=2)


def test_batches_stay_uint8_and_normalise_to_the_inference_clips(cache_dir, preprocess) -> None:
    cache = CropCache(cache_dir, preprocess)
    dataset = CropClipsDataset(cache)
    batch = collate_clips([dataset[0], dataset[2]])
    assert batch.clips.dtype == torch.uint8 and batch.ids == ["short", "long"] and len(batch) == 2
    expected = [cache.clip_tensor(0), cache.clip_tensor(2)]
    assert batch.clips_per_video == [len(e[1]) for e in expected]
    assert batch.paddings == expected[0][1] + expected[1][1]
    assert torch.equal(batch.normalised(preprocess.mean, preprocess.std), torch.cat([e[0] for e in expected]))


def test_temporal_jitter_moves_unpadded_clips_inside_the_video_reproducibly(cache_dir) -> None:
    cache = CropCache(cache_dir)
    index = 2  # the longest video: several clips
    video = cache.video(index)
    jittered = CropClipsDataset(cache, jitter=3, seed=5)
    first = jittered.positions(index, video)
    assert torch.equal(first, CropClipsDataset(cache, jitter=3, seed=5).positions(index, video))  # reproducible
    assert torch.equal(CropClipsDataset(cache).positions(index, video), video.clips)  # no jitter: as cut
    moved = False
    for epoch in range(6):
        jittered.set_epoch(epoch)
        positions = jittered.positions(index, video)
        assert positions.min() >= 0 and positions.max() < len(video.frames)
        for c, padding in enumerate(video.paddings):
            shift = positions[c] - video.clips[c]
            assert (shift == shift[0]).all() and abs(int(shift[0])) <= 3  # the whole window moves, order kept
            if padding:
                assert int(shift[0]) == 0
            moved |= int(shift[0]) != 0
    assert moved
    with pytest.raises(FeatureExtractionError, match="jitter must be >= 0"):
        CropClipsDataset(cache, jitter=-1)


def test_cached_frames_are_the_inference_crops_byte_for_byte(corpus, preprocess, cache_dir) -> None:
    cache = CropCache(cache_dir, preprocess)
    for index, path in enumerate(("v0.mp4", "v1.mp4", "v2.mp4")):
        video = preprocess_video(corpus / path, preprocess, materialize=False)
        frames = cache.video(index).frames
        assert len(frames) == len(video.crops)
        for frame, source in zip(frames, sorted(video.crops)):
            assert np.array_equal(frame.numpy(), video.crops[source])


def crop_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "crops").glob("*.pt"))}


def test_killed_build_resumes_to_the_same_cache(corpus, preprocess, cache_dir, tmp_path) -> None:
    out = tmp_path / "cache"
    command = [sys.executable, "-m", "slt", "crop-cache", "--manifest", str(corpus / "manifest.tsv"), "--out",
               str(out), "--signhiera", str(corpus / "signhiera.pt"), "--detector", "hog", "--workers", "0"]
    env = child_env(LD_LIBRARY_PATH=str(VENV_LIB))
    killed = subprocess.run([*command, "--stop-after", "2"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(crop_bytes(out)) == 2 and not list(out.glob("crops.rank*.tsv"))
    # A damaged file (e.g. copied in part) is redone, not taken as finished.
    damaged = out / "crops" / f"{safe_id('clip/2')}.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert crop_bytes(out).keys() == crop_bytes(cache_dir).keys()
    resumed, reference = CropCache(out, preprocess), CropCache(cache_dir, preprocess)
    assert [r[0] for r in resumed.rows] == [r[0] for r in reference.rows]
    for index in range(len(reference)):
        a, b = resumed.video(index), reference.video(index)
        assert torch.equal(a.frames, b.frames) and torch.equal(a.clips, b.clips) and a.paddings == b.paddings
    assert (out / "failures.rank0of1.jsonl").read_text().count("\n") == 2
