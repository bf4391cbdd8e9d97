"""Synthetic corpus: real renders encoded with OpenCV, real dlib detection, real sacrebleu scores."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from slt.__main__ import main as slt_main
from slt.data.manifest import read_manifest
from slt.data.synth import (
    SPLITS,
    Grammar,
    generate_corpus,
    gesture_for,
    get_domain,
    plan_corpus,
    realise,
    render_sentence,
)
from slt.data.synth.domains import INSTRUCTIONAL_VOCAB, STUDIO_VOCAB
from slt.errors import CorpusConfigError
from tests.helpers.synth import clip_histograms, hog_faces, segment_features, signer_crops
from tests.helpers.video import read_frames

COUNTS = {"studio": (40, 6, 8), "instructional": (40, 4, 4)}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for domain, (n_train, n_val, n_test) in COUNTS.items():
        folder = tmp_path_factory.mktemp(domain)
        generate_corpus(folder, domain, n_train, n_val, n_test, seed=3, workers=2 if domain == "studio" else 1)
        out[domain] = folder
    return out


def _tsv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _glosses(folder: Path, split: str) -> dict[str, tuple[list[str], list[tuple[int, int]]]]:
    rows = _tsv(folder / f"{split}.glosses.tsv")[1:]
    return {r[0]: (r[1].split(), [tuple(map(int, s.split("-"))) for s in r[2].split()]) for r in rows}


@pytest.mark.parametrize("domain", list(COUNTS))
def test_manifests_list_every_clip_and_videos_decode_at_stated_length(corpora, domain):
    folder = corpora[domain]
    spec = get_domain(domain)
    all_ids = []
    for split, count in zip(SPLITS, COUNTS[domain]):
        rows = _tsv(folder / f"{split}.tsv")
        assert rows[0] == ["id", "video_path", "n_frames", "translation"]
        assert len(rows) == count + 1
        manifest = read_manifest(folder / f"{split}.tsv", strict=True)  # the project's reader accepts it
        assert len(manifest) == count and not manifest.report.skipped
        glosses = _glosses(folder, split)
        for clip_id, video_path, n_frames, translation in rows[1:]:
            all_ids.append(clip_id)
            assert not Path(video_path).is_absolute()
            frames, fps = read_frames(folder / video_path, rgb=True)
            assert len(frames) == int(n_frames) and fps == pytest.approx(spec.fps)
            assert frames[0].shape == (spec.frame_size[1], spec.frame_size[0], 3)
            assert 1.2 <= len(frames) / fps <= 3.6  # short clips: 2-4 signs
            words, spans = glosses[clip_id]
            assert translation == realise(words) and set(words) <= set(spec.vocabulary)
            assert spans[-1][1] < int(n_frames) and all(0.3 <= (e - s) / fps <= 0.85 for s, e in spans)
    assert len(set(all_ids)) == len(all_ids)  # no clip is in two splits


@pytest.mark.parametrize("domain", list(COUNTS))
def test_dlib_hog_finds_the_signer_in_most_sampled_frames(corpora, domain):
    found = total = 0
    for row in _tsv(corpora[domain] / "train.tsv")[1:13]:
        frames, _ = read_frames(corpora[domain] / row[1], rgb=True)
        for frame in frames[::16]:
            found += bool(hog_faces(frame))
            total += 1
    assert found / total >= 0.9, f"{domain}: face found in {found}/{total} sampled frames"


def test_same_seed_gives_identical_files_regardless_of_workers(tmp_path):
    a = generate_corpus(tmp_path / "a", "instructional", 3, 1, 1, seed=11, workers=1)
    b = generate_corpus(tmp_path / "b", "instructional", 3, 1, 1, seed=11, workers=2)
    generate_corpus(tmp_path / "c", "instructional", 3, 1, 1, seed=12, workers=1)
    for split in SPLITS:
        assert a[split].read_bytes() == b[split].read_bytes()
    videos = sorted((tmp_path / "a" / "videos").glob("*.mp4"))
    assert len(videos) == 5
    for video in videos:
        assert video.read_bytes() == (tmp_path / "b" / "videos" / video.name).read_bytes()
    frames_a, _ = read_frames(videos[0], rgb=True)
    frames_c, _ = read_frames(tmp_path / "c" / "videos" / videos[0].name, rgb=True)
    assert len(frames_a) != len(frames_c) or any(not np.array_equal(x, y) for x, y in zip(frames_a, frames_c))


def test_render_sentence_streams_deterministic_frames():
    spec = get_domain("studio")
    frames = render_sentence(["I", "EAT", "APPLE"], spec, np.random.default_rng(0))
    first = next(frames)  # a generator: frames come one at a time
    assert first.dtype == np.uint8 and first.shape == (256, 256, 3)
    again = list(render_sentence(["I", "EAT", "APPLE"], spec, np.random.default_rng(0)))
    assert np.array_equal(first, again[0]) and all(np.array_equal(x, y) for x, y in zip(frames, again[1:]))
    with pytest.raises(CorpusConfigError, match="unknown glosses"):
        list(render_sentence(["I", "FLY"], spec, np.random.default_rng(0)))


def test_grammar_has_hundreds_of_sentences_and_domains_overlap_partly():
    studio, instructional = Grammar(STUDIO_VOCAB), Grammar(INSTRUCTIONAL_VOCAB)
    assert len(studio) >= 300 and len(instructional) >= 300
    assert len({s.text for s in studio.sentences}) == len(studio)  # one translation per gloss sequence
    shared = set(STUDIO_VOCAB) & set(INSTRUCTIONAL_VOCAB)
    assert 0.5 <= len(shared) / len(STUDIO_VOCAB) <= 0.7 and set(INSTRUCTIONAL_VOCAB) - shared
    assert realise(["MOTHER", "EAT", "APPLE", "YESTERDAY"]) == "My mother ate an apple yesterday."
    assert realise(["WE", "WASH", "CAR", "TOMORROW"]) == "We will wash the car tomorrow."
    with pytest.raises(CorpusConfigError, match="not a sentence"):
        realise(["EAT", "MOTHER"])
    # A shared gloss keeps its gesture; glosses differ pairwise in their colour pair.
    pairs = {(gesture_for(g).palm_rgb, gesture_for(g).back_rgb) for g in set(STUDIO_VOCAB) | set(INSTRUCTIONAL_VOCAB)}
    assert len(pairs) == len(set(STUDIO_VOCAB) | set(INSTRUCTIONAL_VOCAB))


def test_split_policies():
    spec = get_domain("studio")
    held_out = plan_corpus(spec, 300, 60, 60, seed=1, split_policy="sentence")
    train = {p.sentence for p in held_out["train"]}
    train_glosses = {g for s in train for g in s.glosses}
    for split in ("val", "test"):
        sentences = {p.sentence for p in held_out[split]}
        assert not sentences & train
        assert {g for s in sentences for g in s.glosses} <= train_glosses
    shared = plan_corpus(spec, 300, 60, 60, seed=1)
    ids = [p.id for split in SPLITS for p in shared[split]]
    assert len(set(ids)) == len(ids)
    assert {p.sentence for p in shared["test"]} & {p.sentence for p in shared["train"]}  # allowed to recur


@pytest.mark.parametrize("domain", ["studio", "instructional"])
def test_ignoring_the_video_scores_low_bleu(domain):
    plans = plan_corpus(get_domain(domain), 600, 100, 100, seed=0)
    most_common = collections.Counter(p.sentence.text for p in plans["train"]).most_common(1)[0][0]
    refs = [p.sentence.text for p in plans["test"]]
    baseline = sacrebleu.corpus_bleu([most_common] * len(refs), [refs]).score
    oracle = sacrebleu.corpus_bleu(refs, [refs]).score
    assert baseline < 15 and oracle == pytest.approx(100)


def _word_segments(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, gloss and clip number of every signed word in the corpus."""
    feats, labels, clips = [], [], []
    for split in SPLITS:
        glosses = _glosses(folder, split)
        for row in _tsv(folder / f"{split}.tsv")[1:]:
            frames, _ = read_frames(folder / row[1], rgb=True)
            hists = clip_histograms(signer_crops(frames))
            clip_number = len(set(clips))
            for gloss, (start, end) in zip(*glosses[row[0]]):
                feats.append(segment_features(hists, start, end))
                labels.append(gloss)
                clips.append(clip_number)
    return np.array(feats), np.array(labels), np.array(clips)


