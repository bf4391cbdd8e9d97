"""CIDEr-D against the COCO caption evaluation (pycocoevalcap), METEOR on a real (tiny) WordNet, and both in the
analysis metrics, HTML report and CLI, with a clear message where WordNet is missing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import nltk
import numpy as np
import pytest
from nltk.corpus.reader.wordnet import WordNetCorpusReader
from pycocoevalcap.cider.cider import Cider

from analysis import AnalysisError
from analysis.caption_metrics import cider_d, meteor, tokenize
from analysis.metrics import validation_scores
from tests.helpers.predictions import healthy_records, write_jsonl
from tests.helpers.process import REPO_ROOT, child_env
from tests.helpers.wordnet import write_tiny_wordnet

_WORDS = "the a cat dog sat on mat sign hello world , . is was Signs Hello !".split()


def _random_corpus(n: int, max_refs: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    hyps = [" ".join(rng.choices(_WORDS, k=rng.randint(0, 14))) for _ in range(n)]
    refs = [[" ".join(rng.choices(_WORDS, k=rng.randint(1, 14))) for _ in range(rng.randint(1, max_refs))]
            for _ in range(n)]
    return hyps, refs


@pytest.mark.parametrize(("n", "max_refs", "seed"), [(40, 1, 0), (25, 4, 1), (3, 2, 2)])
def test_cider_d_equals_coco_evaluation(n: int, max_refs: int, seed: int) -> None:
    hyps, refs = _random_corpus(n, max_refs, seed)
    hyps[0] = refs[0][0]  # one perfect hypothesis
    ours = cider_d(hyps, refs)
    coco_corpus, coco_samples = Cider().compute_score(
        {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)},
        {i: [" ".join(tokenize(h))] for i, h in enumerate(hyps)})
    np.testing.assert_allclose(ours, coco_samples, rtol=1e-12, atol=1e-12)
    assert ours.mean() == pytest.approx(coco_corpus, rel=1e-12)
    assert ours[0] > 0


def test_training_validation_scores_carry_cider() -> None:
    records = healthy_records(12)
    hyps, refs = [r["prediction"] for r in records], [r["reference"] for r in records]
    corpus, _rows = validation_scores([r["id"] for r in records], refs, hyps)
    assert corpus["cider"] == pytest.approx(cider_d(hyps, [[r] for r in refs]).mean())


def test_cider_d_bad_inputs() -> None:
    with pytest.raises(AnalysisError, match="2 hypotheses but 1 reference"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(AnalysisError, match="at least one reference"):
        cider_d(["a"], [[]])


def _tiny_wordnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WordNetCorpusReader:
    # nltk reads corpora only from its data path (its path security check).
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path), *nltk.data.path])
    root = write_tiny_wordnet(tmp_path, [("n", ["car", "auto"]), ("n", ["dog", "hound"])])
    with warnings.catch_warnings():  # "multilingual functions are not available": no OMW data, not needed
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(root), None)


def test_meteor_matches_wordnet_synonyms_and_stems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wordnet = _tiny_wordnet(tmp_path, monkeypatch)
    refs = [["The car is red."]] * 4
    scores = meteor(["the car is red.", "The AUTO is red.", "the cars is red.", "the bus is red."], refs,
                    wordnet=wordnet)
    exact, synonym, stem, other = scores
    assert exact == pytest.approx(synonym) == pytest.approx(stem)  # synonym and stem count as matches
    assert 0 < other < exact <= 100
    with pytest.raises(AnalysisError, match="1 hypotheses but 2 reference"):
        meteor(["a"], [["a"], ["b"]], wordnet=wordnet)


_CHILD = """
import json, sys, warnings
import nltk
nltk.data.path[:] = [sys.argv[1]]
warnings.simplefilter("ignore")
from analysis import load_predictions, write_html_report
from analysis.__main__ import main
from analysis.metrics import corpus_metrics
df = load_predictions(sys.argv[2])
m = corpus_metrics(df, bootstrap=20)
write_html_report(sys.argv[3], df, bootstrap=0)
main(["metrics", sys.argv[2], "--bootstrap", "0"])
print(json.dumps({k: m.get(k) for k in ("cider", "meteor", "unavailable")} | {"ci": sorted(m["ci"])}))
"""


@pytest.mark.parametrize("with_wordnet", [True, False])
def test_corpus_metrics_report_and_cli_show_cider_and_meteor(tmp_path: Path, with_wordnet: bool) -> None:
    """In a child process: nltk's WordNet loader is a process-wide singleton, so each data path gets a fresh one."""
    data = tmp_path / "nltk_data"
    data.mkdir()
    if with_wordnet:
        write_tiny_wordnet(data, [("n", ["car", "auto"])])
    records = healthy_records(30)
    pred = write_jsonl(tmp_path / "pred.jsonl", records)
    html = tmp_path / "report.html"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(pred), str(html)], env=child_env(),
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
    *printed, last = out.stdout.strip().splitlines()
    m = json.loads(last)
    cli = "\n".join(printed)
    assert f"cider: {m['cider']:7.2f}" in cli
    expected = cider_d([r["prediction"] for r in records], [[r["reference"]] for r in records]).mean()
    assert m["cider"] == pytest.approx(expected)
    assert "cider" in m["ci"]
    page = html.read_text(encoding="utf-8")
    assert ">cider<" in page
    if with_wordnet:
        assert 0 < m["meteor"] <= 100 and "meteor" in m["ci"] and m["unavailable"] == {}
        assert ">meteor<" in page and f"meteor: {m['meteor']:7.2f}" in cli
    else:
        assert m["meteor"] is None and "meteor" not in m["ci"]
        assert "nltk.downloader wordnet" in m["unavailable"]["meteor"]
        assert "METEOR is unavailable" in page and ">meteor<" not in page
        assert "METEOR is unavailable" in cli and "meteor:" not in cli
