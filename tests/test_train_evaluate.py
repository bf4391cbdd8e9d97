"""`python -m slt evaluate` for real: face videos -> `python -m slt extract-features` (tiny SignHiera, dlib HOG)
-> a tiny SONAR encoder + tiny SONAR text decoder; --features pairing, the --signhiera path from video, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slt.__main__ import main
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint
from tests.helpers.predictions import read_jsonl
from tests.helpers.process import REPO_ROOT, child_env
from tests.helpers.video import make_broken_video, make_face_video

CLIPS = {"c1": (20, "the cat sees a red ball"), "clip/2": (28, "a dog likes green trees"),
         "c3": (24, "my friend draws the old house")}  # id -> (frames, reference); one id needs a safe file name
TINY_HIERA = dict(num_frames=16, image_size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path | list[str]]:
    """Real videos + manifest, features from the extract-features CLI, tiny encoder and text decoder."""
    from slt.text import pretrain_text_decoder

    root = tmp_path_factory.mktemp("evaluate")
    lines = ["id\tvideo_path\tn_frames\ttranslation"]
    for seed, (clip_id, (frames, text)) in enumerate(CLIPS.items()):
        make_face_video(root / f"video{seed}.mp4", frames, size=160, seed=seed)
        lines.append(f"{clip_id}\tvideo{seed}.mp4\t{frames}\t{text}")
    (root / "videos.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    hiera = SignHiera(SignHieraConfig.tiny(**TINY_HIERA))
    save_model_checkpoint(hiera, root / "signhiera.pt")
    encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=hiera.config.feature_dim, output_dim=32))
    save_model_checkpoint(encoder, root / "encoder.pt")
    decoder, tokenizer, paths = pretrain_text_decoder([t for _, t in CLIPS.values()] + ["green trees"],
                                                      root / "text", model_dim=32, steps=30, vocab_size=48,
                                                      name_prefix="evaluate_tiny")
    env = child_env(OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "slt", "extract-features", "--manifest", str(root / "videos.tsv"),
                           "--out", str(root / "extracted"), "--signhiera", str(root / "signhiera.pt"),
                           "--detector", "hog", "--workers", "0", "--device", "cpu"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    model_flags = ["--encoder", str(root / "encoder.pt"), "--decoder", decoder, "--tokenizer", tokenizer,
                   "--asset-cards", str(paths["cards"]), "--device", "cpu", "--beam-size", "2", "--max-len", "16",
                   "--batch-size", "2"]
    return {"root": root, "videos": root / "videos.tsv", "extracted": root / "extracted", "flags": model_flags}


def evaluate(setup, out: Path, *source: str) -> dict:
    assert main(["evaluate", "--manifest", str(setup["videos"]), *source, *setup["flags"], "--out", str(out)]) == 0
    return json.loads((out / "test_results.json").read_text())


def predictions(out: Path) -> list[dict]:
    return read_jsonl(out / "test_predictions.jsonl")


def test_video_manifest_with_extracted_features_and_from_video_agree(setup, tmp_path):
    by_features = evaluate(setup, tmp_path / "a", "--features", str(setup["extracted"]))
    assert by_features["samples"] == 3
    for key in ("bleu", "bleu1", "bleu4", "chrf", "rouge_l", "wer", "seconds_per_clip", "distinct_ratio"):
        assert isinstance(by_features[key], float), key
    assert by_features["decoding"]["beam_size"] == 2 and by_features["collapse"] is not None
    rows = predictions(tmp_path / "a")
    assert [(r["id"], r["reference"]) for r in rows] == [(i, t) for i, (_, t) in CLIPS.items()]
    assert all(isinstance(r["prediction"], str) for r in rows)
    # The pairing points at extract-features' own tensors (safe file name for "clip/2"), with their lengths.
    paired = (tmp_path / "a" / "features_manifest.tsv").read_text().splitlines()[1:]
    for line in paired:
        clip_id, path, n_steps, _ = line.split("\t")
        assert Path(path).parent == setup["extracted"] / "feats"
        assert torch.load(path, weights_only=True).shape[0] == int(n_steps)

    # From video: extracted on the fly with the same SignHiera, so the same features and the same results.
    from_video = evaluate(setup, tmp_path / "b", "--signhiera", str(setup["root"] / "signhiera.pt"),
                          "--detector", "hog", "--extract-workers", "0")
    assert predictions(tmp_path / "b") == rows
    for key in ("bleu", "chrf", "rouge_l", "wer", "val_loss"):
        assert from_video[key] == pytest.approx(by_features[key], abs=1e-6), key
    assert (tmp_path / "b" / "features_test" / "features.tsv").is_file()


def test_evaluate_errors_name_the_problem(setup, tmp_path, capsys):
    flags = setup["flags"]
    videos = str(setup["videos"])
    partial = tmp_path / "partial"
    (partial / "feats").mkdir(parents=True)
    for name in ("c1.pt",):
        (partial / "feats" / name).write_bytes((setup["extracted"] / "feats" / name).read_bytes())
    assert main(["evaluate", "--manifest", videos, "--features", str(partial), *flags, "--out", str(tmp_path)]) == 1
    assert "videos.tsv:3: no features for id 'clip/2'" in capsys.readouterr().err
    assert main(["evaluate", "--manifest", videos, "--features", str(tmp_path / "nope"), *flags]) == 1
    assert "features folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --features and --signhiera are two answers to one question
        main(["evaluate", "--manifest", videos, "--features", "x", "--signhiera", "y", *flags])
    assert "not allowed with argument" in capsys.readouterr().err

    # A clip that cannot be decoded stops the from-video evaluation, naming it (no silently smaller split).
    make_broken_video(setup["root"] / "broken.mp4")
    bad = tmp_path / "bad.tsv"
    root = setup["root"]
    bad.write_text(f"id\tvideo_path\tn_frames\ttranslation\nc1\t{root / 'video0.mp4'}\t20\tthe cat sees a red ball\n"
                   f"broken\t{root / 'broken.mp4'}\t\tnot a video\n")
    assert main(["evaluate", "--manifest", str(bad), "--signhiera", str(setup["root"] / "signhiera.pt"),
                 "--detector", "hog", "--extract-workers", "0", *flags, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "1 clip(s) of" in err and "'broken'" in err and "failures.jsonl" in err
    assert not (tmp_path / "o" / "test_results.json").exists()
