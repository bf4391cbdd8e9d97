"""Example runs shipped with the project: a genuine mode collapse and its fix, for the predictions browser.

Two t5-bridge runs on the synthetic corpus (the quick demo set's domain-A features), trained by
``configs/collapse/*.json`` (docs/COLLAPSE.md), the same but for the bridge between the sentence embedding and the
T5 decoder: ``collapse-attention-bridge`` (the recipe's default attention bridge) collapses, and
``collapse-linear-bridge`` (one linearly projected token) stays healthy. Only what
the browser and the analysis library read is shipped (config.json, metrics.jsonl and some epochs' predictions
files), not the checkpoints.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from slt.errors import InvalidArgumentError

EXAMPLES_DIR = Path(__file__).resolve().parent / "collapse_examples"
COLLAPSE_EXAMPLES = {
    "collapse-attention-bridge": "t5-bridge with the attention bridge: collapses on the synthetic corpus",
    "collapse-linear-bridge": "t5-bridge with the one-token linear bridge: healthy",
}


def collapse_example_runs() -> dict[str, Path]:
    """Name -> shipped run folder of each collapse example (folders holding predictions_epochN.jsonl)."""
    return {name: EXAMPLES_DIR / name for name in COLLAPSE_EXAMPLES}


def install_collapse_examples(runs_dir: str | Path) -> list[Path]:
    """Copy the example runs into ``runs_dir`` (where the app's predictions browser lists runs), once.

    A folder of the same name that already exists is left alone (it may be the user's own rerun of the command).
    """
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise InvalidArgumentError(f"runs folder {runs_dir} is a file, not a folder")
    installed = []
    for name, source in collapse_example_runs().items():
        target = runs_dir / name
        if not target.exists():
            runs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target)
        installed.append(target)
    return installed
