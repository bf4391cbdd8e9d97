"""Collectives the trainer needs across torchrun's ranks: sum a few scalars, take rank 0's values.

Joining and leaving the process group, and the rank information, are in :mod:`slt.runtime`; in a single
process (no WORLD_SIZE in the environment) both functions return their input.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from slt.runtime import DistInfo


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few floats over all ranks (identity in a single process)."""
    if not info.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_floats(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Rank 0's values on every rank."""
    if not info.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
