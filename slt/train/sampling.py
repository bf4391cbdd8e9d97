"""Deterministic batch order: the same (seed, epoch) gives the same global batches on any number of processes.

Each global batch (batch_size x world_size samples) is cut into one slice per rank, so 2 processes with batch
size b see exactly the samples 1 process sees with batch size 2b. Order depends only on (seed, epoch), never on
global RNG state, which is what makes a resumed run skip to exactly the batch where it stopped.
"""

from __future__ import annotations

import torch


def epoch_batches(n_samples: int, batch_size: int, world_size: int, rank: int, seed: int, epoch: int,
                  shuffle: bool = True) -> list[list[int]]:
    """This rank's index lists for one epoch (every rank gets the same number of batches)."""
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n_samples, generator=generator).tolist()
    else:
        order = list(range(n_samples))
    global_size = batch_size * world_size
    batches = []
    for start in range(0, n_samples, global_size):
        chunk = order[start : start + global_size]
        if len(chunk) < world_size:
            break  # too few left to give every rank a sample; DDP needs all ranks in every step
        # Split as evenly as possible: ranks get ceil/floor shares (the loss is token-weighted, so exact).
        base, extra = divmod(len(chunk), world_size)
        begin = rank * base + min(rank, extra)
        batches.append(chunk[begin : begin + base + (1 if rank < extra else 0)])
    return batches
