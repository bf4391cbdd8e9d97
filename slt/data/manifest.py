"""Dataset manifests: read, validate and write the clip lists users bring.

Two layouts are read:
- this project's TSV with the header ``id, video_path, n_frames, translation`` (``n_frames`` may be empty);
- ssvp_slt's headerless TSV ``video_name, duration, caption`` (see :func:`convert_ssvp`).

Relative video paths are resolved against ``video_root`` (default: the manifest's folder). Bad rows are not
silently dropped: each one lands in ``Manifest.report`` with ``file:line`` and the reason, and ``strict=True``
raises :class:`~slt.errors.ManifestError` on the first one instead. How2Sign's CSV annotations are converted by
:func:`slt.data.how2sign.convert_how2sign` (re-exported here).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slt.errors import ManifestError
from slt.utils.io import atomic_write_text

MANIFEST_HEADER = ("id", "video_path", "n_frames", "translation")
SSVP_COLUMNS = ("video_name", "duration", "caption")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class ManifestRow:
    """One clip: a unique id, the video file (absolute), its frame count when known, the reference text."""

    id: str
    video_path: Path
    n_frames: int | None
    translation: str
    line: int = 0  # 1-based source line, so later errors can point back at the manifest


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of a manifest, and why."""

    file: str
    line: int
    reason: str
    id: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ManifestReport:
    """What was read from a manifest and what was skipped (with file:line and reason)."""

    path: str
    n_read: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)

    def summary(self) -> str:
        """A human-readable account: counts, then one line per skipped row."""
        head = f"{self.path}: {self.n_read} rows kept, {len(self.skipped)} skipped"
        return "\n".join([head] + [f"  {item}" for item in self.skipped])


@dataclass
class Manifest:
    """Validated rows plus the report of skipped ones."""

    path: Path
    rows: list[ManifestRow]
    report: ManifestReport
    format: str  # "slt" or "ssvp"

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ManifestRow]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> ManifestRow:
        return self.rows[index]


class _RowChecker:
    """Collects rows, enforcing unique ids, non-empty text and existing files; strict mode raises instead."""

    def __init__(self, path: Path, check_files: bool, strict: bool):
        self.path, self.check_files, self.strict = path, check_files, strict
        self.rows: list[ManifestRow] = []
        self.report = ManifestReport(str(path))
        self._first_line: dict[str, int] = {}

    def skip(self, line: int, reason: str, clip_id: str = "") -> None:
        item = SkippedRow(str(self.path), line, reason, clip_id)
        if self.strict:
            raise ManifestError(str(item))
        self.report.skipped.append(item)

    def add(self, line: int, clip_id: str, video: Path, n_frames: int | None, text: str) -> None:
        if not clip_id:
            return self.skip(line, "empty id")
        if clip_id in self._first_line:
            return self.skip(line, f"duplicate id {clip_id!r} (first on line {self._first_line[clip_id]})", clip_id)
        if not text:
            return self.skip(line, f"empty translation for id {clip_id!r}", clip_id)
        if self.check_files and not video.is_file():
            return self.skip(line, f"missing video for id {clip_id!r}: {video}", clip_id)
        self._first_line[clip_id] = line
        self.rows.append(ManifestRow(clip_id, video, n_frames, text, line))
        self.report.n_read += 1


def _iter_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, tab-separated fields) for each non-blank line, streamed."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line.split("\t")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def _resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def _parse_n_frames(text: str) -> int | None:
    if text == "":
        return None
    value = int(text)  # ValueError is reported by the caller with file:line
    if value < 0:
        raise ValueError(text)
    return value


