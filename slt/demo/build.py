"""`python -m slt demo build`: make the offline demo model set with the project's own data and training code.

Steps (deterministic for a seed; each step's output is reused if a previous build was interrupted):
1. synthetic corpora: domain A "studio" and domain B "instructional" (slt.data.synth);
2. a tiny SignHiera (random, frozen: the "pretrained video encoder") and its features for every clip
   (slt.data.extract: the real preprocessing and extraction path);
3. a tiny SONAR-style text decoder + SentencePiece model, pretrained as a text autoencoder, then frozen
   (slt.text.pretrain_text_decoder);
4. the "zero-shot" encoder: sonar-finetune from a random tiny encoder on domain A (decoder frozen);
5. the "fine-tuned" encoder: sonar-finetune of the zero-shot encoder on domain B (decoder frozen);
6. the bundle file (demo.json), a card (CARD.md) and the evaluation table (slt.demo.evaluate).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from slt.data.extract import ExtractOptions, extract_features
from slt.data.features import FeaturesDataset
from slt.data.manifest import read_manifest
from slt.data.synth.corpus import generate_corpus
from slt.demo.evaluate import evaluate_demo, format_table
from slt.models import (
    SignHiera,
    SignHieraConfig,
    SonarSignEncoder,
    SonarSignEncoderConfig,
    load_signhiera,
    save_model_checkpoint,
)
from slt.modelset import DemoBundle
from slt.text import DecodingOptions, pretrain_text_decoder
from slt.train.config import TrainConfig
from slt.train.trainer import Trainer
from slt.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
LANGUAGES = ["eng_Latn"]


@dataclass
class DemoRecipe:
    """Sizes of the demo build; the defaults take a few minutes on a 2-core CPU."""

    seed: int = 0
    n_train_a: int = 600  # domain A plays DailyMoth-70h: the larger corpus
    n_val_a: int = 30
    n_test_a: int = 30
    n_train_b: int = 300  # domain B plays How2Sign: smaller, different signer/background/speed
    n_val_b: int = 30
    n_test_b: int = 60
    signhiera_embed_dim: int = 16
    signhiera_image_size: int = 128  # tiny: 128x128 crops keep feature extraction ~0.3 s per clip on a CPU
    model_dim: int = 64  # text decoder (and sentence embedding) width
    encoder_d_model: int = 64
    encoder_layers: int = 2
    decoder_steps: int = 600
    epochs_a: int = 40
    epochs_b: int = 30
    batch_size: int = 16
    lr_a: float = 2e-3
    lr_b: float = 2e-3
    label_smoothing: float = 0.1
    dropout: float = 0.1
    workers: int = 2
    # Domain B of the demo: the "instructional" preset with plain (but differently coloured) backgrounds and a
    # milder camera, so that a few hundred clips suffice to adapt: with textured backgrounds the tiny random
    # SignHiera's features are dominated by the texture. Signer, colours, speed, hand tint and the new signs
    # stay different from domain A.
    domain_b_overrides: dict = field(default_factory=lambda: {
        "background": "plain", "background_colours": ((60, 100, 70), (115, 95, 70)),
        "noise_sigma": 3.0, "shake": 0.5, "brightness_jitter": 0.02})

    @classmethod
    def quick(cls) -> DemoRecipe:
        """A smaller build for tests: same steps, fewer clips and epochs."""
        return cls(n_train_a=64, n_val_a=8, n_test_a=8, n_train_b=32, n_val_b=8, n_test_b=12,
                   decoder_steps=200, epochs_a=6, epochs_b=4)


def _step(name: str):
    log.info("demo build: %s", name)
    print(f"[demo build] {name}", flush=True)


def build(root: Path, recipe: DemoRecipe | None = None, force: bool = False) -> Path:
    """Build the bundle into `root`; returns the path of demo.json."""
    recipe = recipe or DemoRecipe()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest and makes the build reproducible
    try:
        return _build(Path(root), recipe, force)
    finally:
        torch.set_num_threads(threads)


def _build(root: Path, recipe: DemoRecipe, force: bool) -> Path:
    if force and root.exists():
        shutil.rmtree(root)
    work = root / "work"
    recipe_file = work / "recipe.json"
    if recipe_file.exists() and json.loads(recipe_file.read_text()) != asdict(recipe):
        shutil.rmtree(work)  # a different recipe: nothing of an earlier build can be reused
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(recipe_file, asdict(recipe))
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name, fn):
        _step(name)
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        return out

    corpora = timed("synthetic corpora", lambda: _corpora(work, recipe))
    signhiera_path = timed("tiny SignHiera", lambda: _signhiera(root / "signhiera.pt", recipe))
    features = timed("features (preprocessing + SignHiera)", lambda: _features(work, corpora, signhiera_path, recipe))
    decoder_name, tokenizer_name, text_paths = timed("text decoder pretraining",
                                                     lambda: _text_decoder(root / "text", corpora, recipe))
    feature_dim = _feature_dim(signhiera_path)
    init_path = _random_encoder(work / "encoder_init.pt", feature_dim, features["A"]["train"], recipe)
    zero_shot = timed("zero-shot encoder (domain A)", lambda: _train(
        work / "run_a", "A", features["A"], init_path, decoder_name, tokenizer_name, recipe.epochs_a, recipe.lr_a,
        recipe))
    shutil.copyfile(zero_shot, root / "encoder_zero_shot.pt")
    fine_tuned = timed("fine-tuned encoder (domain B)", lambda: _train(
        work / "run_b", "B", features["B"], root / "encoder_zero_shot.pt", decoder_name, tokenizer_name,
        recipe.epochs_b, recipe.lr_b, recipe))
    shutil.copyfile(fine_tuned, root / "encoder_fine_tuned.pt")

    bundle = DemoBundle(
        root=root,
        description="Offline demo model set: tiny SignHiera + tiny SONAR-style decoder; 'zero-shot' encoder trained "
                    "on the synthetic 'studio' domain, 'fine-tuned' encoder adapted to the 'instructional' domain "
                    "(decoder frozen).",
        decoder=decoder_name, tokenizer=tokenizer_name, languages=LANGUAGES, detector="hog",
        files={"signhiera": root / "signhiera.pt", "encoder_zero_shot": root / "encoder_zero_shot.pt",
               "encoder_fine_tuned": root / "encoder_fine_tuned.pt", "decoder_cards": text_paths["cards"],
               "text_decoder": text_paths["decoder"], "tokenizer": text_paths["tokenizer"]},
        corpora=corpora, features=features, recipe=asdict(recipe), build_seconds=timings,
    )
    bundle_path = bundle.write()
    table = timed("evaluation on held-out domain-B clips (from video)", lambda: evaluate_demo(root))
    bundle.build_seconds = timings
    bundle.evaluation = table
    bundle.write()
    atomic_write_text(root / "CARD.md", _card(bundle.to_json(), format_table(table), time.perf_counter() - started))
    print(format_table(table))
    return bundle_path


def _corpora(work: Path, recipe: DemoRecipe) -> dict[str, dict[str, Path]]:
    out = {}
    for name, domain, sizes, seed, overrides in (
        ("A", "studio", (recipe.n_train_a, recipe.n_val_a, recipe.n_test_a), recipe.seed, {}),
        ("B", "instructional", (recipe.n_train_b, recipe.n_val_b, recipe.n_test_b), recipe.seed + 1,
         recipe.domain_b_overrides),
    ):
        folder = work / f"corpus_{name}"
        done = {split: folder / f"{split}.tsv" for split in ("train", "val", "test")}
        if all(path.exists() for path in done.values()) and (folder / "corpus.json").exists():
            out[name] = done
            continue
        out[name] = generate_corpus(folder, domain, *sizes, seed=seed, workers=recipe.workers, overwrite=True,
                                    **overrides)
    return out


def _signhiera(path: Path, recipe: DemoRecipe) -> Path:
    torch.manual_seed(recipe.seed)
    model = SignHiera(SignHieraConfig.tiny(embed_dim=recipe.signhiera_embed_dim,
                                           image_size=recipe.signhiera_image_size))
    save_model_checkpoint(model, path)
    return path


def _feature_dim(signhiera_path: Path) -> int:
    return load_signhiera(signhiera_path).config.feature_dim


def _features(work: Path, corpora: dict, signhiera_path: Path, recipe: DemoRecipe) -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for name, splits in corpora.items():
        out[name] = {}
        for split, manifest in splits.items():
            target = work / f"features_{name}" / split
            options = ExtractOptions(signhiera=signhiera_path, detector="hog", workers=recipe.workers, device="cpu")
            extract_features(manifest, target, options)  # resumes: finished clips are skipped
            out[name][split] = target / "features.tsv"
    return out


def _text_decoder(folder: Path, corpora: dict, recipe: DemoRecipe):
    # The decoder is "pretrained" on every sentence of both grammars' corpora, as SONAR's decoder was trained on
    # far more text than any sign-language data set holds.
    sentences = sorted({row.translation for splits in corpora.values() for path in splits.values()
                        for row in read_manifest(path, check_files=False).rows})
    return pretrain_text_decoder(sentences, folder, LANGUAGES, model_dim=recipe.model_dim, steps=recipe.decoder_steps,
                                 seed=recipe.seed, name_prefix="slt_demo")


def _random_encoder(path: Path, feature_dim: int, train_features: Path, recipe: DemoRecipe) -> Path:
    """A fresh tiny encoder whose input projection is initialised from the training features' statistics."""
    torch.manual_seed(recipe.seed)
    config = SonarSignEncoderConfig.tiny(input_dim=feature_dim, d_model=recipe.encoder_d_model,
                                         output_dim=recipe.model_dim, num_layers=recipe.encoder_layers)
    encoder = SonarSignEncoder(config)
    steps = torch.cat([item.features for item in FeaturesDataset(train_features)])
    encoder.standardize_input_projection(steps.mean(0), steps.std(0))
    save_model_checkpoint(encoder, path)
    return path


