"""Cut time segments out of a video with OpenCV, streaming: one decode pass per source, one frame in memory."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2

from slt.errors import VideoWriteError


class Segment(Protocol):
    start_s: float
    end_s: float
    out: Path


@dataclass
class _Plan:
    segment: Segment
    first: int  # source frames [first, stop)
    stop: int
    writer: cv2.VideoWriter | None = None
    written: int = 0


def frame_count(path: str | os.PathLike) -> int | None:
    """Frame count from the container header; None when it does not say."""
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return count if count > 0 else None


def frame_range(start_s: float, end_s: float, fps: float) -> tuple[int, int]:
    """Source frames [first, stop) whose timestamps fall in [start_s, end_s)."""
    return int(round(start_s * fps)), int(round(end_s * fps))


def cut_segments(source: Path, segments: Sequence[Segment]) -> Iterator[tuple[Segment, int, str | None]]:
    """Write each segment of `source` to its `out` path; yield (segment, frames written, problem or None).

    Segments already on disk with the expected frame count are kept (resume). Writes go to a temp file that
    is renamed on success, so an interrupted cut never leaves a clip that looks finished.
    """
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        for segment in segments:
            yield segment, 0, f"cannot open source video {source}"
        return
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0:
            for segment in segments:
                yield segment, 0, f"source video {source} reports no frame rate"
            return
        plans = []
        for segment in segments:
            first, stop = frame_range(segment.start_s, segment.end_s, fps)
            if stop <= first:
                yield segment, 0, f"segment {segment.start_s}..{segment.end_s} s is shorter than one frame"
            elif segment.out.is_file() and frame_count(segment.out) == stop - first:
                yield segment, stop - first, None
            else:
                plans.append(_Plan(segment, first, stop))
        if not plans:
            return
        yield from _stream(capture, fps, source, plans)
    finally:
        capture.release()


def _temp_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.partial{out.suffix}")


def _stream(capture: cv2.VideoCapture, fps: float, source: Path, plans: list[_Plan]) -> Iterator:
    last_needed = max(plan.stop for plan in plans)
    index = 0
    try:
        while index < last_needed:
            ok, frame = capture.read()
            if not ok:
                break
            for plan in plans:  # segments may overlap: a frame can go to several clips
                if plan.first <= index < plan.stop:
                    if plan.writer is None:
                        plan.writer = _open_writer(plan.segment.out, fps, frame.shape[1], frame.shape[0])
                    plan.writer.write(frame)
                    plan.written += 1
            index += 1
    finally:
        for plan in plans:
            if plan.writer is not None:
                plan.writer.release()
    for plan in plans:
        segment = plan.segment
        if plan.written == 0:
            yield segment, 0, (f"segment {segment.start_s}..{segment.end_s} s starts after the end of "
                               f"{source} ({index} frames at {fps:g} fps)")
            continue
        os.replace(_temp_path(segment.out), segment.out)
        # A segment running past the end keeps the frames that exist; the manifest records the true count.
        yield segment, plan.written, None


def _open_writer(out: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(_temp_path(out)), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise VideoWriteError(f"cannot write clip {out} (OpenCV's mp4v writer failed to open)")
    return writer
