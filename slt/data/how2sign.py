"""How2Sign annotations (SENTENCE_NAME, START_REALIGNED, END_REALIGNED, SENTENCE) -> this project's manifest.

With ``cut_clips=True`` each sentence is cut out of its source video (``VIDEO_NAME`` column) by time with
OpenCV; every source video is decoded once, frame by frame, writing all of its sentences in that one pass.
With ``cut_clips=False`` the clips already exist as ``<video_dir>/<SENTENCE_NAME>.mp4``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from slt.data.clip_cut import cut_segments, frame_count
from slt.data.manifest import VIDEO_SUFFIXES, ManifestReport, ManifestRow, SkippedRow, write_manifest
from slt.data.safe_ids import safe_id
from slt.errors import ManifestError, SLTError
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


def _row_problem(row: dict[str, str], first_line: dict[str, int]) -> str | None:
    """Why an annotation row cannot become a clip, or None."""
    name = row["SENTENCE_NAME"]
    if not name:
        return "empty SENTENCE_NAME"
    if name in first_line:
        return f"duplicate SENTENCE_NAME {name!r} (first on line {first_line[name]})"
    if not row["SENTENCE"].strip():
        return f"empty SENTENCE for {name!r}"
    try:
        start_s, end_s = float(row["START_REALIGNED"]), float(row["END_REALIGNED"])
    except ValueError:
        return (f"START_REALIGNED/END_REALIGNED must be numbers, got {row['START_REALIGNED']!r}, "
                f"{row['END_REALIGNED']!r}")
    if start_s < 0 or end_s <= start_s:
        return f"bad time range {start_s}..{end_s} s for {name!r} (need 0 <= start < end)"
    return None


class _Skips:
    """Collects skipped rows (or raises at the first one in strict mode)."""

    def __init__(self, csv_path: Path, strict: bool):
        self.csv_path, self.strict = csv_path, strict
        self.report = ManifestReport(str(csv_path))

    def __call__(self, line: int, reason: str, name: str = "") -> None:
        item = SkippedRow(str(self.csv_path), line, reason, name)
        if self.strict:
            raise ManifestError(str(item))
        self.report.skipped.append(item)


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
    skip = _Skips(csv_path, strict)
    by_source: dict[Path, list[_Segment]] = {}
    rows: list[ManifestRow] = []
    first_line: dict[str, int] = {}
    for line, row, problem in _read_rows(csv_path, need_video_name=cut_clips):
        problem = problem or _row_problem(row, first_line)
        if problem:
            skip(line, problem, row["SENTENCE_NAME"] if row else "")
            continue
        name, text = row["SENTENCE_NAME"], " ".join(row["SENTENCE"].split())
        if cut_clips:
            source = _find_video(video_dir, row["VIDEO_NAME"])
            if source is None:
                skip(line, f"missing source video {row['VIDEO_NAME']!r} in {video_dir} for {name!r}", name)
                continue
            by_source.setdefault(source, []).append(_Segment(
                name, text, float(row["START_REALIGNED"]), float(row["END_REALIGNED"]), line,
                out_dir / "clips" / f"{safe_id(name)}.mp4"))
        else:
            clip = _find_video(video_dir, name)
            if clip is None:
                skip(line, f"missing clip video {name!r} in {video_dir}", name)
                continue
            rows.append(ManifestRow(name, clip.resolve(), frame_count(clip), text, line))
        first_line[name] = line

    for source, segments in by_source.items():
        for segment, n_frames, problem in cut_segments(source, segments):
            if problem:
                skip(segment.line, f"{problem} for {segment.name!r}", segment.name)
            else:
                rows.append(ManifestRow(segment.name, segment.out, n_frames, segment.text, segment.line))
    return _write_outputs(csv_path, out_dir, rows, skip.report)


def _write_outputs(csv_path: Path, out_dir: Path, rows: list[ManifestRow], report: ManifestReport) -> Path:
    rows.sort(key=lambda r: r.line)  # keep the annotation file's order
    report.n_read = len(rows)
    report.skipped.sort(key=lambda item: item.line)
    manifest_path = write_manifest(rows, out_dir / f"{csv_path.stem}.tsv")
    atomic_write_text(out_dir / f"{csv_path.stem}.skipped.txt", report.summary() + "\n")
    if report.skipped:
        log.warning("%s", report.summary())
    return manifest_path


def main(argv: list[str] | None = None) -> int:
    """`python -m slt.data.how2sign CSV VIDEO_DIR OUT_DIR [--no-cut] [--strict]`: convert, print the manifest path."""
    parser = argparse.ArgumentParser(prog="python -m slt.data.how2sign", description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="How2Sign annotation file (e.g. how2sign_realigned_val.csv)")
    parser.add_argument("video_dir", type=Path, help="source videos (VIDEO_NAME.mp4), or clips with --no-cut")
    parser.add_argument("out_dir", type=Path, help="where the manifest (and cut clips) go")
    parser.add_argument("--no-cut", action="store_true", help="clips already exist as SENTENCE_NAME.mp4")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        print(convert_how2sign(args.csv, args.video_dir, args.out_dir, cut_clips=not args.no_cut, strict=args.strict))
    except SLTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
