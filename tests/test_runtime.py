"""slt.runtime: one device/dtype/distributed/seeding policy for the engine, the trainer and extraction."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from slt.errors import DeviceError, SLTError
from slt.runtime import DistInfo, dist_info, pick_device, pick_dtype, seed_everything, setup_distributed


def test_auto_device_is_the_cpu_without_a_gpu_and_names_are_checked():
    assert not torch.cuda.is_available()  # tests hide GPUs (conftest)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA GPU is visible"):
        pick_device("cuda:1")
    with pytest.raises(DeviceError, match="not a device name"):
        pick_device("gpu please")
    assert issubclass(DeviceError, SLTError)


def test_dtype_policy():
    cpu = torch.device("cpu")
    assert pick_dtype(cpu) == pick_dtype(cpu, "auto") == pick_dtype(cpu, "fp32") == torch.float32
    with pytest.raises(DeviceError, match="only supported on CUDA"):
        pick_dtype(cpu, torch.bfloat16)
    with pytest.raises(DeviceError, match="unknown dtype 'int8'"):
        pick_dtype(cpu, "int8")


def test_dist_info_reads_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist_info() == DistInfo() and DistInfo().is_main and not DistInfo().enabled
    # one process without torchrun: no process group is created
    assert setup_distributed(torch.device("cpu")) == DistInfo()
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = dist_info()
    assert (info.rank, info.world_size, info.local_rank, info.enabled, info.is_main) == (2, 4, 1, True, False)


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
