"""`TrainConfig`: every knob of a training run, loaded from JSON/YAML and/or CLI flags, saved as `config.json`.

The field names are a contract shared by the trainer, the recipes, `python -m slt tune` and the app: add fields,
never rename them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from slt.errors import DecodingOptionsError, TrainingError
from slt.text.backends import DECODER_BACKENDS
from slt.text.options import DecodingOptions
from slt.utils.io import atomic_write_json

RECIPES = ("sonar-finetune", "t5-bridge", "scratch", "signhiera-finetune")
SCHEDULERS = ("cosine", "plateau")
AMP_DTYPES = ("float16", "bfloat16")
# Decoding fields without a flag of their own: `--seed` is the run's seed, which also seeds sampling.
CONFIG_OWNED_DECODING = ("seed",)


@dataclass
class TrainConfig:
    """One training run. `None` for `base_encoder` means the official zero-shot encoder (slt.modelset)."""

    recipe: str = "sonar-finetune"
    train_features: str | None = None
    val_features: str | None = None
    run_dir: str = "runs/run"
    base_encoder: str | None = None
    decoder: str = "text_sonar_basic_decoder"
    tokenizer: str = "text_sonar_basic_encoder"
    asset_cards: str | None = None  # fairseq2 asset-card YAML to register first (local decoders/tokenizers)
    decoder_backend: str = "auto"  # auto | fairseq2 | transformers: the library that runs the frozen text decoder
    target_lang: str = "eng_Latn"
    epochs: int = 10
    batch_size: int = 8  # per process; the global batch is batch_size * world_size * grad_accum
    grad_accum: int = 1
    lr: float = 5e-5
    encoder_lr: float | None = None  # differential lr for the pretrained encoder part (None = lr)
    weight_decay: float = 0.1
    warmup_epochs: float = 1.0
    scheduler: str = "cosine"
    min_lr: float = 1e-7
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    clip_grad: float = 1.0
    label_smoothing: float = 0.1
    dropout: float = 0.0
    amp: bool = True  # mixed precision: on CUDA always; on CPU only with amp_dtype bfloat16
    # float16 (with a GradScaler) or bfloat16 (no scaler; wider range: the safer choice on GPUs that have it)
    amp_dtype: str = "float16"
    seed: int = 0
    max_samples: int | None = None
    max_val_samples: int | None = None
    eval_every: int = 1
    early_stop_patience: int = 25
    decoding: DecodingOptions = field(default_factory=DecodingOptions)  # seed None: sampling uses `seed`
    bridge_queries: int = 8
    bridge: str = "attention"  # t5-bridge: "attention" (Q query tokens) or "linear" (one projected token)
    t5_model: str = "t5-small"
    t5_init: str = "pretrained"  # t5-bridge: "pretrained" (local folder / HF cache) or "random"
    freeze_encoder: bool = False
    unfreeze_after: int | None = None
    # signhiera-finetune (stage 1 from video; train_features / val_features are crop caches, see slt.data.crop_cache):
    # train the last `unfreeze_signhiera_layers` SignHiera blocks, or when 0 all but the first
    # `signhiera_freeze_fraction` of them; `freeze_encoder` keeps the SONAR encoder frozen.
    unfreeze_signhiera_layers: int = 0
    signhiera_checkpoint: str | None = None  # the SignHiera checkpoint stage 1 starts from
    signhiera_freeze_fraction: float = 0.8
    gradient_checkpointing: bool = True  # recompute the trained SignHiera blocks in backward (less memory)
    temporal_jitter: int = 0  # sampled frames each unpadded training clip's window may move by (augmentation)
    scratch_layers: int = 2
    scratch_d_model: int = 256
    scratch_heads: int = 4
    scratch_ff: int = 1024
    target_vocab_size: int = 8000  # own SentencePiece vocabulary (scratch, t5-bridge with a random T5): a ceiling
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10  # steps between step-level metrics lines
    save_every_steps: int = 0  # 0 = checkpoint at epoch ends (and on SIGTERM/SIGINT) only
    tensorboard: bool = False
    wandb: bool = False
    mlflow: bool = False

    def validate(self, source: str = "config") -> TrainConfig:
        """Check every field's type and range; raise one TrainingError naming every bad field; return self.

        Types are checked strictly (a JSON/YAML config is not coerced): "false" is not a bool (it would be truthy),
        2.5 or true is not an int, "1e-3" is not a number, NaN is not a learning rate. Strict checks on the
        dataclass rather than a typed-config library: the dataclass stays the one contract that the trainer,
        `tune`, the app and saved config.json files share, and training does not depend on the app's packages.
        """
        problems = self.problems()
        if problems:
            raise TrainingError(f"Bad training config ({source}), {len(problems)} field(s) to fix: "
                                + "; ".join(problems))
        return self

    def problems(self) -> list[str]:
        """What `validate` would report, one line per bad field ([] when the config is fine)."""
        hints = get_type_hints(TrainConfig)
        problems = []
        for f in dataclasses.fields(self):
            if f.name != "decoding":
                problem = _field_problem(f.name, getattr(self, f.name), hints[f.name])
                if problem:
                    problems.append(problem)
        if not isinstance(self.decoding, DecodingOptions):
            problems.append(f"decoding must be a mapping of decoding settings, got {_shown(self.decoding)}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict; unknown keys are an error (a typo must not silently fall back to a default)."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        decoding = data.pop("decoding", None) or {}
        if isinstance(decoding, DecodingOptions):
            decoding = dataclasses.asdict(decoding)
        dec_known = {f.name for f in dataclasses.fields(DecodingOptions)}
        bad = sorted(set(decoding) - dec_known)
        if bad:
            raise TrainingError(f"{source}: unknown decoding field(s) {bad}; known: {sorted(dec_known)}")
        try:
            options = DecodingOptions(**decoding)
        except DecodingOptionsError as error:
            raise TrainingError(f"{source}: bad decoding setting: {error}") from error
        try:
            return cls(**data, decoding=options)
        except TypeError as error:
            raise TrainingError(f"{source}: {error}") from error

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Load a JSON (.json) or YAML (.yaml/.yml) config file."""
        return cls.from_dict(read_config_mapping(path), source=str(path))


