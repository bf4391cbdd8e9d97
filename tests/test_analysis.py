"""analysis: loading every supported format, clear errors on bad files, metrics against sacrebleu's CLI, collapse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from analysis import (
    AnalysisError,
    EmbeddingError,
    FileEncodingError,
    LengthMismatchError,
    ManifestReadError,
    MissingColumnError,
    PredictionsFileError,
    RunDirectoryError,
    collapse_by_epoch,
    collapse_report,
    corpus_metrics,
    list_epochs,
    load_predictions,
    load_train_texts,
    sentence_scores,
)
from analysis.collapse import mean_pairwise_cosine
from tests.helpers.predictions import collapsed_records, healthy_records, sentences, write_jsonl

SACREBLEU = Path(sys.executable).parent / "sacrebleu"


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _sacrebleu_json(ref: Path, hyp: Path, *extra: str) -> list[dict]:
    out = subprocess.run([str(SACREBLEU), str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "-w", "6", "-f", "json",
                          *extra], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


# --- loading ----------------------------------------------------------------------------------------------


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "ft"
    for epoch, share in ((1, 0.9), (2, 0.5), (10, 0.0)):
        recs = collapsed_records(60, share, seed=epoch) if share else healthy_records(60, seed=epoch)
        write_jsonl(run / f"predictions_epoch{epoch}.jsonl", recs)
    write_jsonl(run / "predictions_test.jsonl", healthy_records(30, seed=99))
    with (run / "metrics.jsonl").open("w") as fh:
        for epoch, bleu in ((1, 2.0), (2, 9.5), (10, 21.0)):
            fh.write(json.dumps({"epoch": epoch, "step": epoch * 5, "train_loss": 2.0, "lr": 1e-4}) + "\n")
            fh.write(json.dumps({"epoch": epoch, "step": epoch * 5, "val_loss": 1.5, "bleu": bleu,
                                "chrf": 2 * bleu}) + "\n")
        fh.write('{"epoch": 11, "step"')  # a record still being written must not break reading
    return run


def test_run_directory_epochs_and_test_predictions(run_dir: Path) -> None:
    assert list_epochs(run_dir) == [1, 2, 10]
    last = load_predictions(run_dir)
    assert last.attrs["epoch"] == 10 and len(last) == 60
    assert list(last.columns[:3]) == ["id", "reference", "prediction"]
    first = load_predictions(run_dir, epoch=1)
    assert (first["prediction"] == "The teacher bought a red car yesterday.").sum() == 54
    assert len(load_predictions(run_dir, epoch="test")) == 30
    with pytest.raises(RunDirectoryError, match=r"no predictions for epoch 3 \(epochs: \[1, 2, 10\]\)"):
        load_predictions(run_dir, epoch=3)
    with pytest.raises(RunDirectoryError, match="no predictions_epoch"):
        load_predictions(run_dir.parent.parent)
    # An evaluation output: test_results.json holds scores, its sibling predictions_test.jsonl the samples.
    (run_dir / "test_results.json").write_text(json.dumps({"bleu": 20.1, "chrf": 40.2, "n": 30}))
    evaluated = load_predictions(run_dir / "test_results.json")
    assert len(evaluated) == 30 and evaluated.attrs["results"]["bleu"] == 20.1


def test_html_report_of_a_run_shows_the_epochs(run_dir: Path, tmp_path: Path) -> None:
    from analysis import write_html_report

    page = write_html_report(tmp_path / "run.html", load_predictions(run_dir), run_dir=run_dir,
                             bootstrap=20).read_text()
    assert "Verdict: healthy" in page and "Across epochs" in page and page.count("Plotly.newPlot") == 2


def test_csv_tsv_json_and_text_formats_agree(tmp_path: Path) -> None:
    recs = healthy_records(12)
    frame = pd.DataFrame(recs).rename(columns={"reference": "tgt", "prediction": "hyp", "id": "seg"})
    frame["speaker"] = "x"
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_csv(tmp_path / "p.tsv", index=False, sep="\t")
    cols = {"reference": "tgt", "prediction": "hyp", "id": "seg"}
    csv_df = load_predictions(tmp_path / "p.csv", columns=cols)
    tsv_df = load_predictions(tmp_path / "p.tsv", columns=cols)
    (tmp_path / "old.json").write_text(json.dumps({"epoch": 7, "bleu": 12.5, "samples": recs}))
    old = load_predictions(tmp_path / "old.json")
    (tmp_path / "list.json").write_text(json.dumps(recs))
    _write_lines(tmp_path / "hyp.txt", [r["prediction"] for r in recs])
    _write_lines(tmp_path / "ref.txt", [r["reference"] for r in recs])
    text = load_predictions(tmp_path / "hyp.txt", references=tmp_path / "ref.txt")
    for df in (csv_df, tsv_df, old, load_predictions(tmp_path / "list.json"), text):
        assert df["prediction"].tolist() == [r["prediction"] for r in recs]
        assert df["reference"].tolist() == [r["reference"] for r in recs]
    assert csv_df["id"].tolist() == [r["id"] for r in recs] and csv_df["speaker"].tolist() == ["x"] * 12
    assert old.attrs["epoch"] == 7 and old.attrs["bleu"] == 12.5
    assert text["id"].tolist() == [str(i) for i in range(12)]


def test_odd_text_is_kept_and_scored(tmp_path: Path) -> None:
    long_line = "word " * 20000
    recs = [
        {"id": "empty", "reference": "A man walks.", "prediction": ""},
        {"id": "na", "reference": "NA", "prediction": "NA"},
        {"id": "long", "reference": "a long sentence", "prediction": long_line},
        {"id": "zh", "reference": "我们明天去公园。", "prediction": "我们去公园。"},
        {"id": "emoji", "reference": "Thumbs up 👍 for you", "prediction": "thumbs 👍 up"},
        {"id": "null", "reference": "A cat.", "prediction": None},
        {"id": "tab", "reference": "tab\tinside", "prediction": "tab inside, \"quoted\""},
    ]
    path = write_jsonl(tmp_path / "odd.jsonl", recs)
    df = load_predictions(path)
    assert len(df) == 7 and df.loc[0, "prediction"] == "" and df.loc[5, "prediction"] == ""
    assert df.loc[1, "prediction"] == "NA" and len(df.loc[2, "prediction"]) == len(long_line)
    pd.DataFrame(recs).fillna("").to_csv(tmp_path / "odd.csv", index=False)
    assert load_predictions(tmp_path / "odd.csv")["prediction"].tolist() == df["prediction"].tolist()
    scores = sentence_scores(df)
    assert scores.loc[0, "sentence_bleu"] == 0.0 and scores.loc[1, "sentence_bleu"] == pytest.approx(100.0)
    assert scores.loc[3, "rougeL"] > 0  # unicode words count (rouge-score's default tokenizer drops them)
    m = corpus_metrics(df, bootstrap=50)
    assert 0 < m["bleu"] < 100 and m["wer"] > 100  # the 20k-word prediction inserts a lot
    assert collapse_report(df).verdict in ("healthy", "suspicious", "collapsed")


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("empty.jsonl", b"", PredictionsFileError, "is empty"),
        ("blank.csv", b"\n  \n", PredictionsFileError, "is empty"),
        ("junk.jsonl", bytes(range(256)) * 4, PredictionsFileError, "binary file"),
        ("latin1.jsonl", '{"reference": "café", "prediction": "cafe"}\n'.encode("latin-1"), FileEncodingError,
         r"not valid UTF-8: line 1.*Latin-1"),
        ("latin1.csv", "reference,prediction\nok,ok\ncafé,café\n".encode("latin-1"), FileEncodingError,
         "not valid UTF-8"),
        ("badjson.jsonl", b'{"reference": "a", "prediction": "b"}\n{"reference": \n', PredictionsFileError,
         "line 2 is not valid JSON"),
        ("array.jsonl", b'["a", "b"]\n', PredictionsFileError, "expected an object"),
        ("nocol.csv", b"ref_text,output_text\na,b\n", MissingColumnError, r"no prediction column.*ref_text"),
        ("noref.csv", b"id,prediction\n1,b\n", MissingColumnError, "no reference column"),
        ("obj.json", b'{"epoch": 3, "bleu": 1.0}', PredictionsFileError, "without a 'samples' list"),
        ("ragged.csv", b"reference,prediction\na,b\nc,d,e,f\n", PredictionsFileError, "not a well-formed CSV"),
        ("plain.txt", b"one\ntwo\n", PredictionsFileError, "needs a parallel reference file"),
    ],
)
def test_bad_files_give_specific_errors(tmp_path: Path, name: str, content: bytes, error: type, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message) as info:
        load_predictions(path)
    assert isinstance(info.value, AnalysisError) and isinstance(info.value, ValueError)


def test_parallel_length_mismatch_and_column_mapping_errors(tmp_path: Path) -> None:
    _write_lines(tmp_path / "hyp.txt", ["a", "b", "c"])
    _write_lines(tmp_path / "ref.txt", ["a", "b"])
    with pytest.raises(LengthMismatchError, match="3 predictions but ref.txt has 2 references"):
        load_predictions(tmp_path / "hyp.txt", references=tmp_path / "ref.txt")
    write_jsonl(tmp_path / "p.jsonl", healthy_records(3))
    with pytest.raises(MissingColumnError, match="'hyp' \\(configured for prediction\\)"):
        load_predictions(tmp_path / "p.jsonl", columns={"prediction": "hyp"})
    with pytest.raises(PredictionsFileError, match="not found"):
        load_predictions(tmp_path / "missing.jsonl")


# --- metrics ----------------------------------------------------------------------------------------------


def test_corpus_bleu_chrf_and_confidence_match_sacrebleu_cli(tmp_path: Path) -> None:
    df = pd.DataFrame(healthy_records(80, seed=3))
    ref = _write_lines(tmp_path / "ref.txt", df["reference"].tolist())
    hyp = _write_lines(tmp_path / "hyp.txt", df["prediction"].tolist())
    cli = {r["name"]: r for r in _sacrebleu_json(ref, hyp, "--confidence", "--confidence-n", "300")}
    ours = corpus_metrics(load_predictions(hyp, references=ref), bootstrap=300)
    assert ours["bleu"] == pytest.approx(cli["BLEU"]["score"], abs=1e-5)
    assert ours["chrf"] == pytest.approx(cli["chrF2"]["score"], abs=1e-5)
    # Same resamples as sacrebleu: the bootstrap mean and 95 % half-width agree too.
    assert ours["ci"]["bleu"]["mean"] == pytest.approx(cli["BLEU"]["confidence_mean"], abs=1e-4)
    assert ours["ci"]["bleu"]["ci"] == pytest.approx(cli["BLEU"]["confidence_var"], abs=1e-4)
    assert ours["ci"]["chrf"]["mean"] == pytest.approx(cli["chrF2"]["confidence_mean"], abs=1e-3)
    assert ours["ci"]["chrf"]["low"] < ours["chrf"] < ours["ci"]["chrf"]["high"]
    refs, hyps = df["reference"].tolist(), df["prediction"].tolist()
    for k in (1, 2, 3):
        assert ours[f"bleu{k}"] == pytest.approx(BLEU(max_ngram_order=k).corpus_score(hyps, [refs]).score)
    assert ours["bleu1"] > ours["bleu2"] > ours["bleu3"] > ours["bleu"]
    assert ours["wer"] == pytest.approx(100 * jiwer.wer(refs, hyps))
    assert ours["cer"] == pytest.approx(100 * jiwer.cer(refs, hyps))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    assert ours["rougeL"] == pytest.approx(
        np.mean([scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps)]) * 100)
    assert ours["length_ratio"] < 1  # the fixture's noisy predictions drop words


def test_sentence_scores_match_sacrebleu(tmp_path: Path) -> None:
    df = pd.DataFrame(healthy_records(25, seed=5))
    ref = _write_lines(tmp_path / "ref.txt", df["reference"].tolist())
    hyp = _write_lines(tmp_path / "hyp.txt", df["prediction"].tolist())
    out = subprocess.run([str(SACREBLEU), str(ref), "-i", str(hyp), "-m", "chrf", "-sl", "-w", "6", "-b"],
                         capture_output=True, text=True, check=True, timeout=60)
    cli_chrf = [float(x) for x in out.stdout.split()]
    s = sentence_scores(df)
    assert s["sentence_chrf"].tolist() == pytest.approx(cli_chrf, abs=1e-5)
    bleu = BLEU(effective_order=True)
    expected = [bleu.sentence_score(h, [r]).score for h, r in zip(df["prediction"], df["reference"])]
    assert s["sentence_bleu"].tolist() == pytest.approx(expected)
    assert s["length_ratio"].tolist() == pytest.approx((s["hyp_len"] / s["ref_len"]).tolist())


# --- collapse ---------------------------------------------------------------------------------------------


def test_planted_collapse_is_collapsed_and_healthy_is_healthy() -> None:
    collapsed = collapse_report(pd.DataFrame(collapsed_records(200, 0.9)))
    assert collapsed.verdict == "collapsed"
    assert collapsed.figures["top_share"] == pytest.approx(0.9)
    assert collapsed.generic[0] == ("The teacher bought a red car yesterday.", 180)
    assert any("90% of predictions are the same sentence" in r for r in collapsed.reasons)
    assert collapsed.figures["self_bleu"] > collapsed.figures["ref_self_bleu"]
    healthy = collapse_report(pd.DataFrame(healthy_records(200)))
    assert healthy.verdict == "healthy" and healthy.generic == []
    assert healthy.figures["unique_ratio"] == 1.0 and healthy.figures["entropy_norm"] == pytest.approx(1.0)
    middle = collapse_report(pd.DataFrame(collapsed_records(200, 0.3)))
    assert middle.verdict == "suspicious"
    json.dumps(collapsed.to_dict())  # JSON-ready


def test_repetitive_references_excuse_repetitive_predictions() -> None:
    refs = ["Thank you."] * 150 + sentences(50)
    df = pd.DataFrame({"id": [str(i) for i in range(200)], "reference": refs, "prediction": refs})
    rep = collapse_report(df)
    assert rep.verdict == "healthy" and rep.generic == []  # as repeated as the references, not more


def test_embedding_similarity_reveals_collapse_before_decoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    diverse = rng.normal(size=(60, 32))
    brute = np.mean([diverse[i] @ diverse[j] / np.linalg.norm(diverse[i]) / np.linalg.norm(diverse[j])
                     for i in range(60) for j in range(60) if i != j])
    assert mean_pairwise_cosine(diverse) == pytest.approx(brute)
    df = pd.DataFrame(healthy_records(60))
    assert collapse_report(df, embeddings=diverse).verdict == "healthy"
    collapsed_emb = rng.normal(size=32) + 0.01 * rng.normal(size=(60, 32))
    df["embedding"] = list(collapsed_emb.astype(np.float32))
    rep = collapse_report(df)  # read from the embedding column, as saved with predictions
    assert rep.figures["embedding_cosine"] > 0.99 and rep.verdict == "collapsed"
    assert any("cosine" in r for r in rep.reasons)
    # Saved with the predictions (JSONL "embedding" lists), they are picked up after loading too.
    recs = [{**r, "embedding": e.tolist()} for r, e in zip(healthy_records(60), collapsed_emb)]
    loaded = load_predictions(write_jsonl(tmp_path / "emb.jsonl", recs))
    assert loaded["embedding"][0].dtype == np.float32
    assert collapse_report(loaded).figures["embedding_cosine"] == pytest.approx(rep.figures["embedding_cosine"],
                                                                                abs=1e-5)
    df.loc[3, "embedding"] = np.zeros(16, dtype=np.float32)
    with pytest.raises(EmbeddingError, match="one size"):
        collapse_report(df)


def test_training_copies_from_manifest(tmp_path: Path) -> None:
    train = sentences(40, seed=42)
    manifest = tmp_path / "train.tsv"
    rows = [f"t{i}\tvideos/t{i}.mp4\t{100 + i}\t{t}" for i, t in enumerate(train)]
    manifest.write_text("id\tvideo_path\tn_frames\ttranslation\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert load_train_texts(manifest) == train
    refs = sentences(60, seed=7)
    preds = [train[i % 5] for i in range(60)]  # memorised training targets, five of them
    df = pd.DataFrame({"id": [str(i) for i in range(60)], "reference": refs, "prediction": preds})
    rep = collapse_report(df, train_texts=load_train_texts(manifest))
    assert rep.figures["train_copy_share"] == 1.0 and rep.verdict == "collapsed"
    assert len(rep.train_copies) == 5 and rep.train_copies[0][1] == 12
    (tmp_path / "bad.tsv").write_text("id\tvideo_path\ncaption\tx\n", encoding="utf-8")
    with pytest.raises(ManifestReadError, match="no 'translation' column"):
        load_train_texts(tmp_path / "bad.tsv")


def test_collapse_by_epoch_follows_the_run(run_dir: Path) -> None:
    table = collapse_by_epoch(run_dir)
    assert table["epoch"].tolist() == [1, 2, 10]
    assert table["verdict"].tolist() == ["collapsed", "collapsed", "healthy"]
    assert table["top_share"].tolist() == pytest.approx([0.9, 0.5, 1 / 60])
    assert table["bleu"].tolist() == [2.0, 9.5, 21.0]  # the scored record of each epoch in metrics.jsonl
    assert table["unique_ratio"].is_monotonic_increasing