def _train(run_dir: Path, domain: str, features: dict[str, Path], base: Path, decoder: str, tokenizer: str,
           epochs: int, lr: float, recipe: DemoRecipe) -> Path:
    exported = run_dir / "encoder.pt"
    if exported.exists() and (run_dir / "status.json").exists() and \
            json.loads((run_dir / "status.json").read_text()).get("state") == "finished":
        return exported
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted build: redo this step from its start (deterministic)
    cfg = TrainConfig(
        recipe="sonar-finetune", train_features=str(features["train"]), val_features=str(features["val"]),
        run_dir=str(run_dir), base_encoder=str(base), decoder=decoder, tokenizer=tokenizer, epochs=epochs,
        batch_size=recipe.batch_size, lr=lr, warmup_epochs=1.0, label_smoothing=recipe.label_smoothing,
        dropout=recipe.dropout, seed=recipe.seed,
        device="cpu", decoding=DecodingOptions(beam_size=2, max_len=32), early_stop_patience=epochs,
    )
    Trainer(cfg).fit()
    return exported


def _card(spec: dict, table: str, seconds: float) -> str:
    recipe = spec["recipe"]
    return f"""# SLT Studio offline demo model set

**What it is.** Small models built on this machine by `python -m slt demo build` from the project's synthetic
signing corpus, so that every part of SLT Studio (engine, training, analysis, app) runs offline. They are *not*
Meta's SONAR ASL models and translate only the synthetic corpus's signing (a real face with drawn hands performing
sentences of a small English grammar); on real ASL video they output sentences of that grammar.

| part | what | file |
|---|---|---|
| SignHiera | same class as `hiera_base_128x224`, tiny config (embed dim {recipe['signhiera_embed_dim']}), random and frozen | `{spec['files']['signhiera']}` |
| text decoder | sonar-space SONAR text decoder architecture, tiny ({recipe['model_dim']}-d), pretrained as a text autoencoder on the corpus sentences, frozen; local SentencePiece model | `{spec['files']['text_decoder']}`, `{spec['files']['tokenizer']}` |
| zero-shot encoder | SONAR ASL encoder class (T5), tiny; sonar-finetune on domain A "studio" ({recipe['n_train_a']} clips, {recipe['epochs_a']} epochs) | `{spec['files']['encoder_zero_shot']}` |
| fine-tuned encoder | the zero-shot encoder, sonar-finetune on domain B "instructional" ({recipe['n_train_b']} clips, {recipe['epochs_b']} epochs), decoder frozen | `{spec['files']['encoder_fine_tuned']}` |

Languages: {', '.join(spec['languages'])}. Face detector: {spec['detector']}. Seed {recipe['seed']}. Built in {seconds:.0f} s
(steps: {spec['build_seconds']}).

## Evaluation on held-out clips, translated from video through the engine

{table}
"""  # noqa: E501 (markdown table rows cannot wrap)