def read_config_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON (.json) or YAML (.yaml/.yml) config file; TrainingError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TrainingError(f"Config file {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                            "save it as UTF-8") from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as error:  # json.JSONDecodeError, yaml.YAMLError
        raise TrainingError(f"Cannot parse config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise TrainingError(f"Config file {path} must hold a mapping of field -> value")
    return data


# ----------------------------------------------------------------------------------------------- checks
# field -> (lowest, highest, ends): ends "[]" allows both bounds, "[)" not the highest, "()" neither; None = unbounded.
_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    **{name: (1, None, "[]") for name in (
        "epochs", "batch_size", "grad_accum", "eval_every", "log_every", "max_samples", "max_val_samples",
        "early_stop_patience", "bridge_queries", "scratch_layers", "scratch_d_model", "scratch_heads", "scratch_ff")},
    **{name: (0, None, "[]") for name in (
        "save_every_steps", "plateau_patience", "unfreeze_after", "unfreeze_signhiera_layers", "num_workers",
        "weight_decay", "warmup_epochs", "min_lr", "clip_grad", "temporal_jitter")},
    "seed": (0, 2**32 - 1, "[]"), "target_vocab_size": (8, None, "[]"),
    "lr": (0.0, None, "()"), "encoder_lr": (0.0, None, "()"), "plateau_factor": (0.0, 1.0, "()"),
    "label_smoothing": (0.0, 1.0, "[)"), "dropout": (0.0, 1.0, "[)"), "signhiera_freeze_fraction": (0.0, 1.0, "[]"),
}
# t5_init and bridge: the t5-bridge recipe's T5_INITS and BRIDGES (that module lies above this one).
_CHOICES: dict[str, tuple[str, ...]] = {"recipe": RECIPES, "scheduler": SCHEDULERS, "t5_init": ("pretrained", "random"),
                                       "bridge": ("attention", "linear"), "decoder_backend": DECODER_BACKENDS,
                                       "amp_dtype": AMP_DTYPES}
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# may be None, not ""
_OPTIONAL_EMPTY = ("train_features", "val_features", "base_encoder", "asset_cards", "signhiera_checkpoint")


def _shown(value: Any) -> str:
    return f"{value!r} ({'a string' if isinstance(value, str) else type(value).__name__})"


def _field_problem(name: str, value: Any, hint: Any) -> str | None:
    """What is wrong with one field's value (type first, then range), or None."""
    optional = get_origin(hint) is not None and type(None) in get_args(hint)
    if optional:
        if value is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {_shown(value)}"
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be a whole number, got {_shown(value)}"
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number, got {_shown(value)}"
        if not math.isfinite(value):
            return f"{name} must be a finite number, got {value}"
    elif hint is str:
        if not isinstance(value, str):
            return f"{name} must be a string, got {_shown(value)}"
        if name in _CHOICES and value not in _CHOICES[name]:
            return f"{name} must be one of {_CHOICES[name]}, got {value!r}"
        if name == "device" and not _DEVICE.match(value):
            return f"device must be auto, cpu, cuda, cuda:N or mps, got {value!r}"
        if not value.strip():
            return f"{name} must not be empty" + (" (leave it out or use null)" if name in _OPTIONAL_EMPTY else "")
        return None
    if name in _RANGES:
        low, high, ends = _RANGES[name]
        too_low = low is not None and (value < low if ends[0] == "[" else value <= low)
        too_high = high is not None and (value > high if ends[1] == "]" else value >= high)
        if too_low or too_high:
            bounds = [f"{'>=' if ends[0] == '[' else '>'} {low}" if low is not None else None,
                      f"{'<=' if ends[1] == ']' else '<'} {high}" if high is not None else None]
            return f"{name} must be {' and '.join(b for b in bounds if b)}, got {value}"
    return None


# ----------------------------------------------------------------------------------------------- CLI flags
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _arg_type(hint: Any):
    """Map a field's type hint to an argparse converter (Optional[X] -> X; bool -> parse 'true'/'false')."""
    if get_origin(hint) is not None and type(None) in get_args(hint):
        hint = next(a for a in get_args(hint) if a is not type(None))
        inner = _arg_type(hint)
        return lambda text: None if text.lower() in ("none", "null") else inner(text)
    if hint is bool:
        return _parse_bool
    return hint if hint in (int, float, str) else str


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One optional flag per config field (e.g. --lr, --batch-size, --beam-size); unset flags stay None."""
    group = parser.add_argument_group("config overrides (any TrainConfig field)")
    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "decoding":
            continue
        group.add_argument(_flag(f.name), dest=f"cfg_{f.name}", type=_arg_type(hints[f.name]), default=None,
                           metavar=f.name.upper())
    dec_hints = get_type_hints(DecodingOptions)
    for f in dataclasses.fields(DecodingOptions):
        if f.name in CONFIG_OWNED_DECODING:
            continue
        group.add_argument(_flag(f.name), dest=f"dec_{f.name}", type=_arg_type(dec_hints[f.name]), default=None,
                           metavar=f.name.upper())


def decoding_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Decoding flags the user actually set."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("dec_") and v is not None}


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Apply the flags that were given on top of `base` (or `--config`, or the defaults) and validate."""
    if base is None:
        base = TrainConfig.load(args.config) if getattr(args, "config", None) else TrainConfig()
    data = base.to_dict()
    for key, value in vars(args).items():
        if key.startswith("cfg_") and value is not None:
            data[key[4:]] = value
    data["decoding"].update(decoding_overrides(args))
    source = " + ".join(filter(None, [getattr(args, "config", None), "command-line flags"]))
    return TrainConfig.from_dict(data, source=source).validate(source)


def decoding_options(cfg: TrainConfig) -> DecodingOptions:
    """The run's decoding settings; sampling without its own seed takes the run's `seed`, so it reproduces."""
    if cfg.decoding.sampling and cfg.decoding.seed is None:
        return dataclasses.replace(cfg.decoding, seed=cfg.seed)
    return cfg.decoding
