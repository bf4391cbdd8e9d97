"""The shipped collapse case: two real t5-bridge runs on the synthetic corpus (configs/collapse/), one collapsed and
one healthy by the collapse report's calibrated thresholds, trained by the documented configs, and listed by the
app's predictions browser once installed into a runs folder."""

from __future__ import annotations

import json

import pytest

from analysis import collapse_by_epoch, collapse_report, load_predictions
from slt.demo.examples import COLLAPSE_EXAMPLES, collapse_example_runs, install_collapse_examples
from slt.errors import InvalidArgumentError
from slt.train.config import TrainConfig
from tests.helpers.process import REPO_ROOT

VERDICTS = {"collapse-attention-bridge": "collapsed", "collapse-linear-bridge": "healthy"}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_shipped_runs_get_their_verdicts_on_their_last_epoch(name: str) -> None:
    run = collapse_example_runs()[name]
    report = collapse_report(load_predictions(run))  # the last epoch's predictions file
    assert report.verdict == VERDICTS[name], report.reasons
    assert report.figures["n"] == 64 and not report.notes  # enough samples for a verdict without a warning


def test_verdicts_by_epoch_show_when_each_run_learned_to_tell_clips_apart() -> None:
    runs = collapse_example_runs()
    linear = collapse_by_epoch(runs["collapse-linear-bridge"]).set_index("epoch")
    attention = collapse_by_epoch(runs["collapse-attention-bridge"]).set_index("epoch")
    assert list(linear.index) == list(attention.index) == [1, 10, 20, 30, 40]
    assert (attention["verdict"] == "collapsed").all()
    assert linear.loc[1, "verdict"] == "collapsed" and linear.loc[40, "verdict"] == "healthy"
    assert linear.loc[40, "bleu"] > 3 * attention.loc[40, "bleu"]


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_shipped_runs_were_trained_by_the_documented_config(name: str) -> None:
    documented = TrainConfig.load(REPO_ROOT / "configs" / "collapse" / f"t5-{name.removeprefix('collapse-')}.json")
    shipped = json.loads((collapse_example_runs()[name] / "config.json").read_text(encoding="utf-8"))
    assert TrainConfig.from_dict(shipped).to_dict() == documented.to_dict()
    assert documented.recipe == "t5-bridge" and documented.run_dir == f"runs/{name}"


def test_install_puts_the_examples_where_the_browser_lists_runs(tmp_path) -> None:
    # Imported here: the browser tab imports gradio (seconds), which only this test needs.
    from slt.ui.browser_tab import list_runs

    runs = tmp_path / "runs"
    mine = runs / "collapse-linear-bridge"
    mine.mkdir(parents=True)
    (mine / "predictions_epoch1.jsonl").write_text('{"id": "a", "reference": "r", "prediction": "p"}\n')
    installed = install_collapse_examples(runs)
    assert {p.name for p in installed} == set(COLLAPSE_EXAMPLES) == set(list_runs(runs))
    assert sorted(p.name for p in mine.iterdir()) == ["predictions_epoch1.jsonl"]  # a user's own run is kept
    assert len(load_predictions(runs / "collapse-attention-bridge")) == 64
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        install_collapse_examples(tmp_path / "file")
