"""Named model sets and where their files come from.

A model set is everything the engine needs to translate: one SignHiera, one or more SONAR ASL sentence encoders
(e.g. "zero-shot" and "fine-tuned"), and one text decoder + tokenizer (fairseq2 asset names).

- ``official``: Meta's DailyMoth-70h release, downloaded on first use into the cache directory
  (``$SLT_CACHE_DIR``, default ``checkpoints/official``); the decoder comes from sonar-space's asset cards.
- ``demo``: the offline demo set built by ``python -m slt demo build`` into ``checkpoints/demo`` (``$SLT_DEMO_DIR``).
- ``auto``: official when its files are cached or can be fetched, else the demo set.
Any fine-tuned encoder checkpoint can be added to a set by path (``with_encoders``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from slt.download import ProgressCallback, RemoteFile, ensure_file, offline_requested
from slt.errors import ModelUnavailableError

REPO_ROOT = Path(__file__).resolve().parent.parent
_ASL_BASE = "https://dl.fbaipublicfiles.com/SONAR/asl"

OFFICIAL_SIGNHIERA = RemoteFile("dm_70h_ub_signhiera.pth", f"{_ASL_BASE}/dm_70h_ub_signhiera.pth",
                                "SignHiera video encoder (DailyMoth-70h)")
OFFICIAL_ENCODER = RemoteFile("dm_70h_ub_sonar_encoder.pth", f"{_ASL_BASE}/dm_70h_ub_sonar_encoder.pth",
                              "SONAR ASL sentence encoder (DailyMoth-70h)")
OFFICIAL_SAMPLE_CLIP = RemoteFile("0043626-2023.1.4.mp4", f"{_ASL_BASE}/0043626-2023.1.4.mp4", "DailyMoth sample clip")
OFFICIAL_SAMPLE_REFERENCE = "A major concern is landslides in mountainous areas."

FileSource = Path | RemoteFile


def cache_dir() -> Path:
    """Where downloaded official weights live."""
    return Path(os.environ.get("SLT_CACHE_DIR", REPO_ROOT / "checkpoints" / "official"))


def demo_dir() -> Path:
    return Path(os.environ.get("SLT_DEMO_DIR", REPO_ROOT / "checkpoints" / "demo"))


@dataclass
class ModelSet:
    """The files of one translation setup; `resolve_files` turns remote files into local paths."""

    name: str
    description: str
    signhiera: FileSource
    encoders: dict[str, FileSource]
    decoder: str = "text_sonar_basic_decoder"
    tokenizer: str = "text_sonar_basic_encoder"
    detector: str = "cnn"  # the face detector the set's models were trained with
    languages: list[str] | None = None  # None: every FLORES-200 language of the decoder
    # Registers local fairseq2 asset cards (offline decoders) before the decoder is loaded.
    prepare_decoder: Callable[[], None] | None = field(default=None, repr=False)

    def files(self) -> dict[str, FileSource]:
        return {"signhiera": self.signhiera, **{f"encoder:{k}": v for k, v in self.encoders.items()}}

    def with_encoders(self, extra: dict[str, str | Path]) -> ModelSet:
        """A copy with fine-tuned encoder checkpoints added (label -> path); a missing path is an error now."""
        encoders = dict(self.encoders)
        for label, path in extra.items():
            path = Path(path)
            if not path.exists():
                raise ModelUnavailableError(f"encoder checkpoint {path} (for '{label}') does not exist")
            encoders[label] = path
        return replace(self, encoders=encoders)

    def resolve_file(self, source: FileSource, progress: ProgressCallback | None = None) -> Path:
        if isinstance(source, RemoteFile):
            return ensure_file(source, cache_dir(), progress=progress)
        if not Path(source).exists():
            raise ModelUnavailableError(f"model file {source} of model set '{self.name}' does not exist")
        return Path(source)


def official_model_set() -> ModelSet:
    return ModelSet(
        name="official",
        description="Meta's SONAR ASL release (SignHiera + SONAR encoder trained on DailyMoth-70h; SONAR text "
                    "decoder), CC-BY-NC-4.0",
        signhiera=OFFICIAL_SIGNHIERA,
        encoders={"zero-shot": OFFICIAL_ENCODER},
    )


def demo_model_set(build_if_missing: bool = False) -> ModelSet:
    """The offline demo set from `checkpoints/demo/demo.json` (built on request when missing)."""
    from slt.demo import bundle  # local import: the demo code pulls in training code

    root = demo_dir()
    if not (root / bundle.BUNDLE_FILE).exists():
        if not build_if_missing:
            raise ModelUnavailableError(
                f"the offline demo model set is not built in {root}; run `python -m slt demo build`"
            )
        bundle.build_demo(root)
    return bundle.load_model_set(root)


def official_files_cached() -> bool:
    return all((cache_dir() / f.filename).exists() for f in (OFFICIAL_SIGNHIERA, OFFICIAL_ENCODER))


def official_reachable(timeout_s: float = 3.0) -> bool:
    if offline_requested():
        return False
    host = urlparse(OFFICIAL_ENCODER.url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


MODEL_SETS = ("auto", "official", "demo")


def resolve_model_set(name: str = "auto", build_demo: bool = True) -> ModelSet:
    """`auto` picks the official set when it is cached or reachable, else the (auto-built) demo set."""
    if name == "official":
        return official_model_set()
    if name == "demo":
        return demo_model_set(build_if_missing=build_demo)
    if name == "auto":
        if official_files_cached() or official_reachable():
            return official_model_set()
        return demo_model_set(build_if_missing=build_demo)
    raise ModelUnavailableError(f"unknown model set '{name}'; choose one of {', '.join(MODEL_SETS)}")


def describe_model_sets() -> list[dict]:
    """What `python -m slt models` prints: every file of every set, cached or not."""
    rows = []
    official = official_model_set()
    for role, source in official.files().items():
        path = cache_dir() / source.filename
        rows.append({"set": "official", "role": role, "file": source.filename, "cached": path.exists(),
                     "path": str(path), "url": source.url,
                     "size_bytes": path.stat().st_size if path.exists() else None})
    rows.append({"set": "official", "role": "decoder", "file": official.decoder, "cached": None,
                 "path": "fairseq2 asset cache", "url": "sonar-space asset card", "size_bytes": None})
    bundle_file = demo_dir() / "demo.json"
    if bundle_file.exists():
        spec = json.loads(bundle_file.read_text())
        for role, rel in spec.get("files", {}).items():
            path = demo_dir() / rel
            rows.append({"set": "demo", "role": role, "file": rel, "cached": path.exists(), "path": str(path),
                         "url": "built locally (python -m slt demo build)",
                         "size_bytes": path.stat().st_size if path.exists() else None})
    else:
        rows.append({"set": "demo", "role": "all", "file": "demo.json", "cached": False, "path": str(bundle_file),
                     "url": "built locally (python -m slt demo build)", "size_bytes": None})
    return rows
