"""Recipes by name, imported lazily (a recipe's heavy dependencies load only when it is used)."""

from __future__ import annotations

import importlib

from slt.errors import TrainingError
from slt.train.recipes.base import Recipe

# name -> (module, class)
RECIPE_MODULES: dict[str, tuple[str, str]] = {
    "sonar-finetune": ("slt.train.recipes.sonar_finetune", "SonarFinetuneRecipe"),
    "t5-bridge": ("slt.train.recipes.t5_bridge", "T5BridgeRecipe"),
    "scratch": ("slt.train.recipes.scratch", "ScratchRecipe"),
}


def get_recipe(name: str) -> Recipe:
    """Instantiate the recipe called `name`; TrainingError for an unknown name."""
    if name not in RECIPE_MODULES:
        raise TrainingError(f"Unknown recipe {name!r}; choose one of {sorted(RECIPE_MODULES)}")
    module_name, class_name = RECIPE_MODULES[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()


__all__ = ["Recipe", "get_recipe", "RECIPE_MODULES"]
