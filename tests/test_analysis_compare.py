"""analysis: two-system comparison against sacrebleu's paired tests, plots, HTML/JSON report, CLI end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from analysis import (
    AlignmentError,
    compare_systems,
    load_predictions,
    paired_significance,
    plot_buckets,
    plot_metric_by_epoch,
    plot_pairwise_scatter,
    plot_rank_frequency,
    word_diff,
    write_html_report,
)
from tests.helpers.predictions import collapsed_records, healthy_records, write_jsonl
from tests.helpers.process import REPO_ROOT, VENV_LIB

SACREBLEU = Path(sys.executable).parent / "sacrebleu"
GENERIC = "The teacher bought a red car yesterday."


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("systems")
    a = collapsed_records(80, 0.6, seed=1)  # baseline: mostly one sentence
    b = healthy_records(80, seed=1)  # same references (same seed), real attempts
    paths = {"a": write_jsonl(d / "a.jsonl", a), "b": write_jsonl(d / "b.jsonl", b)}
    for key, recs in (("a", a), ("b", b)):
        paths[f"{key}_txt"] = d / f"{key}.txt"
        paths[f"{key}_txt"].write_text("".join(r["prediction"] + "\n" for r in recs), encoding="utf-8")
    paths["ref"] = d / "ref.txt"
    paths["ref"].write_text("".join(r["reference"] + "\n" for r in a), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def report(systems: dict[str, Path]):
    b = load_predictions(systems["b"]).sample(frac=1.0, random_state=3)  # shuffled: pairing must go by id
    return compare_systems(load_predictions(systems["a"]), b, names=("zero", "ft"), n_bs=500, n_ar=2000, bootstrap=100)


def _cli_sacrebleu(systems: dict[str, Path], *args: str) -> str:
    cmd = [str(SACREBLEU), str(systems["ref"]), "-i", str(systems["a_txt"]), str(systems["b_txt"]),
           "-m", "bleu", "chrf", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def test_paired_bootstrap_p_values_match_sacrebleu_cli(systems, report) -> None:
    text = _cli_sacrebleu(systems, "--paired-bs", "--paired-bs-n", "500", "-f", "text")
    cli_p = [float(p) for p in re.findall(r"p = ([0-9.]+)", text)]
    ours = report.significance["bs"]
    assert [round(ours["BLEU"]["p_value"], 4), round(ours["chrF2"]["p_value"], 4)] == pytest.approx(cli_p, abs=1e-4)
    assert ours["BLEU"]["score_b"] > ours["BLEU"]["score_a"]
    assert f"{ours['BLEU']['score_b']:.1f}" in text and f"{ours['chrF2']['score_a']:.1f}" in text


def test_paired_ar_p_values_match_sacrebleu_cli(systems, report) -> None:
    cli = json.loads(_cli_sacrebleu(systems, "--paired-ar", "--paired-ar-n", "2000", "-f", "json"))
    ours = report.significance["ar"]
    for metric in ("BLEU", "chrF2"):
        assert ours[metric]["p_value"] == pytest.approx(cli[1][metric]["p_value"])
        assert ours[metric]["score_a"] == pytest.approx(cli[0][metric]["score"])
        assert ours[metric]["score_b"] == pytest.approx(cli[1][metric]["score"])
    assert ours["BLEU"]["p_value"] < 0.05  # the collapsed baseline is clearly worse


@pytest.mark.parametrize(("test", "n"), [("bs", 300), ("ar", 1500)])
def test_streamed_paired_tests_equal_sacrebleu_pairedtest(test: str, n: int) -> None:
    a, b = collapsed_records(150, 0.1, seed=4), healthy_records(150, seed=4)  # close systems: mid-range p-values
    refs = [r["reference"] for r in a]
    hyps_a, hyps_b = [r["prediction"] for r in a], [r["prediction"] for r in b]
    ours = paired_significance(refs, hyps_a, hyps_b, test=test, n_samples=n)
    metrics = {"BLEU": BLEU(references=[refs]), "CHRF": CHRF(references=[refs])}
    _, scores = PairedTest([("a", hyps_a), ("b", hyps_b)], metrics, references=None, test_type=test, n_samples=n)()
    for name in ("BLEU", "chrF2"):
        base, other = scores[name]
        assert ours[name]["p_value"] == pytest.approx(other.p_value, abs=1e-12)
        assert ours[name]["score_a"] == pytest.approx(base.score)
        assert ours[name]["score_b"] == pytest.approx(other.score)
        if test == "bs":
            assert ours[name]["mean_b"] == pytest.approx(other.mean, rel=1e-6)
            assert ours[name]["ci_b"] == pytest.approx(other.ci, rel=1e-5, abs=1e-6)
            assert ours[name]["mean_a"] == pytest.approx(base.mean, rel=1e-6)
    assert 0.0 < ours["BLEU"]["p_value"] <= 1.0


def test_wins_examples_buckets_and_ngrams(report) -> None:
    s = report.samples
    assert report.n == 80 and s["id"].tolist() == sorted(s["id"].tolist())  # aligned to A's order
    wins = report.wins
    assert wins["ft_wins"] == int((s["bleu_b"] > s["bleu_a"]).sum())
    assert wins["zero_wins"] + wins["ft_wins"] + wins["ties"] == 80 and wins["ft_wins"] > wins["zero_wins"]
    best_b = report.examples["ft_better"]
    assert best_b[0]["prediction_a"] == GENERIC and best_b[0]["delta"] == s["delta"].max()
    assert [e["delta"] for e in best_b] == sorted((e["delta"] for e in best_b), reverse=True)
    assert sum(b["count"] for b in report.length_buckets) == 80
    assert sum(b["count_a"] for b in report.score_buckets) == sum(b["count_b"] for b in report.score_buckets) == 80
    over_a = [r["ngram"] for r in report.ngrams["zero"]["over"]]
    assert "teacher bought" in over_a  # the generic sentence's n-grams are over-produced by the collapsed system
    assert all(r["ratio"] > 1 for r in report.ngrams["zero"]["over"])
    assert report.ngrams["zero"]["under"] and all(r["ratio"] < 1 for r in report.ngrams["zero"]["under"])
    assert report.ngrams["matched"]["b_better"] and all(r["ratio"] < 1 for r in report.ngrams["matched"]["b_better"])
    assert json.loads(json.dumps(report.to_dict()))["names"] == ["zero", "ft"]


def test_alignment_errors(systems) -> None:
    a = load_predictions(systems["a"])
    other = pd.DataFrame(healthy_records(80, seed=2))  # different references, same ids
    with pytest.raises(AlignmentError, match="different references"):
        compare_systems(a, other)
    with pytest.raises(AlignmentError, match="80 vs 79 rows"):
        compare_systems(a, a.iloc[1:])


def test_word_diff_rebuilds_both_sentences() -> None:
    a, b = "the cat sat on the mat", "a cat sat on mat today"
    diff = word_diff(a, b)
    assert " ".join(t for op, t in diff if op != "insert") == a
    assert " ".join(t for op, t in diff if op != "delete") == b
    assert ("delete", "the") in diff and ("insert", "today") in diff
    assert word_diff("", "hello") == [("insert", "hello")] and word_diff("same", "same") == [("equal", "same")]


def test_plots_carry_the_data(report, systems, tmp_path: Path) -> None:
    scatter = plot_pairwise_scatter(report)
    assert list(scatter.data[0].x) == report.samples["bleu_a"].tolist()
    assert sum(GENERIC in t for t in scatter.data[0].text) == 48
    rf = plot_rank_frequency(load_predictions(systems["a"]))
    assert rf.data[0].y[0] == 48 and rf.data[1].y[0] == 1  # 60 % of 80 inputs get the generic sentence
    bars = plot_buckets(report, "score")
    assert isinstance(bars, go.Figure) and sum(bars.data[1].y) == 80
    table = pd.DataFrame({"epoch": [1, 2, 3], "bleu": [1.0, 5.0, 9.0], "top_share": [0.9, 0.4, 0.1]})
    fig = plot_metric_by_epoch(table)
    assert [t.name for t in fig.data] == ["bleu", "top_share"] and fig.data[1].yaxis == "y2"
    html_path = write_html_report(tmp_path / "r.html", load_predictions(systems["a"]),
                                  against=load_predictions(systems["b"]), names=("zero", "ft"), bootstrap=50)
    page = html_path.read_text(encoding="utf-8")
    assert "Verdict: collapsed" in page and "<ins>" in page
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\ssrc=", page)  # plotly.js inlined: works offline


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LD_LIBRARY_PATH": str(VENV_LIB)}
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_report_html_and_json_end_to_end(systems, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"id\tvideo_path\tn_frames\ttranslation\nt0\tv.mp4\t100\t{GENERIC}\n", encoding="utf-8")
    res = _cli("report", str(systems["a"]), "--against", str(systems["b"]), "--train-manifest", str(manifest),
               "--html", str(out), "--json", "--bootstrap", "50", "--names", "zs", "ft")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["verdict"] == "collapsed" and data["collapse"]["figures"]["train_copy_share"] == pytest.approx(0.6)
    assert data["comparison"]["names"] == ["zs", "ft"] and len(data["samples"]) == 80
    page = out.read_text(encoding="utf-8")
    assert "Verdict: collapsed" in page and "Comparison: zs (baseline) vs ft" in page


def test_cli_metrics_compare_and_bad_input(systems, tmp_path: Path) -> None:
    res = _cli("metrics", str(systems["b_txt"]), "--refs", str(systems["ref"]), "--json", "--bootstrap", "20")
    assert res.returncode == 0, res.stderr
    assert 0 < json.loads(res.stdout)["bleu"] < 100
    res = _cli("compare", str(systems["a"]), str(systems["b"]), "--test", "ar", "--json")
    assert res.returncode == 0, res.stderr
    assert list(json.loads(res.stdout)["significance"]) == ["ar"]
    bad = tmp_path / "bad.tsv"
    bad.write_bytes("reference\tprediction\ncafé\tcafé\n".encode("latin-1"))
    res = _cli("collapse", str(bad))
    assert res.returncode == 2 and "not valid UTF-8" in res.stderr and "Traceback" not in res.stderr
    res = _cli("report", str(systems["a_txt"]), "--refs", str(tmp_path / "nope.txt"))
    assert res.returncode == 2 and "File not found" in res.stderr
