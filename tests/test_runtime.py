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


def test_reserved_cores_leave_the_foreground_fewer_threads_and_restore_them():
    from slt.runtime import foreground_cpu_threads, foreground_threads, reserve_cpu_core

    before = torch.get_num_threads()
    full = foreground_threads()
    with reserve_cpu_core():
        assert foreground_threads() == max(1, full - 1)
        with foreground_cpu_threads():
            assert torch.get_num_threads() == max(1, full - 1)
        assert torch.get_num_threads() == before
    assert foreground_threads() == full


def test_detection_under_a_reserved_core_finds_the_same_faces():
    from slt.runtime import reserve_cpu_core
    from slt.video.mmod import get_mmod_detector
    from tests.helpers.video import astronaut_bgr

    image = np.ascontiguousarray(astronaut_bgr()[:300, 100:400, ::-1])
    detector = get_mmod_detector("cpu")
    alone = detector.detect([image], 1)
    with reserve_cpu_core():
        assert detector.detect([image], 1) == alone
    assert alone[0], "the astronaut's face must be found"


def test_glibc_keeps_freed_memory_unless_turned_off():
    import os
    import platform
    import subprocess
    import sys

    code = "from slt.runtime import keep_freed_memory; print(keep_freed_memory(), keep_freed_memory())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "SLT_KEEP_FREED_MEMORY": "0"})
    assert off.stdout.split() == ["False", "False"]
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert on.stdout.split() == (["True", "True"] if glibc else ["False", "False"])
