"""Where and how models run: device, dtype, the torchrun process group, seeding.

The engine, the trainer and feature extraction all choose their device here, so `--device auto` means the same
everywhere: this process's CUDA device when a GPU is visible (``cuda:$LOCAL_RANK`` under torchrun), else the
CPU. Under torchrun (``WORLD_SIZE`` > 1 in the environment) the process group uses nccl on CUDA and gloo on CPU;
a single process runs without one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from slt.errors import DeviceError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DistInfo:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # index of this process on its machine: its GPU

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (a single process when WORLD_SIZE is unset or 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' -> this process's GPU (`local_rank`, default $LOCAL_RANK or 0) when CUDA is available, else the CPU;
    'cpu', 'cuda', 'cuda:N' as asked. A malformed name, or CUDA asked for without a visible GPU, is a DeviceError."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank)
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"device {name!r} is not a device name (use auto, cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for, but no CUDA GPU is visible; use cpu")
    return device


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """float32 on CPU (half precision on CPU crashes or crawls); bf16 on GPUs that have it, else fp16."""
    if isinstance(dtype, torch.dtype):
        chosen = dtype
    elif dtype in (None, "auto"):
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif str(dtype) in _DTYPES:
        chosen = _DTYPES[str(dtype)]
    else:
        raise DeviceError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    if device.type == "cpu" and chosen != torch.float32:
        raise DeviceError("half precision is only supported on CUDA; use float32 on CPU")
    return chosen


def setup_distributed(device: torch.device, timeout: timedelta = timedelta(minutes=60)) -> DistInfo:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) when launched by torchrun; a no-op otherwise.
    `timeout` bounds how long a collective (e.g. a barrier) waits for the slowest rank."""
    info = dist_info()
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return info


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CUDA's too, through torch.manual_seed)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Call `handler(signum, frame)` on SIGTERM and SIGINT (Ctrl-C) inside the block instead of dying, then put the
    previous handlers back. Python lets only the main thread install handlers: elsewhere (a run started from a
    worker thread, e.g. the app building the demo set) nothing is installed and the caller stops the work."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned: bool | None = None
_malloc_lock = threading.Lock()


def keep_freed_memory(mmap_threshold_mb: int = 256, trim_threshold_mb: int = 512) -> bool:
    """Let glibc reuse freed large CPU tensors instead of giving them back to the kernel (once per process).

    By default glibc serves blocks over 32 MB with a fresh ``mmap`` and unmaps them on free, and trims the heap
    once its free top passes ~64 MB. Work that allocates and frees tens of MB per step (the face detector's
    pyramid and first conv: ~27 and ~35 MB for every 512x288 frame) then page-faults on every page of every
    tensor: measured ~25 % of a CPU detection. With the thresholds raised, those blocks come from the heap and are
    reused; the cost is that up to ``trim_threshold_mb`` of freed memory may stay with the process.
    Linux/glibc only (elsewhere nothing happens); ``SLT_KEEP_FREED_MEMORY=0`` turns it off. Returns whether the
    settings are in effect."""
    global _malloc_tuned
    with _malloc_lock:
        if _malloc_tuned is not None:
            return _malloc_tuned
        _malloc_tuned = False
        if os.environ.get("SLT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL("libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            return False
        _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)) and bool(
            mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20))
        return _malloc_tuned


_DEFAULT_THREADS = torch.get_num_threads()  # torch's intra-op threads as the process started (one per core)
_reserved_cores = 0
_reserved_lock = threading.Lock()


@contextlib.contextmanager
def reserve_cpu_core() -> Iterator[None]:
    """Hold one core for the calling thread's background work (e.g. importing and loading models while the main
    thread decodes and finds faces): while held, :func:`foreground_threads` offers the CPU-bound foreground one
    thread fewer. On a 2-core machine both otherwise fight over both cores, and torch's OpenMP workers spinning
    between ops starve the loader (measured: loading 3.2 s alone, ~4.4 s beside a face scan)."""
    global _reserved_cores
    with _reserved_lock:
        _reserved_cores += 1
    try:
        yield
    finally:
        with _reserved_lock:
            _reserved_cores -= 1


def foreground_threads() -> int:
    """Intra-op threads for CPU-bound foreground work now: the process's default less the cores reserved."""
    return max(1, _DEFAULT_THREADS - _reserved_cores)


@contextlib.contextmanager
def foreground_cpu_threads() -> Iterator[None]:
    """Run the block with :func:`foreground_threads` torch threads in this thread, then restore the count."""
    want, before = foreground_threads(), torch.get_num_threads()
    if want == before:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)
