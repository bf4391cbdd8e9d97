"""Recipes by name, imported lazily (a recipe's heavy dependencies load only when it is used).

The names are listed once, in `slt.train.config.RECIPES`; recipe `a-b` is the class `ABRecipe` of the module
`slt.train.recipes.a_b` (sonar-finetune -> sonar_finetune.SonarFinetuneRecipe, t5-bridge -> t5_bridge.T5BridgeRecipe).
"""

from __future__ import annotations

import importlib

from slt.errors import TrainingError
from slt.train.config import RECIPES
from slt.train.recipes.base import Recipe


def recipe_location(name: str) -> tuple[str, str]:
    """(module, class) of the recipe called `name`."""
    return f"{__name__}.{name.replace('-', '_')}", "".join(part.capitalize() for part in name.split("-")) + "Recipe"


def get_recipe(name: str) -> Recipe:
    """Instantiate the recipe called `name`; TrainingError for an unknown name."""
    if name not in RECIPES:
        raise TrainingError(f"Unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    module_name, class_name = recipe_location(name)
    return getattr(importlib.import_module(module_name), class_name)()


__all__ = ["Recipe", "get_recipe", "recipe_location"]
