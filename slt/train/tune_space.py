"""The hyperparameter search space of `python -m slt tune`: parse `--search NAME=KIND:ARGS`, sample with Optuna.

Kinds: `log:LOW:HIGH` (log-uniform float), `float:LOW:HIGH`, `int:LOW:HIGH`, `choice:A,B,C`.
NAME is a TrainConfig field (`lr`, `dropout`, ...) or `decoding.FIELD` (`decoding.beam_size`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna

from slt.errors import TrainingError
from slt.text.options import DecodingOptions
from slt.train.config import TrainConfig

KINDS = ("log", "float", "int", "choice")

# Searched unless the user narrows the space (--search overrides one entry, --no-default-space drops them all).
COMMON_SPACE = {
    "lr": "log:1e-5:3e-3",
    "batch_size": "choice:4,8,16",
    "warmup_epochs": "float:0:3",
    "label_smoothing": "float:0:0.3",
    "dropout": "float:0:0.3",
}
RECIPE_SPACE = {
    "t5-bridge": {"bridge_queries": "choice:4,8,16,32", "encoder_lr": "log:1e-6:3e-4"},
    "scratch": {"scratch_layers": "choice:2,3,4", "scratch_d_model": "choice:128,256"},
    "sonar-finetune": {},
}


@dataclass(frozen=True)
class SearchParam:
    """One searched hyperparameter."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log")

    def spec(self) -> str:
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(map(str, self.choices))}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}"


def _field_type(name: str) -> type:
    """The Python type of a TrainConfig (or decoding.*) field, for parsing choices; TrainingError if unknown."""
    if name.startswith("decoding."):
        owner, field_name = DecodingOptions, name.split(".", 1)[1]
    else:
        owner, field_name = TrainConfig, name
    defaults = {f.name: f for f in dataclasses.fields(owner)}
    if field_name not in defaults or field_name == "decoding":
        known = sorted(defaults) if owner is TrainConfig else [f"decoding.{k}" for k in sorted(defaults)]
        raise TrainingError(f"--search {name!r}: not a config field; known: {known}")
    default = defaults[field_name].default
    if default is None or default is dataclasses.MISSING:
        return float  # Optional numeric fields such as encoder_lr
    return type(default)


def parse_search(spec: str) -> SearchParam:
    """`lr=log:1e-5:1e-3` -> SearchParam; TrainingError naming what is wrong."""
    name, sep, rest = spec.partition("=")
    kind, _, args = rest.partition(":")
    name, kind = name.strip(), kind.strip()
    if not sep or kind not in KINDS or not args:
        raise TrainingError(f"--search {spec!r}: expected NAME=KIND:ARGS with KIND in {KINDS}, "
                            "e.g. lr=log:1e-5:1e-3, batch_size=choice:4,8,16, scratch_layers=int:2:4")
    field_type = _field_type(name)
    try:
        if kind == "choice":
            cast = {bool: lambda s: s.lower() in ("1", "true", "yes")}.get(field_type, field_type)
            choices = tuple(cast(v.strip()) for v in args.split(",") if v.strip())
            if not choices:
                raise ValueError("no choices")
            return SearchParam(name, kind, choices=choices)
        low_text, _, high_text = args.partition(":")
        low, high = float(low_text), float(high_text)
    except ValueError as error:
        raise TrainingError(f"--search {spec!r}: cannot parse {args!r} for a {field_type.__name__} field "
                            f"({error})") from None
    if not low < high or (kind == "log" and low <= 0):
        raise TrainingError(f"--search {spec!r}: need LOW < HIGH (and LOW > 0 for log)")
    return SearchParam(name, kind, low, high)


def build_space(recipe: str, specs: list[str], use_defaults: bool = True) -> list[SearchParam]:
    """Default space for the recipe (unless disabled) with the user's --search entries replacing or adding."""
    entries: dict[str, str] = {}
    if use_defaults:
        entries.update(COMMON_SPACE)
        entries.update(RECIPE_SPACE.get(recipe, {}))
    for spec in specs:
        param = parse_search(spec)
        entries[param.name] = spec.partition("=")[2]
    if not entries:
        raise TrainingError("empty search space: give --search NAME=KIND:ARGS or drop --no-default-space")
    return [parse_search(f"{name}={rest}") for name, rest in entries.items()]


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A config dict with sampled values set (`decoding.x` goes into the nested decoding dict)."""
    data = {**base, "decoding": dict(base.get("decoding") or {})}
    for name, value in params.items():
        if name.startswith("decoding."):
            data["decoding"][name.split(".", 1)[1]] = value
        else:
            data[name] = value
    return data
