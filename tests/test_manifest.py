"""Manifests: the project TSV, ssvp_slt's headerless TSV, How2Sign CSV conversion (real videos, real cuts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slt.data.how2sign import convert_how2sign
from slt.data.how2sign import main as how2sign_main
from slt.data.manifest import ManifestRow, convert_ssvp, read_manifest, write_manifest
from slt.data.safe_ids import safe_id
from slt.errors import ManifestError
from tests.helpers.video import make_face_video, make_numbered_video, read_brightness


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_face_video(folder / "a.mp4", 12, size=64)
    make_face_video(folder / "b.mp4", 9, size=64)
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_project_tsv_and_resolves_paths(videos: Path) -> None:
    manifest = read_manifest(write(videos / "m.tsv", "id\tvideo_path\tn_frames\ttranslation\n"
                                   "c1\ta.mp4\t12\tHello there.\n"
                                   f"c2\t{videos / 'b.mp4'}\t\tSecond one.\n"))
    assert [r.id for r in manifest] == ["c1", "c2"]
    assert manifest[0].video_path == (videos / "a.mp4").resolve() and manifest[0].video_path.is_absolute()
    assert manifest[0].n_frames == 12 and manifest[1].n_frames is None
    assert manifest[1].translation == "Second one." and manifest[1].line == 3
    assert manifest.report.skipped == [] and manifest.format == "slt"


def test_columns_in_any_order_and_video_root(videos: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "m.tsv", "translation\tid\tn_frames\tvideo_path\nHi.\tx\t3\ta.mp4\n")
    manifest = read_manifest(path, video_root=videos)
    assert manifest[0].id == "x" and manifest[0].video_path == (videos / "a.mp4").resolve()


def test_bad_rows_are_reported_with_file_line_and_reason(videos: Path) -> None:
    path = write(videos / "bad.tsv", "id\tvideo_path\tn_frames\ttranslation\n"
                 "ok\ta.mp4\t12\tFine.\n"                 # line 2
                 "gone\tnope.mp4\t5\tMissing video.\n"    # line 3
                 "silent\tb.mp4\t9\t   \n"                # line 4
                 "ok\tb.mp4\t9\tDuplicate.\n"             # line 5
                 "short\ta.mp4\t12\n"                     # line 6
                 "frames\ta.mp4\tmany\tBad count.\n"      # line 7
                 "\n"                                     # blank line 8 is not a row
                 "last\tb.mp4\t9\tKept too.\n")           # line 9
    manifest = read_manifest(path)
    assert [r.id for r in manifest] == ["ok", "last"] and manifest[1].line == 9
    messages = [str(s) for s in manifest.report.skipped]
    assert len(messages) == 5, messages
    assert messages[0].startswith(f"{path}:3: missing video") and "nope.mp4" in messages[0]
    assert messages[1].startswith(f"{path}:4: empty translation") and "'silent'" in messages[1]
    assert messages[2].startswith(f"{path}:5: duplicate id 'ok' (first on line 2)")
    assert messages[3].startswith(f"{path}:6: expected 4 tab-separated fields, got 3")
    assert messages[4].startswith(f"{path}:7: n_frames must be a non-negative integer")
    summary = manifest.report.summary()
    assert "2 rows kept, 5 skipped" in summary and f"{path}:5" in summary
    # Without file checks the missing video is kept (e.g. videos on another machine).
    assert "gone" in [r.id for r in read_manifest(path, check_files=False)]


def test_strict_mode_raises_on_the_first_problem(videos: Path) -> None:
    path = write(videos / "strict.tsv", "id\tvideo_path\tn_frames\ttranslation\n"
                 "ok\ta.mp4\t12\tFine.\nok\tb.mp4\t9\tAgain.\ngone\tnope.mp4\t1\tX.\n")
    with pytest.raises(ManifestError, match=rf"^{path}:3: duplicate id 'ok'"):
        read_manifest(path, strict=True)


@pytest.mark.parametrize("text, expected", [
    ("id\tvideo_path\ttranslation\nx\ta.mp4\tHi\n", r":1: missing column\(s\) n_frames"),
    ("", r"the manifest is empty"),
    ("hello world\n", r":1: unrecognised manifest layout"),
])
def test_unusable_files_raise_naming_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "m.tsv", text)
    with pytest.raises(ManifestError, match=expected) as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_missing_manifest_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="Manifest not found"):
        read_manifest(tmp_path / "none.tsv")
    (tmp_path / "latin.tsv").write_bytes(b"id\tvideo_path\tn_frames\ttranslation\nx\ta.mp4\t1\tcaf\xe9\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(tmp_path / "latin.tsv")


def test_ssvp_headerless_manifest(videos: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ssvp.tsv", "a\t0.48\tFirst caption.\nb.mp4\t0.36\tSecond caption.\n"
                 "missing\t1.0\tNo video.\nb\tlong\tBad duration.\n")
    manifest = convert_ssvp(path, videos)
    assert manifest.format == "ssvp" and [r.id for r in manifest] == ["a", "b"]
    assert manifest[0].video_path == (videos / "a.mp4").resolve()
    assert [r.n_frames for r in manifest] == [12, 9]  # probed from the real containers
    reasons = [str(s) for s in manifest.report.skipped]
    assert reasons[0].startswith(f"{path}:3: missing video") and reasons[1].startswith(f"{path}:4: duration")
    with pytest.raises(ManifestError, match="found this project's header"):
        convert_ssvp(write(tmp_path / "ours.tsv", "id\tvideo_path\tn_frames\ttranslation\n"), videos)


def test_write_then_read_round_trip(videos: Path, tmp_path: Path) -> None:
    rows = [ManifestRow("a b/1", videos / "a.mp4", 12, "Héllo, \"quoted\" text."),
            ManifestRow("z", videos / "b.mp4", None, "Two.")]
    out = write_manifest(rows, videos / "sub" / ".." / "round.tsv")
    back = read_manifest(out)
    assert [(r.id, r.video_path, r.n_frames, r.translation) for r in back] == \
           [(r.id, r.video_path.resolve(), r.n_frames, r.translation) for r in rows]
    assert "\ta.mp4\t" in out.read_text()  # inside the manifest's folder -> relative
    with pytest.raises(ManifestError, match="'bad'.*tab or line break"):
        write_manifest([ManifestRow("bad", videos / "a.mp4", 1, "two\nlines")], tmp_path / "x.tsv")
    with pytest.raises(ManifestError, match="duplicate id 'z'"):
        write_manifest(rows + rows[1:], tmp_path / "y.tsv")


def test_safe_id_keeps_safe_ids_and_separates_unsafe_ones() -> None:
    assert safe_id("clip_01-a.b") == "clip_01-a.b"
    mapped = {safe_id(i) for i in ["a/b", "a:b", "a b", "../x", ".hidden"]}
    assert len(mapped) == 5 and all("/" not in m and not m.startswith(".") for m in mapped)
    assert safe_id("a/b") == safe_id("a/b")  # stable across runs


H2S_HEADER = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE\n"


@pytest.fixture(scope="module")
def how2sign(tmp_path_factory) -> tuple[Path, Path]:
    """A 100-frame 25 fps source video whose frame i has brightness 30 + (37*i mod 190), and its annotations."""
    folder = tmp_path_factory.mktemp("h2s")
    (folder / "raw").mkdir()
    make_numbered_video(folder / "raw" / "src-1-rgb_front.mp4", 100)
    csv_path = write(folder / "how2sign_val.csv", H2S_HEADER +
                     "v1\tsrc-1-rgb_front\ts0\tsrc_0-1-rgb_front\t0.40\t1.20\tThe first sentence.\n"  # line 2
                     "v1\tsrc-1-rgb_front\ts1\tsrc_1-1-rgb_front\t1.00\t2.00\tOverlaps the first.\n"  # 3
                     "v1\tsrc-1-rgb_front\ts2\tsrc_2-1-rgb_front\t3.60\t9.00\tRuns past the end.\n"   # 4
                     "v1\tsrc-1-rgb_front\ts3\tsrc_3-1-rgb_front\t5.00\t6.00\tStarts after the end.\n"  # 5
                     "v2\tother-rgb_front\ts4\tsrc_4\t0.0\t1.0\tNo source video.\n"                   # 6
                     "v1\tsrc-1-rgb_front\ts5\tsrc_5\t0.0\t1.0\t \n"                                  # 7
                     "v1\tsrc-1-rgb_front\ts6\tsrc_0-1-rgb_front\t0.0\t1.0\tDuplicate.\n"             # 8
                     "v1\tsrc-1-rgb_front\ts7\tsrc_7\t2.0\t1.0\tBackwards.\n")                       # 9
    return csv_path, folder / "raw"


def test_how2sign_cuts_clips_by_time(how2sign: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, raw = how2sign
    manifest_path = convert_how2sign(csv_path, raw, tmp_path / "out")
    manifest = read_manifest(manifest_path)
    assert [r.id for r in manifest] == ["src_0-1-rgb_front", "src_1-1-rgb_front", "src_2-1-rgb_front"]
    # 0.40-1.20 s at 25 fps -> source frames 10..29; 1.00-2.00 s -> 25..49; 3.60 s-end -> 90..99.
    assert [r.n_frames for r in manifest] == [20, 25, 10]
    source = read_brightness(raw / "src-1-rgb_front.mp4")
    for row, first in zip(manifest, [10, 25, 90]):
        brightness = read_brightness(row.video_path)
        assert len(brightness) == row.n_frames
        # Neighbouring source frames differ by >= 30 levels; one more encode generation moves them by ~2.
        assert brightness == pytest.approx(source[first:first + row.n_frames], abs=6)
    assert manifest[1].translation == "Overlaps the first."
    skipped = (tmp_path / "out" / "how2sign_val.skipped.txt").read_text()
    for line, reason in [(5, "segment 5.0..6.0 s starts after the end"), (6, "missing source video 'other-rgb_front'"),
                         (7, "empty SENTENCE"), (8, "duplicate SENTENCE_NAME 'src_0-1-rgb_front' (first on line 2)"),
                         (9, "bad time range")]:
        assert f"{csv_path}:{line}: {reason}" in skipped, skipped
    assert "3 rows kept, 5 skipped" in skipped
    assert skipped.index(f"{csv_path}:5:") < skipped.index(f"{csv_path}:6:")  # listed in file order
    # A second run resumes: finished clips are kept as they are, not re-encoded.
    stamps = {r.id: os.stat(r.video_path).st_mtime_ns for r in manifest}
    convert_how2sign(csv_path, raw, tmp_path / "out")
    assert {r.id: os.stat(r.video_path).st_mtime_ns for r in manifest}.items() >= \
           {k: v for k, v in stamps.items() if k != "src_2-1-rgb_front"}.items()


def test_how2sign_errors(how2sign: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, raw = how2sign
    # Annotation problems are found before any video is decoded, so the first one raised is line 6.
    with pytest.raises(ManifestError, match=rf"{csv_path}:6: missing source video 'other-rgb_front'"):
        convert_how2sign(csv_path, raw, tmp_path / "strict", strict=True)
    no_video_name = write(tmp_path / "cols.csv", "SENTENCE_NAME,START_REALIGNED,END_REALIGNED,SENTENCE\n"
                          "x,0,1,\"Hello, world\"\n")
    with pytest.raises(ManifestError, match=r"cols.csv:1: missing column\(s\) VIDEO_NAME \(needed to cut"):
        convert_how2sign(no_video_name, raw, tmp_path / "o")
    with pytest.raises(ManifestError, match="video folder not found"):
        convert_how2sign(csv_path, tmp_path / "nowhere", tmp_path / "o")


def test_how2sign_precut_clips_comma_csv(tmp_path: Path) -> None:
    make_face_video(tmp_path / "x.mp4", 7, size=64)
    csv_path = write(tmp_path / "ann.csv", "SENTENCE_NAME,START_REALIGNED,END_REALIGNED,SENTENCE\n"
                     "x,0.0,0.28,\"Hello, world\"\ny,0.0,1.0,Gone.\n")
    manifest = read_manifest(convert_how2sign(csv_path, tmp_path, tmp_path / "out", cut_clips=False))
    assert [(r.id, r.n_frames, r.translation) for r in manifest] == [("x", 7, "Hello, world")]
    assert "ann.csv:3: missing clip video 'y'" in (tmp_path / "out" / "ann.skipped.txt").read_text()


def test_how2sign_command_line(how2sign: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    csv_path, raw = how2sign
    assert how2sign_main([str(csv_path), str(raw), str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "cli" / "how2sign_val.tsv") and len(read_manifest(printed)) == 3
    assert how2sign_main([str(csv_path), str(raw), str(tmp_path / "cli2"), "--strict"]) == 1
    assert f"{csv_path}:6: missing source video" in capsys.readouterr().err
