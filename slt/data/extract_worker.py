"""Preprocessing in DataLoader worker processes: decode + detect + crop run there while the model runs here.

Each item is one video; a video that fails comes back as a record with the error, so one bad file never
stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from slt.video import PreprocessConfig, PreprocessedVideo, preprocess_video


@dataclass
class Prepared:
    """One video's model input, or why there is none."""

    index: int
    video: PreprocessedVideo | None = None  # uint8 crops (not float clips): 4-8x less to pass between processes
    error_type: str = ""
    message: str = ""
    seconds: float = 0.0


class PreprocessDataset(Dataset):
    """Items: (manifest index, video path) -> Prepared. Errors are returned, not raised."""

    def __init__(self, items: list[tuple[int, Path]], config: PreprocessConfig, device=None):
        self.items = items
        self.config = config
        self.device = device  # where the "cnn" face detector runs (None: the CPU)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Prepared:
        index, path = self.items[position]
        try:
            video = preprocess_video(path, self.config, materialize=False, device=self.device)
        except Exception as error:  # every failure is recorded per clip; the run goes on
            return Prepared(index, error_type=type(error).__name__, message=str(error) or repr(error))
        return Prepared(index, replace(video, preview=None), seconds=video.timings.get("total", 0.0))


def _as_is(item: Prepared) -> Prepared:
    return item


def _single_thread_worker(_: int) -> None:
    # Workers share the machine with the model: one thread each instead of oversubscribing cores.
    torch.set_num_threads(1)


def prepared_stream(items: list[tuple[int, Path]], config: PreprocessConfig, workers: int,
                    device=None) -> DataLoader:
    """Iterate Prepared records in order; with workers > 0, up to 2 videos per worker are prepared ahead.
    `device` is where the "cnn" face detector runs when there are no workers (the GPU on a CUDA machine: worker
    processes cannot share the parent's CUDA context, so they detect on their CPU)."""
    return DataLoader(
        PreprocessDataset(items, config, device if workers == 0 else None),
        batch_size=None,  # one video per item; clips are batched by the model loop, never across videos
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_is,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=2 if workers else None,
    )
