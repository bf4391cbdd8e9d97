"""The offline demo model set: built by the real pipeline (corpus -> features -> training), loaded strictly."""

from __future__ import annotations

import json
import shutil

import pytest

from slt.demo.bundle import BUNDLE_FILE, load_model_set
from slt.errors import ModelUnavailableError
from slt.registry import resolve_model_set


def test_bundle_has_every_part_and_a_card(demo_bundle_dir):
    spec = json.loads((demo_bundle_dir / BUNDLE_FILE).read_text())
    for rel in spec["files"].values():
        assert (demo_bundle_dir / rel).stat().st_size > 0
    card = " ".join((demo_bundle_dir / "CARD.md").read_text().split())
    assert "*not* Meta's SONAR ASL models" in card and "| test domain | system |" in card
    systems = {row["system"] for row in spec["evaluation"]}
    assert systems == {"zero-shot", "fine-tuned", "ignore-the-video baseline"}


def test_quick_demo_encoders_read_the_video(demo_bundle_dir):
    """Even the quick build must not be a constant-output model: its encoders give different outputs per clip."""
    spec = json.loads((demo_bundle_dir / BUNDLE_FILE).read_text())
    rows = {(r["domain"].split()[0], r["system"]): r for r in spec["evaluation"]}
    assert rows[("instructional", "ignore-the-video baseline")]["unique_predictions"] == 1
    assert rows[("instructional", "fine-tuned")]["unique_predictions"] > 1


def test_model_set_loads_through_the_registry(demo_bundle_dir, monkeypatch):
    monkeypatch.setenv("SLT_DEMO_DIR", str(demo_bundle_dir))
    model_set = resolve_model_set("demo", build_demo=False)
    assert set(model_set.encoders) == {"zero-shot", "fine-tuned"}
    assert model_set.languages == ["eng_Latn"]
    # offline with no official weights cached, "auto" falls back to the demo set
    monkeypatch.setenv("SLT_OFFLINE", "1")
    assert resolve_model_set("auto", build_demo=False).name == "demo"


def test_incomplete_bundle_is_a_clear_error(demo_bundle_dir, tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(demo_bundle_dir, copy, ignore=shutil.ignore_patterns("work"))
    (copy / "encoder_fine_tuned.pt").unlink()
    with pytest.raises(ModelUnavailableError, match="encoder_fine_tuned.pt.*demo build --force"):
        load_model_set(copy)


def test_missing_bundle_without_auto_build_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SLT_DEMO_DIR", str(tmp_path / "nothing"))
    with pytest.raises(ModelUnavailableError, match="python -m slt demo build"):
        resolve_model_set("demo", build_demo=False)


def test_bundle_folder_can_be_moved(demo_bundle_dir, tmp_path):
    """Asset cards hold paths relative to the bundle, so a copied bundle loads its own files."""
    from slt.text import assets

    spec = json.loads((demo_bundle_dir / BUNDLE_FILE).read_text())
    assert "file://" not in (demo_bundle_dir / spec["files"]["decoder_cards"]).read_text()
    copy = tmp_path / "moved"
    shutil.copytree(demo_bundle_dir, copy, ignore=shutil.ignore_patterns("work"))
    model_set = load_model_set(copy)
    model_set.prepare_decoder()
    card = assets._CARDS[f"{model_set.decoder}@"]
    assert card["checkpoint"].startswith((copy / "text").resolve().as_uri())
    load_model_set(demo_bundle_dir).prepare_decoder()  # leave the session's registration as it was
