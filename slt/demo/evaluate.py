"""`python -m slt demo eval`: BLEU of the demo encoders on held-out clips, from video, through the engine.

The "ignore the video" baseline says the most common training sentence for every clip: a model that does not
read the video cannot beat it, so both encoders must.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from analysis.metrics import validation_scores
from slt.data.manifest import read_manifest
from slt.engine import TranslationEngine
from slt.modelset import read_demo_bundle


def _most_common_training_sentence(manifest: Path) -> str:
    counts = Counter(row.translation for row in read_manifest(manifest, check_files=False).rows)
    return counts.most_common(1)[0][0]


def evaluate_demo(root: Path, batch_size: int = 16) -> list[dict]:
    """Rows of {domain, system, bleu, chrf, n, unique_predictions}: both encoders and the baseline, per test domain."""
    bundle = read_demo_bundle(Path(root))
    engine = TranslationEngine(bundle.model_set(), device="cpu")
    rows = []
    for domain, label in (("B", "instructional (domain B, the fine-tuning target)"), ("A", "studio (domain A)")):
        test = read_manifest(bundle.corpora[domain]["test"])
        references = [row.translation for row in test.rows]
        predictions: dict[str, list[str]] = {name: [] for name in engine.encoder_names}
        for first in range(0, len(test.rows), batch_size):
            chunk = [row.video_path for row in test.rows[first : first + batch_size]]
            for result in engine.translate_batch(chunk, ["eng_Latn"]):
                for name in predictions:
                    predictions[name].append(result.translations[name]["eng_Latn"])
        baseline = _most_common_training_sentence(bundle.corpora[domain]["train"])
        predictions["ignore-the-video baseline"] = [baseline] * len(references)
        ids = [row.id for row in test.rows]
        for system, hyps in predictions.items():
            scores, _ = validation_scores(ids, references, hyps)
            rows.append({
                "domain": label, "system": system, "n": len(references),
                "bleu": round(scores["bleu"], 2), "chrf": round(scores["chrf"], 2),
                "unique_predictions": len(set(hyps)),
            })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| test domain | system | clips | BLEU | chrF | distinct outputs |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['domain']} | {r['system']} | {r['n']} | {r['bleu']:.2f} | {r['chrf']:.2f} "
                     f"| {r['unique_predictions']} |")
    return "\n".join(lines)
