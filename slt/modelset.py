"""Model-set types: what the engine loads, where the files live, and the demo bundle's on-disk format.

A model set is everything the engine needs to translate: one SignHiera, one or more SONAR ASL sentence encoders
(e.g. "zero-shot" and "fine-tuned"), and one text decoder + tokenizer (fairseq2 asset names). An encoder entry may
carry its own SignHiera (a two-stage fine-tuning result, whose stage 1 adapted the video model): its clips' features
come from that SignHiera, not the set's. Such a result is described by a ``system.json`` file, read (and checked)
by :func:`read_system`. This module only
describes sets and reads files; it never downloads eagerly, never builds anything and imports nothing above
`slt.download`, so every layer (data, training, the engine, the front ends) can use it. Choosing a set by name
(``auto``, ``official``, ``demo``) is :mod:`slt.registry`'s job; building the demo set is :mod:`slt.demo.build`'s.

- The official set is Meta's DailyMoth-70h release: files downloaded on first use into
  `slt.download.default_cache_dir()` (``$SLT_CACHE_DIR``, default ``checkpoints/official``); its decoder comes
  from sonar-space's asset cards.
- The demo set is described by ``demo.json`` in :func:`demo_dir` (``$SLT_DEMO_DIR``, default ``checkpoints/demo``),
  read into a :class:`DemoBundle` by :func:`read_demo_bundle`, the one reader of that file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from slt.download import ProgressCallback, RemoteFile, default_cache_dir, ensure_file
from slt.errors import ModelUnavailableError, SystemFileError
from slt.utils.io import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
_ASL_BASE = "https://dl.fbaipublicfiles.com/SONAR/asl"

OFFICIAL_SIGNHIERA = RemoteFile("dm_70h_ub_signhiera.pth", f"{_ASL_BASE}/dm_70h_ub_signhiera.pth",
                                "SignHiera video encoder (DailyMoth-70h)")
OFFICIAL_ENCODER = RemoteFile("dm_70h_ub_sonar_encoder.pth", f"{_ASL_BASE}/dm_70h_ub_sonar_encoder.pth",
                              "SONAR ASL sentence encoder (DailyMoth-70h)")
OFFICIAL_SAMPLE_CLIP = RemoteFile("0043626-2023.1.4.mp4", f"{_ASL_BASE}/0043626-2023.1.4.mp4", "DailyMoth sample clip")
OFFICIAL_SAMPLE_REFERENCE = "A major concern is landslides in mountainous areas."

BUNDLE_FILE = "demo.json"  # the demo set's description, inside its folder
SYSTEM_FILE = "system.json"  # a trained system (SignHiera + encoder), inside its run folder
SYSTEM_FORMAT = 1

FileSource = Path | RemoteFile


def demo_dir() -> Path:
    """Where the offline demo set is built and read."""
    return Path(os.environ.get("SLT_DEMO_DIR", REPO_ROOT / "checkpoints" / "demo"))


@dataclass
class ModelSet:
    """The files of one translation setup. Local files are paths; official ones are `RemoteFile`s that
    `resolve_file` downloads into the cache on first use (with progress), so a set can be described offline."""

    name: str
    description: str
    signhiera: FileSource
    encoders: dict[str, FileSource]
    decoder: str = "text_sonar_basic_decoder"
    tokenizer: str = "text_sonar_basic_encoder"
    detector: str = "cnn"  # the face detector the set's models were trained with
    languages: list[str] | None = None  # None: every FLORES-200 language of the decoder
    # A local fairseq2 asset-card file that names `decoder` and `tokenizer` (offline decoders); the engine
    # registers it before loading the decoder. None: the names are fairseq2's or sonar-space's own cards.
    asset_cards: Path | None = field(default=None, repr=False)

    # Encoder label -> its own SignHiera (a two-stage system's stage-1 result); labels not here use `signhiera`.
    encoder_signhieras: dict[str, FileSource] = field(default_factory=dict)

    def signhiera_of(self, label: str) -> FileSource:
        """The SignHiera whose features encoder `label` reads."""
        return self.encoder_signhieras.get(label, self.signhiera)

    def files(self) -> dict[str, FileSource]:
        return {"signhiera": self.signhiera, **{f"encoder:{k}": v for k, v in self.encoders.items()},
                **{f"signhiera:{k}": v for k, v in self.encoder_signhieras.items()}}

    def with_encoders(self, extra: dict[str, str | Path],
                      signhieras: dict[str, str | Path] | None = None) -> ModelSet:
        """A copy with fine-tuned encoder checkpoints added (label -> path), optionally each with its own SignHiera
        checkpoint (label -> path; the others read the set's SignHiera). A missing path is an error now."""
        signhieras = signhieras or {}
        unknown = sorted(set(signhieras) - set(extra))
        if unknown:
            raise ModelUnavailableError(f"SignHiera checkpoints given for {unknown}, which are not added encoders")
        encoders, own = dict(self.encoders), dict(self.encoder_signhieras)
        for label, path in extra.items():
            path = Path(path)
            if not path.exists():
                raise ModelUnavailableError(f"encoder checkpoint {path} (for '{label}') does not exist")
            encoders[label] = path
            own.pop(label, None)
            if label in signhieras:
                signhiera = Path(signhieras[label])
                if not signhiera.exists():
                    raise ModelUnavailableError(f"SignHiera checkpoint {signhiera} (for '{label}') does not exist")
                own[label] = signhiera
        return replace(self, encoders=encoders, encoder_signhieras=own)

    def with_system(self, label: str, system: SystemSpec) -> ModelSet:
        """A copy with a trained system (its encoder and its own SignHiera) added as encoder `label`."""
        return self.with_encoders({label: system.encoder}, {label: system.signhiera})

    def local_file(self, source: FileSource) -> Path | None:
        """The local path of one of the set's files when it is there without a download (else None)."""
        path = default_cache_dir() / source.filename if isinstance(source, RemoteFile) else Path(source)
        return path if path.is_file() else None

    def resolve_file(self, source: FileSource, progress: ProgressCallback | None = None) -> Path:
        """The local path of one of the set's files (downloading a remote one into the cache when missing)."""
        if isinstance(source, RemoteFile):
            return ensure_file(source, default_cache_dir(), progress=progress)
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


def official_encoder_path() -> Path:
    """The official zero-shot encoder checkpoint (downloaded on first use): the default base for fine-tuning."""
    return official_model_set().resolve_file(OFFICIAL_ENCODER)


def official_files_cached() -> bool:
    return all((default_cache_dir() / f.filename).exists() for f in (OFFICIAL_SIGNHIERA, OFFICIAL_ENCODER))


# ---------------------------------------------------------------------------------------------- the demo bundle
_REBUILD = "rebuild it with `python -m slt demo build --force`"


@dataclass
class DemoBundle:
    """The offline demo set as written by `python -m slt demo build` (``demo.json``), with absolute paths.

    ``files`` has the roles signhiera, encoder_zero_shot, encoder_fine_tuned, decoder_cards, text_decoder and
    tokenizer; ``corpora`` and ``features`` map a domain ("A" studio, "B" instructional) to its split manifests
    (train/val/test): the videos, and the SignHiera features of the same clips.
    """

    root: Path
    description: str
    decoder: str
    tokenizer: str
    languages: list[str]
    detector: str
    files: dict[str, Path]
    corpora: dict[str, dict[str, Path]]
    features: dict[str, dict[str, Path]]
    recipe: dict[str, Any] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    evaluation: list[dict] = field(default_factory=list)  # rows of slt.demo.evaluate.evaluate_demo

    @property
    def path(self) -> Path:
        return self.root / BUNDLE_FILE

    def model_set(self) -> ModelSet:
        """The bundle as a model set; every file must exist (a half-copied bundle is an error naming the files)."""
        missing = [str(path) for path in self.files.values() if not path.exists()]
        if missing:
            raise ModelUnavailableError(f"demo bundle in {self.root} is incomplete (missing {missing}); {_REBUILD}")
        return ModelSet(
            name="demo",
            description=self.description,
            signhiera=self.files["signhiera"],
            encoders={"zero-shot": self.files["encoder_zero_shot"], "fine-tuned": self.files["encoder_fine_tuned"]},
            decoder=self.decoder,
            tokenizer=self.tokenizer,
            detector=self.detector,
            languages=list(self.languages),
            asset_cards=self.files["decoder_cards"],
        )

    def to_json(self) -> dict:
        """demo.json's content: paths relative to the bundle folder, so the folder can be moved or copied."""

        def rel(path: Path) -> str:
            return str(Path(path).relative_to(self.root))

        return {
            "description": self.description,
            "decoder": self.decoder,
            "tokenizer": self.tokenizer,
            "languages": list(self.languages),
            "detector": self.detector,
            "files": {role: rel(path) for role, path in self.files.items()},
            "corpora": {name: {split: rel(p) for split, p in splits.items()} for name, splits in self.corpora.items()},
            "features": {name: {split: rel(p) for split, p in splits.items()}
                         for name, splits in self.features.items()},
            "recipe": self.recipe,
            "build_seconds": self.build_seconds,
            **({"evaluation": self.evaluation} if self.evaluation else {}),
        }

    def write(self) -> Path:
        """Write demo.json atomically; returns its path."""
        return atomic_write_json(self.path, self.to_json())


def demo_bundle_exists(root: Path | None = None) -> bool:
    return ((demo_dir() if root is None else Path(root)) / BUNDLE_FILE).exists()


def read_demo_bundle(root: Path | None = None) -> DemoBundle:
    """Read `<root>/demo.json` (default: :func:`demo_dir`). A missing, unreadable or malformed bundle raises
    ModelUnavailableError with the command that (re)builds it; files are checked by `DemoBundle.model_set`."""
    root = demo_dir() if root is None else Path(root)
    spec_path = root / BUNDLE_FILE
    if not spec_path.exists():
        raise ModelUnavailableError(f"the offline demo model set is not built in {root}; "
                                    "run `python -m slt demo build`")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))

        def paths(table: dict) -> dict[str, dict[str, Path]]:
            return {name: {split: root / rel for split, rel in splits.items()} for name, splits in table.items()}

        return DemoBundle(
            root=root, description=spec["description"], decoder=spec["decoder"], tokenizer=spec["tokenizer"],
            languages=list(spec["languages"]), detector=spec.get("detector", "hog"),
            files={role: root / rel for role, rel in spec["files"].items()},
            corpora=paths(spec.get("corpora", {})), features=paths(spec.get("features", {})),
            recipe=spec.get("recipe", {}), build_seconds=spec.get("build_seconds", {}),
            evaluation=spec.get("evaluation", []),
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ModelUnavailableError(f"demo bundle {spec_path} is unreadable ({type(error).__name__}: {error}); "
                                    f"{_REBUILD}") from error


# ---------------------------------------------------------------------------------------------- system files
@dataclass(frozen=True)
class SystemSpec:
    """A trained system as ``system.json`` describes it: a SignHiera and the SONAR encoder trained on its features
    (two-stage fine-tuning: stage 1 adapts SignHiera from video, stage 2 fine-tunes the encoder on its features).

    The file: ``{"format": 1, "signhiera": "stage1/signhiera.pt", "encoder": "stage2/encoder.pt",
    "detector": "cnn", "description": "..."}``, checkpoint paths relative to the file's folder (a stage-1 run
    folder's own file names ``signhiera.pt`` and ``encoder.pt``); ``detector`` and ``description`` are optional.
    """

    path: Path  # the system.json file
    signhiera: Path
    encoder: Path
    detector: str | None = None  # the face detector its training crops were made with
    description: str = ""

    @property
    def name(self) -> str:
        """The run folder's name (or the file's stem, for a file not called system.json)."""
        return self.path.parent.name if self.path.name == SYSTEM_FILE else self.path.stem


def system_file(path: str | Path) -> Path:
    """`path` itself for a file, `<path>/system.json` for a folder."""
    path = Path(path)
    return path / SYSTEM_FILE if path.is_dir() else path


def is_system(path: str | Path) -> bool:
    """Whether `path` is a system file or a folder holding one (it may still be malformed: see read_system)."""
    path = Path(path)
    return (path.is_dir() and (path / SYSTEM_FILE).is_file()) or (path.is_file() and path.suffix == ".json")


def read_system(path: str | Path) -> SystemSpec:
    """Read and check a system file (or the system.json of a folder). Every problem raises SystemFileError naming
    the file: missing, not JSON, an unknown format, missing or empty keys, checkpoints that do not exist."""
    spec_path = system_file(path)
    if not spec_path.is_file():
        where = f"{path} has no {SYSTEM_FILE}" if Path(path).is_dir() else f"{spec_path} does not exist"
        raise SystemFileError(f"system file not found: {where} (training writes it when a two-stage run finishes)")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemFileError(f"system file {spec_path} is unreadable ({type(error).__name__}: {error})") from error
    if not isinstance(spec, dict):
        raise SystemFileError(f"system file {spec_path} must hold a JSON object, not {type(spec).__name__}")
    if "format" not in spec:
        raise SystemFileError(f"system file {spec_path} has no 'format' (this version reads format {SYSTEM_FORMAT})")
    if spec["format"] != SYSTEM_FORMAT:
        raise SystemFileError(f"system file {spec_path} has format {spec['format']!r}; this version reads format "
                              f"{SYSTEM_FORMAT} only (update SLT Studio)")
    missing = [key for key in ("signhiera", "encoder") if not isinstance(spec.get(key), str) or not spec[key].strip()]
    if missing:
        raise SystemFileError(f"system file {spec_path} lacks {' and '.join(repr(k) for k in missing)} "
                              "(checkpoint paths relative to its folder)")
    for key in ("detector", "description"):
        if key in spec and spec[key] is not None and not isinstance(spec[key], str):
            raise SystemFileError(f"system file {spec_path}: '{key}' must be a string")
    files = {key: spec_path.parent / spec[key] for key in ("signhiera", "encoder")}
    for key, file in files.items():
        if not file.is_file():
            raise SystemFileError(f"system file {spec_path} names {key} checkpoint {spec[key]!r}, but {file} "
                                  "does not exist")
    return SystemSpec(path=spec_path, signhiera=files["signhiera"], encoder=files["encoder"],
                      detector=spec.get("detector") or None, description=spec.get("description") or "")


SYSTEM_DETECTORS = ("cnn", "dlib-cnn", "hog")  # slt.video's face detectors (this layer cannot import it)


def write_system(folder: str | Path, signhiera: str | Path, encoder: str | Path, detector: str | None = None,
                 description: str = "") -> Path:
    """Write ``folder/system.json`` atomically (the format :func:`read_system` reads); `signhiera` and `encoder`
    must be files inside `folder` (given absolute or relative to it) and are stored relative to it, so the folder
    can move. Training calls it: a signhiera-finetune run in its folder, the two-stage chain once stage 2 is done."""
    folder = Path(folder)

    def relative(path: str | Path, role: str) -> str:
        path = Path(path)
        absolute = path if path.is_absolute() else folder / path
        if not absolute.is_file():
            raise SystemFileError(f"{SYSTEM_FILE} in {folder}: the {role} checkpoint {absolute} does not exist")
        try:
            return absolute.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            raise SystemFileError(f"{SYSTEM_FILE} in {folder}: the {role} checkpoint {absolute} is not inside that "
                                  "folder (its paths are relative, so the folder can move)") from None

    if detector is not None and detector not in SYSTEM_DETECTORS:
        raise SystemFileError(f"{SYSTEM_FILE}: detector must be one of {SYSTEM_DETECTORS} or None, got {detector!r}")
    return atomic_write_json(folder / SYSTEM_FILE, {
        "format": SYSTEM_FORMAT, "signhiera": relative(signhiera, "SignHiera"), "encoder": relative(encoder, "encoder"),
        "detector": detector, "description": description})


def find_systems(root: str | Path) -> dict[str, Path]:
    """Systems under a runs folder: name relative to `root` -> folder, for `<root>/<run>/system.json` and one
    level deeper (`<root>/<chain>/stage1/system.json`). Malformed files are listed too (read_system says why)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = sorted(root.glob(f"*/{SYSTEM_FILE}")) + sorted(root.glob(f"*/*/{SYSTEM_FILE}"))
    return {path.parent.relative_to(root).as_posix(): path.parent for path in found if path.is_file()}
