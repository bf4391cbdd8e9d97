"""How2Sign annotations (SENTENCE_NAME, START_REALIGNED, END_REALIGNED, SENTENCE) -> this project's manifest.

With ``cut_clips=True`` each sentence is cut out of its source video (``VIDEO_NAME`` column) by time with
OpenCV; every source video is decoded once, frame by frame, writing all of its sentences in that one pass.
With ``cut_clips=False`` the clips already exist as ``<video_dir>/<SENTENCE_NAME>.mp4``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from slt.data.manifest import ManifestRow, ManifestReport, SkippedRow, VIDEO_SUFFIXES, write_manifest
from slt.data.safe_ids import safe_id
from slt.errors import ManifestError
from slt.utils.io import atomic_write_text

log = logging.getLogger(__name__)

H2S_COLUMNS = ("SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED", "SENTENCE")


@dataclass
class _Segment:
    name: str
    text: str
    start_s: float
    end_s: float
    line: int
    out: Path
    first: int = 0  # frame range [first, stop) in the source, set once fps is known
    stop: int = 0


def _find_video(folder: Path, stem: str) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _read_rows(csv_path: Path, need_video_name: bool):
    """Yield (line, row dict) from the How2Sign CSV (tab- or comma-separated, detected from the header)."""
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        header_line = handle.readline()
        if not header_line.strip():
            raise ManifestError(f"{csv_path}: the file is empty (expected a header with {', '.join(H2S_COLUMNS)})")
        tab = "\t" in header_line
        header = next(csv.reader([header_line], delimiter="\t" if tab else ","))
        header = [name.strip() for name in header]
        required = H2S_COLUMNS + (("VIDEO_NAME",) if need_video_name else ())
        missing = [name for name in required if name not in header]
        if missing:
            why = " (needed to cut clips from the source videos)" if missing == ["VIDEO_NAME"] else ""
            raise ManifestError(f"{csv_path}:1: missing column(s) {', '.join(missing)}{why}; have {', '.join(header)}")
        # How2Sign's own files are tab-separated without quoting; comma files use normal CSV quoting.
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if tab else csv.reader(handle)
        for fields in reader:
            line = reader.line_num + 1  # +1: the header was read outside the reader
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                yield line, None, f"expected {len(header)} fields, got {len(fields)}"
                continue
            yield line, dict(zip(header, (f.strip() for f in fields))), None


def convert_how2sign(csv_path: str | os.PathLike, video_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     cut_clips: bool = True, strict: bool = False) -> Path:
    """Convert How2Sign annotations into ``out_dir/<csv stem>.tsv`` (this project's manifest layout).

    Skipped rows (missing source video, empty sentence, bad times, duplicate name, segment past the video's end)
    are written to ``out_dir/<csv stem>.skipped.txt`` with file:line and reason; ``strict=True`` raises instead.
    Clips already cut with the right frame count are kept, so an interrupted conversion resumes.
    """
    csv_path, video_dir, out_dir = Path(csv_path), Path(video_dir), Path(out_dir)
    if not csv_path.is_file():
        raise ManifestError(f"How2Sign annotation file not found: {csv_path}")
    if not video_dir.is_dir():
        raise ManifestError(f"How2Sign video folder not found: {video_dir}")
    report = ManifestReport(str(csv_path))
    by_source: dict[Path, list[_Segment]] = {}
    ready: list[tuple[_Segment, Path]] = []  # cut_clips=False: existing clip files
    first_line: dict[str, int] = {}

    def skip(line: int, reason: str, name: str = "") -> None:
        item = SkippedRow(str(csv_path), line, reason, name)
        if strict:
            raise ManifestError(str(item))
        report.skipped.append(item)

    for line, row, problem in _read_rows(csv_path, need_video_name=cut_clips):
        if row is None:
            skip(line, problem)
            continue
        name, text = row["SENTENCE_NAME"], " ".join(row["SENTENCE"].split())
        if not name:
            skip(line, "empty SENTENCE_NAME")
            continue
        if name in first_line:
            skip(line, f"duplicate SENTENCE_NAME {name!r} (first on line {first_line[name]})", name)
            continue
        if not text:
            skip(line, f"empty SENTENCE for {name!r}", name)
            continue
        try:
            start_s, end_s = float(row["START_REALIGNED"]), float(row["END_REALIGNED"])
        except ValueError:
            skip(line, f"START_REALIGNED/END_REALIGNED must be numbers, got {row['START_REALIGNED']!r}, "
                       f"{row['END_REALIGNED']!r}", name)
            continue
        if start_s < 0 or end_s <= start_s:
            skip(line, f"bad time range {start_s}..{end_s} s for {name!r} (need 0 <= start < end)", name)
            continue
        segment = _Segment(name, text, start_s, end_s, line, out_dir / "clips" / f"{safe_id(name)}.mp4")
        if cut_clips:
            source = _find_video(video_dir, row["VIDEO_NAME"])
            if source is None:
                skip(line, f"missing source video {row['VIDEO_NAME']!r} in {video_dir} for {name!r}", name)
                continue
            by_source.setdefault(source, []).append(segment)
        else:
            clip = _find_video(video_dir, name)
            if clip is None:
                skip(line, f"missing clip video {name!r} in {video_dir}", name)
                continue
            ready.append((segment, clip))
        first_line[name] = line

    rows: list[ManifestRow] = []
    from slt.data.clip_cut import cut_segments, frame_count

    for source, segments in by_source.items():
        for segment, n_frames, problem in cut_segments(source, segments):
            if problem:
                skip(segment.line, f"{problem} for {segment.name!r}", segment.name)
            else:
                rows.append(ManifestRow(segment.name, segment.out, n_frames, segment.text, segment.line))
    for segment, clip in ready:
        rows.append(ManifestRow(segment.name, clip.resolve(), frame_count(clip), segment.text, segment.line))
    rows.sort(key=lambda r: r.line)  # keep the annotation file's order
    report.n_read = len(rows)
    report.skipped.sort(key=lambda item: item.line)
    manifest_path = write_manifest(rows, out_dir / f"{csv_path.stem}.tsv")
    atomic_write_text(out_dir / f"{csv_path.stem}.skipped.txt", report.summary() + "\n")
    if report.skipped:
        log.warning("%s", report.summary())
    return manifest_path
