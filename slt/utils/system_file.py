"""`system.json`: a trained translation system (an adapted SignHiera + a SONAR encoder) that a model set can use.

Training from video changes SignHiera, so its encoder only works with that SignHiera's features: the two travel
together. A folder that holds such a pair describes it in ``system.json``::

    {"format": 1, "signhiera": "stage1/signhiera.pt", "encoder": "stage2/encoder.pt",
     "detector": "cnn", "description": "two-stage fine-tuning ..."}

- ``signhiera`` and ``encoder``: paths relative to the folder of system.json (the folder can be moved or copied);
- ``detector``: the face detector the system's crops were made with (``cnn``, ``dlib-cnn``, ``hog``), or null
  when unknown; inference should use the same one;
- ``description``: one line for people.

Written (atomically) by a ``signhiera-finetune`` run in its run folder (``signhiera.pt`` + ``encoder.pt``) and by
the two-stage chain in ``runs/<name>/`` once stage 2 has finished (stage 1's SignHiera + stage 2's encoder). This
module only reads and writes the file; it imports nothing above the foundation layer, so the engine, the CLI and
the app can all read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from slt.errors import ModelUnavailableError
from slt.utils.io import atomic_write_json

SYSTEM_FILE = "system.json"
SYSTEM_FORMAT = 1
DETECTORS = ("cnn", "dlib-cnn", "hog")


@dataclass(frozen=True)
class TrainedSystem:
    """A system.json as read: absolute paths of its two checkpoints (checked to exist)."""

    path: Path  # the system.json file
    signhiera: Path
    encoder: Path
    detector: str | None
    description: str


def write_system_file(folder: str | os.PathLike, signhiera: str | os.PathLike, encoder: str | os.PathLike,
                      detector: str | None = None, description: str = "") -> Path:
    """Write ``folder/system.json`` atomically; `signhiera` and `encoder` must be files inside `folder` (they are
    stored relative to it). Returns the path written."""
    folder = Path(folder)

    def relative(path: str | os.PathLike, role: str) -> str:
        path = Path(path)
        absolute = path if path.is_absolute() else folder / path
        if not absolute.is_file():
            raise ModelUnavailableError(f"{SYSTEM_FILE} in {folder}: the {role} checkpoint {absolute} does not exist")
        try:
            return absolute.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            raise ModelUnavailableError(f"{SYSTEM_FILE} in {folder}: the {role} checkpoint {absolute} is not inside "
                                        "that folder (its paths are relative, so the folder can move)") from None

    if detector is not None and detector not in DETECTORS:
        raise ModelUnavailableError(f"{SYSTEM_FILE}: detector must be one of {DETECTORS} or None, got {detector!r}")
    return atomic_write_json(folder / SYSTEM_FILE, {
        "format": SYSTEM_FORMAT, "signhiera": relative(signhiera, "SignHiera"), "encoder": relative(encoder, "encoder"),
        "detector": detector, "description": description})


def read_system_file(path: str | os.PathLike) -> TrainedSystem:
    """Read a system.json (`path` is the file or its folder); ModelUnavailableError naming what is wrong when it
    is missing, unreadable, of another format, or names a checkpoint that does not exist."""
    path = Path(path)
    if path.is_dir():
        path = path / SYSTEM_FILE
    if not path.is_file():
        raise ModelUnavailableError(f"no {SYSTEM_FILE} at {path} (a signhiera-finetune run or a finished two-stage "
                                    "chain writes one)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelUnavailableError(f"{path} is unreadable: {error}") from error
    if not isinstance(spec, dict):
        raise ModelUnavailableError(f"{path} must hold a JSON object, got {type(spec).__name__}")
    if spec.get("format") != SYSTEM_FORMAT:
        raise ModelUnavailableError(f"{path} has format {spec.get('format')!r}; this version reads format "
                                    f"{SYSTEM_FORMAT}")
    problems = [f"{key} must be a relative path (a string)" for key in ("signhiera", "encoder")
                if not isinstance(spec.get(key), str) or not spec[key] or Path(spec[key]).is_absolute()]
    detector = spec.get("detector")
    if detector is not None and detector not in DETECTORS:
        problems.append(f"detector must be one of {DETECTORS} or null, got {detector!r}")
    description = spec.get("description", "")
    if not isinstance(description, str):
        problems.append("description must be a string")
    if problems:
        raise ModelUnavailableError(f"{path}: " + "; ".join(problems))
    files = {key: path.parent / spec[key] for key in ("signhiera", "encoder")}
    missing = [f"{key} {file}" for key, file in files.items() if not file.is_file()]
    if missing:
        raise ModelUnavailableError(f"{path} names checkpoints that do not exist: {', '.join(missing)}")
    return TrainedSystem(path=path, signhiera=files["signhiera"], encoder=files["encoder"], detector=detector,
                         description=description)
