"""Reading the demo bundle (`checkpoints/demo/demo.json`) as a ModelSet; building it when asked."""

from __future__ import annotations

import json
from pathlib import Path

from slt.errors import ModelUnavailableError
from slt.registry import ModelSet

BUNDLE_FILE = "demo.json"


def load_model_set(root: Path) -> ModelSet:
    spec_path = Path(root) / BUNDLE_FILE
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelUnavailableError(f"demo bundle {spec_path} is unreadable ({error}); rebuild it with "
                                    "`python -m slt demo build --force`") from error
    files = {role: Path(root) / rel for role, rel in spec["files"].items()}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise ModelUnavailableError(f"demo bundle in {root} is incomplete (missing {missing}); rebuild it with "
                                    "`python -m slt demo build --force`")
    card_file = files["decoder_cards"]

    def register() -> None:
        from slt.text.assets import register_asset_file

        register_asset_file(card_file)

    return ModelSet(
        name="demo",
        description=spec["description"],
        signhiera=files["signhiera"],
        encoders={"zero-shot": files["encoder_zero_shot"], "fine-tuned": files["encoder_fine_tuned"]},
        decoder=spec["decoder"],
        tokenizer=spec["tokenizer"],
        detector=spec.get("detector", "hog"),
        languages=spec["languages"],
        prepare_decoder=register,
    )


def build_demo(root: Path, **kwargs) -> Path:
    from slt.demo.build import build

    return build(Path(root), **kwargs)