def read_manifest(path: str | os.PathLike, video_root: str | os.PathLike | None = None,
                  check_files: bool = True, strict: bool = False) -> Manifest:
    """Read a manifest in this project's TSV layout or ssvp_slt's headerless layout (auto-detected).

    Raises ManifestError when the file is missing, empty, or lacks required columns (the whole file is unusable);
    row problems are listed in ``.report`` (or raised at once with ``strict=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"Manifest not found: {path}")
    root = Path(video_root).expanduser().resolve() if video_root is not None else path.parent.resolve()
    if video_root is not None and check_files and not root.is_dir():
        raise ManifestError(f"Video root for {path} is not a folder: {root}")
    lines = _iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise ManifestError(f"{path}: the manifest is empty (expected a header {'  '.join(MANIFEST_HEADER)!r})")
    line_no, fields = first
    names = [f.strip().lower() for f in fields]
    if names == list(SSVP_COLUMNS):
        return _read_ssvp(path, lines, None, root, check_files, strict)
    if set(names) & set(MANIFEST_HEADER):
        return _read_slt(path, names, lines, root, check_files, strict)
    if len(fields) == 3 and _is_number(fields[1]):
        return _read_ssvp(path, lines, first, root, check_files, strict)
    raise ManifestError(
        f"{path}:{line_no}: unrecognised manifest layout: expected a tab-separated header "
        f"{', '.join(MANIFEST_HEADER)} or headerless ssvp_slt rows ({', '.join(SSVP_COLUMNS)}); got {fields!r}"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_slt(path: Path, names: list[str], lines: Iterator[tuple[int, list[str]]], root: Path,
              check_files: bool, strict: bool) -> Manifest:
    missing = [name for name in MANIFEST_HEADER if name not in names]
    if missing:
        raise ManifestError(f"{path}:1: missing column(s) {', '.join(missing)} in the header "
                            f"(have {', '.join(names)}; need {', '.join(MANIFEST_HEADER)})")
    index = {name: names.index(name) for name in MANIFEST_HEADER}
    checker = _RowChecker(path, check_files, strict)
    for line_no, fields in lines:
        if len(fields) != len(names):
            checker.skip(line_no, f"expected {len(names)} tab-separated fields, got {len(fields)}")
            continue
        clip_id, video, n_frames_text, text = (fields[index[n]].strip() for n in MANIFEST_HEADER)
        try:
            n_frames = _parse_n_frames(n_frames_text)
        except ValueError:
            checker.skip(line_no, f"n_frames must be a non-negative integer or empty, got {n_frames_text!r}", clip_id)
            continue
        if not video:
            checker.skip(line_no, f"empty video_path for id {clip_id!r}", clip_id)
            continue
        checker.add(line_no, clip_id, _resolve(root, video), n_frames, text)
    return Manifest(path, checker.rows, checker.report, "slt")


def _ssvp_video(root: Path, name: str) -> Path:
    # ssvp_slt lists names without an extension; take the name as-is when it already has one.
    return _resolve(root, name if Path(name).suffix.lower() in VIDEO_SUFFIXES else name + ".mp4")


def _read_ssvp(path: Path, lines: Iterator[tuple[int, list[str]]], first: tuple[int, list[str]] | None,
               root: Path, check_files: bool, strict: bool) -> Manifest:
    checker = _RowChecker(path, check_files, strict)
    for line_no, fields in itertools.chain([first] if first else [], lines):
        if len(fields) != 3:
            checker.skip(line_no, f"expected 3 tab-separated fields ({', '.join(SSVP_COLUMNS)}), got {len(fields)}")
            continue
        name, duration, caption = (f.strip() for f in fields)
        if not _is_number(duration):
            checker.skip(line_no, f"duration must be a number, got {duration!r}", name)
            continue
        if not name:
            checker.skip(line_no, "empty video_name")
            continue
        video = _ssvp_video(root, name)
        n_frames = _probe_frames(video) if check_files and video.is_file() else None
        checker.add(line_no, Path(name).stem if Path(name).suffix.lower() in VIDEO_SUFFIXES else name,
                    video, n_frames, caption)
    return Manifest(path, checker.rows, checker.report, "ssvp")


def _probe_frames(video: Path) -> int | None:
    from slt.data.clip_cut import frame_count  # OpenCV is only loaded when a manifest needs probing

    return frame_count(video)


def convert_ssvp(tsv: str | os.PathLike, video_root: str | os.PathLike, check_files: bool = True,
                 strict: bool = False) -> Manifest:
    """Read ssvp_slt's headerless ``video_name, duration, caption`` TSV; videos are looked up under video_root.

    ``n_frames`` is taken from each video's container when the file exists. Save the result in this project's
    layout with ``write_manifest(manifest.rows, path)``.
    """
    manifest = read_manifest(tsv, video_root=video_root, check_files=check_files, strict=strict)
    if manifest.format != "ssvp":
        raise ManifestError(f"{tsv}: expected ssvp_slt's headerless rows ({', '.join(SSVP_COLUMNS)}), "
                            "found this project's header; use read_manifest")
    return manifest


def _check_field(value: str, what: str, clip_id: str) -> str:
    if any(ch in value for ch in "\t\r\n"):
        raise ManifestError(f"cannot write {what} of id {clip_id!r}: it contains a tab or line break ({value!r})")
    return value


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike) -> Path:
    """Write rows in this project's TSV layout (atomically); paths inside the manifest's folder become relative.

    Raises ManifestError on a duplicate id or a field with a tab or line break (TSV cannot hold it).
    """
    path = Path(path)
    folder = path.parent.resolve()
    lines = ["\t".join(MANIFEST_HEADER)]
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise ManifestError(f"cannot write {path}: duplicate id {row.id!r}")
        seen.add(row.id)
        video = Path(row.video_path).resolve()
        shown = video.relative_to(folder).as_posix() if video.is_relative_to(folder) else str(video)
        n_frames = "" if row.n_frames is None else str(int(row.n_frames))
        lines.append("\t".join([_check_field(row.id, "the id", row.id), _check_field(shown, "video_path", row.id),
                                n_frames, _check_field(row.translation, "the translation", row.id)]))
    return atomic_write_text(path, "\n".join(lines) + "\n")

