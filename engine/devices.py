"""The torch device a job computes on: `--device auto | cpu | cuda | cuda:N`, resolved on the machine running the job.

`auto` is the first CUDA device where torch sees one, else the CPU. A run records the device it used and that
device's name (the processor's or the GPU's), and its machine is told apart by them wherever times are compared
(`store.runs.HARDWARE_COLUMNS`): a GPU run is never averaged with a CPU run.

CUDA work is asynchronous: a clock read while kernels are still queued times their launch, not their work.
`synchronize` waits for the device before each reading (`engine.evaluation.evaluate.time_inference`); on the CPU
it does nothing. Models without torch (the legacy check) always run on the CPU, and say so.
"""

from __future__ import annotations

import ctypes.util
import platform
import re
from pathlib import Path

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# What a GPU driver leaves on a machine: NVIDIA's kernel module and device files, ROCm's, WSL's GPU device. torch finds
# a CUDA device only through a driver, so where none of these is present and no libcuda is installed, `auto` is the
# CPU and torch need not be imported to say so (seconds in every grid process, which does no torch work itself).
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def parse_device(text: str) -> str:
    """`text` if it names a device this option takes; ValueError naming it otherwise (no torch needed)."""
    value = text.strip().lower()
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"--device {text!r} is not a device; use {DEVICE_HELP}")
    return value


def resolve_device(requested: str) -> str:
    """The device `requested` means on this machine: `cpu` or `cuda:N`; RuntimeError when CUDA is asked for and
    missing (a job must not silently run somewhere else than asked)."""
    requested = parse_device(requested)
    if requested == "cpu" or (requested == "auto" and not gpu_driver_present()):
        return "cpu"
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return "cuda:0" if available else "cpu"
    index = int(requested.partition(":")[2] or 0)
    if index >= available:
        seen = f"{available} CUDA device(s)" if available else "no CUDA device"
        raise RuntimeError(f"--device {requested}: torch sees {seen} on {platform.node()}")
    return f"cuda:{index}"


def gpu_driver_present() -> bool:
    """Whether this machine has a GPU driver (`GPU_DRIVER_PATHS`, or libcuda where the loader finds it)."""
    return any(Path(path).exists() for path in GPU_DRIVER_PATHS) or ctypes.util.find_library("cuda") is not None


def device_name(device: str) -> str:
    """The model name of `device`: the GPU's for `cuda:N`, the processor's for `cpu`."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(int(device.partition(":")[2] or 0))
    return cpu_model()


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def synchronize(device: str) -> None:
    """Wait until `device` has finished the work queued on it (nothing to wait for on the CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
