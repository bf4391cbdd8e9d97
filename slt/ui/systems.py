"""Trained systems as choices next to the model set's encoders (Translate and Compare tabs).

A system is a two-stage (or stage-1) run of the runs folder with a ``system.json``: an encoder and its own,
adapted SignHiera. It is offered as ``system:<run>``; an admin may also type a path to such a run. Picking it adds
it to the engine (once; again when its files changed) under that name.
"""

from __future__ import annotations

from pathlib import Path

from slt.errors import PathNotAllowedError
from slt.modelset import SystemSpec, find_systems, read_system
from slt.ui.limits import check_allowed_path, is_admin
from slt.ui.settings import AppSettings
from slt.ui.state import AppState

SYSTEM_PREFIX = "system:"


def system_choices(settings: AppSettings) -> list[str]:
    """The runs folder's trained systems (runs with a system.json), as Compare choices: `system:<run>`."""
    return [f"{SYSTEM_PREFIX}{name}" for name in find_systems(settings.runs_dir)]


def compare_choices(settings: AppSettings, engine) -> list[str]:
    """What the encoder boxes offer (Translate, and Compare on a clip): the model set's encoders, then the runs
    folder's systems."""
    listed = system_choices(settings)
    return [name for name in engine.encoder_names if name not in listed] + listed


def pick_system(settings: AppSettings, name: str, token: str | None = None) -> SystemSpec:
    """The system a choice (other than a model-set encoder label) names.

    `system:<run>` must be a system of the runs folder (whose checkpoints lie where the app may read); any other
    value is a path to a run folder or system file, which only an admin may give (an exposed app takes no server
    paths from visitors)."""
    listed = find_systems(settings.runs_dir)
    if name.startswith(SYSTEM_PREFIX) and name[len(SYSTEM_PREFIX):] in listed:
        system = read_system(listed[name[len(SYSTEM_PREFIX):]])
        for file in (system.signhiera, system.encoder):
            check_allowed_path(file, settings)
        return system
    if not is_admin(token, settings):
        raise PathNotAllowedError(f"{name!r} is neither an encoder of the model set nor a listed system; pick one "
                                  "from the list (a path to a system needs the admin token)")
    typed = name[len(SYSTEM_PREFIX):] if name.startswith(SYSTEM_PREFIX) else name
    path = Path(typed.strip()).expanduser()
    return read_system(path if path.is_absolute() else settings.runs_dir / path)


def use_encoder(state: AppState, engine, name: str, token: str | None = None) -> str:
    """The engine label of an encoder choice: a model-set encoder as it is; a system is added to the engine (once;
    again when its files changed) under its choice name."""
    name = (name or "").strip()
    if name in engine.encoder_names and not name.startswith(SYSTEM_PREFIX):
        return name
    system = pick_system(state.settings, name, token)
    label = name if name.startswith(SYSTEM_PREFIX) else f"{SYSTEM_PREFIX}{name}"
    model_set = engine.model_set
    if (model_set.encoders.get(label), model_set.encoder_signhieras.get(label)) != (system.encoder, system.signhiera):
        engine.add_system(label, system)
    return label
