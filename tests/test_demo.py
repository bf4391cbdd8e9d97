"""The offline demo model set: built by the real pipeline (corpus -> features -> training), loaded strictly."""

from __future__ import annotations

import json
import shutil

import pytest

from slt.errors import ModelUnavailableError
from slt.modelset import BUNDLE_FILE, read_demo_bundle
from slt.registry import pick_model_set, resolve_model_set


def test_bundle_has_every_part_and_a_card(demo_bundle_dir):
    bundle = read_demo_bundle(demo_bundle_dir)
    for path in bundle.files.values():
        assert path.is_relative_to(demo_bundle_dir) and path.stat().st_size > 0
    card = " ".join((demo_bundle_dir / "CARD.md").read_text().split())
    assert "*not* Meta's SONAR ASL models" in card and "| test domain | system |" in card
    systems = {row["system"] for row in bundle.evaluation}
    assert systems == {"zero-shot", "fine-tuned", "ignore-the-video baseline"}
    # demo.json keeps paths relative to its folder, and the typed bundle writes back what it read
    spec = json.loads((demo_bundle_dir / BUNDLE_FILE).read_text())
    assert bundle.to_json() == spec and not any(rel.startswith("/") for rel in spec["files"].values())


def test_quick_demo_encoders_read_the_video(demo_bundle_dir):
    """Even the quick build must not be a constant-output model: its encoders give different outputs per clip."""
    rows = {(r["domain"].split()[0], r["system"]): r for r in read_demo_bundle(demo_bundle_dir).evaluation}
    assert rows[("instructional", "ignore-the-video baseline")]["unique_predictions"] == 1
    assert rows[("instructional", "fine-tuned")]["unique_predictions"] > 1


def test_model_set_loads_through_the_registry(demo_bundle_dir, monkeypatch):
    monkeypatch.setenv("SLT_DEMO_DIR", str(demo_bundle_dir))
    model_set = resolve_model_set("demo")
    assert set(model_set.encoders) == {"zero-shot", "fine-tuned"}
    assert model_set.languages == ["eng_Latn"]
    # offline with no official weights cached, "auto" falls back to the demo set
    monkeypatch.setenv("SLT_OFFLINE", "1")
    assert pick_model_set("auto") == "demo" and resolve_model_set("auto").name == "demo"


def test_incomplete_bundle_is_a_clear_error(demo_bundle_dir, tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(demo_bundle_dir, copy, ignore=shutil.ignore_patterns("work"))
    (copy / "encoder_fine_tuned.pt").unlink()
    with pytest.raises(ModelUnavailableError, match="encoder_fine_tuned.pt.*demo build --force"):
        read_demo_bundle(copy).model_set()


def test_missing_bundle_is_never_built_by_resolving_and_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SLT_DEMO_DIR", str(tmp_path / "nothing"))
    with pytest.raises(ModelUnavailableError, match="python -m slt demo build"):
        resolve_model_set("demo")
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("content", ["{not json", '{"description": "no files"}', '["a list"]'])
def test_unreadable_bundle_is_a_clear_error(tmp_path, content):
    (tmp_path / BUNDLE_FILE).write_text(content)
    with pytest.raises(ModelUnavailableError, match="unreadable.*demo build --force"):
        read_demo_bundle(tmp_path)


def test_bundle_folder_can_be_moved(demo_bundle_dir, tmp_path):
    """Asset cards hold paths relative to the bundle, so a copied bundle loads its own files."""
    from slt.text import assets

    assert "file://" not in read_demo_bundle(demo_bundle_dir).files["decoder_cards"].read_text()
    copy = tmp_path / "moved"
    shutil.copytree(demo_bundle_dir, copy, ignore=shutil.ignore_patterns("work"))
    model_set = read_demo_bundle(copy).model_set()
    assert model_set.asset_cards.is_relative_to(copy)
    assets.register_asset_file(model_set.asset_cards)
    card = assets._CARDS[f"{model_set.decoder}@"]
    assert card["checkpoint"].startswith((copy / "text").resolve().as_uri())
    # leave the session's registration as it was
    assets.register_asset_file(read_demo_bundle(demo_bundle_dir).model_set().asset_cards)
