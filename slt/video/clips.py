"""Square crops and 128-frame clips: which source frames each clip samples, cropping, normalisation, and
joining per-clip features back into one sequence."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from slt.errors import InvalidArgumentError
from slt.video.signer_box import IntBox


def clip_frame_indices(
    n_frames: int,
    fps: float,
    clip_frames: int = 128,
    sampling_rate: int = 2,
    target_fps: float = 25.0,
    stride: int = 64,
) -> list[np.ndarray]:
    """Source-frame indices of every clip.

    One sampled frame every `sampling_rate` frames *at target_fps* (so 2 * fps / 25 source frames apart at
    other rates); clips of `clip_frames` sampled frames start every `stride` sampled frames; indices past the
    end are clamped to the last frame (that repetition is the clip's padding). Windows stop at the first one
    whose time span reaches the end of the video, so no clip is only a repeat of the previous one.
    """
    if n_frames <= 0:
        return []
    step = sampling_rate * fps / target_fps  # source frames between two sampled frames
    hop = stride * step
    clips = []
    start = 0.0
    while True:
        positions = np.linspace(start, start + clip_frames * step, clip_frames, endpoint=False)
        indices = np.minimum(np.floor(positions + 1e-6).astype(np.int64), n_frames - 1)
        clips.append(indices)
        if start + clip_frames * step >= n_frames:  # this window's time span already reaches the last frame
            return clips
        start += hop


def clip_padding(indices: np.ndarray) -> int:
    """Padding of a clip: how many of its sampled frames repeat an earlier index (clamped past the end)."""
    return int(len(indices) - len(np.unique(indices)))


def crop_square(frame: np.ndarray, box: IntBox, size: int) -> np.ndarray:
    """Cut the square `box` out of a BGR frame (black where it leaves the frame), resize to size x size, RGB."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    left, top, right, bottom = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if right <= left or bottom <= top:  # box entirely outside the frame: the model sees black
        return np.zeros((size, size, 3), np.uint8)
    region = frame[top:bottom, left:right]
    padded = cv2.copyMakeBorder(
        region, top - y0, y1 - bottom, left - x0, x1 - right, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    interpolation = cv2.INTER_AREA if padded.shape[0] > size else cv2.INTER_LINEAR
    resized = cv2.resize(padded, (size, size), interpolation=interpolation)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def build_clips(
    crops: dict[int, np.ndarray], clip_indices: list[np.ndarray], mean: float, std: float
) -> torch.Tensor:
    """Stack the uint8 RGB crops into normalised float clips [n_clips, 3, T, H, W] ((x/255 - mean) / std)."""
    size = next(iter(crops.values())).shape[0]
    out = torch.empty((len(clip_indices), 3, len(clip_indices[0]), size, size), dtype=torch.float32)
    for c, indices in enumerate(clip_indices):
        for t, index in enumerate(indices):
            # Frame by frame into the output: no second clip-sized buffer (a stacked clip would be 19 MB).
            out[c, :, t].copy_(torch.from_numpy(crops[int(index)]).permute(2, 0, 1))
    out.div_(255.0).sub_(mean).div_(std)
    return out


def join_clip_features(clip_features: torch.Tensor, paddings: list[int]) -> torch.Tensor:
    """Concatenate per-clip features [n_clips, T', D] into [N, D], dropping padding//2 trailing steps of each
    clip (SignHiera halves time, so each feature step covers 2 sampled frames)."""
    if clip_features.dim() != 3:
        raise InvalidArgumentError(f"clip_features must be [n_clips, T, D], got shape {tuple(clip_features.shape)}")
    if len(paddings) != clip_features.shape[0]:
        raise InvalidArgumentError(f"{len(paddings)} paddings for {clip_features.shape[0]} clips")
    steps = clip_features.shape[1]
    parts = []
    for features, padding in zip(clip_features, paddings):
        keep = steps - padding // 2
        if padding < 0 or keep <= 0:
            raise InvalidArgumentError(f"padding {padding} leaves no feature step of {steps}")
        parts.append(features[:keep])
    return torch.cat(parts, dim=0)