def _nearest_centroid_accuracy(train, test) -> float:
    by_word = collections.defaultdict(list)
    for feat, word in zip(*train):
        by_word[word].append(feat)
    words = sorted(by_word)
    centroids = np.stack([np.mean(by_word[w], axis=0) for w in words])
    hits = [words[int(np.argmin(((centroids - f) ** 2).sum(axis=1)))] == w for f, w in zip(*test) if w in by_word]
    return float(np.mean(hits))


def test_gestures_are_distinguishable_after_the_pipeline_crop_and_domains_differ(corpora):
    results = {}
    for domain in COUNTS:
        f, words, clips = _word_segments(corpora[domain])
        half = clips % 2 == 0  # centroids from even clips, tested on odd ones
        results[domain] = (f, words, half)
        acc = _nearest_centroid_accuracy((f[half], words[half]), (f[~half], words[~half]))
        # Chance is ~1/23; the instructional domain (noise, texture, faster signing) is meant to be harder.
        assert acc >= {"studio": 0.85, "instructional": 0.7}[domain], f"{domain}: word accuracy {acc:.2f}"
    # Shared words render differently in domain B: studio centroids transfer only partly.
    (fa, la, _), (fb, lb, half_b) = results["studio"], results["instructional"]
    probe = np.isin(lb, la) & ~half_b
    in_domain = _nearest_centroid_accuracy((fb[half_b], lb[half_b]), (fb[probe], lb[probe]))
    transfer = _nearest_centroid_accuracy((fa, la), (fb[probe], lb[probe]))
    assert transfer < in_domain - 0.2, (transfer, in_domain)


def test_ssvp_format_is_headerless_and_readable(tmp_path):
    manifests = generate_corpus(tmp_path, "studio", 2, 1, 1, seed=2, fmt="ssvp")
    rows = _tsv(manifests["train"])
    assert manifests["train"] == tmp_path / "manifests" / "train.tsv" and len(rows) == 2
    name, duration, caption = rows[0]
    frames, _ = read_frames(tmp_path / "videos" / f"{name}.mp4", rgb=True)
    assert int(duration) == len(frames) and caption.endswith(".")
    manifest = read_manifest(manifests["train"], video_root=tmp_path / "videos", strict=True)
    assert manifest.format == "ssvp" and len(manifest) == 2


def test_cli_writes_corpus_json_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert slt_main(["synth", str(out), "--domain", "instructional", "--n-train", "2", "--n-val", "1",
                     "--n-test", "1", "--seed", "4", "--speed", "1.5", "--split-policy", "sentence"]) == 0
    import json

    info = json.loads((out / "corpus.json").read_text())
    assert info["seed"] == 4 and info["domain"] == "instructional" and info["spec"]["speed"] == 1.5
    assert info["vocab"] == list(INSTRUCTIONAL_VOCAB) and info["split_policy"] == "sentence"
    before = (out / "train.tsv").read_bytes()
    assert slt_main(["synth", str(out), "--n-train", "1"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (out / "train.tsv").read_bytes() == before  # nothing lost


@pytest.mark.parametrize("kwargs, message", [
    ({"domain": "news"}, "unknown domain"),
    ({"n_train": -1}, "n-train"),
    ({"n_train": 0, "n_val": 0, "n_test": 0}, "nothing to generate"),
    ({"split_policy": "random"}, "split policy"),
    ({"fmt": "csv"}, "manifest format"),
    ({"speed": 9.0}, "speed"),
    ({"min_words": 3, "max_words": 2}, "sentence length"),
    ({"face_width": 20}, "face_width"),
])
def test_bad_settings_raise_specific_errors(tmp_path, kwargs, message):
    args = {"domain": "studio", "n_train": 1, "n_val": 1, "n_test": 1, **kwargs}
    with pytest.raises(CorpusConfigError, match=message):
        generate_corpus(tmp_path / "out", seed=0, **args)
    assert not list((tmp_path / "out" / "videos").glob("*.mp4")) if (tmp_path / "out").exists() else True
