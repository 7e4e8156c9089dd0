"""The torch device a job computes on: `--device auto | cpu | cuda | cuda:N`, resolved on the machine running the job.

`auto` is the first CUDA device where torch sees one, else the CPU. A run records the device it used and that
device's name (the processor's or the GPU's), and its machine is told apart by them wherever times are compared
(`store.runs.HARDWARE_COLUMNS`): a GPU run is never averaged with a CPU run.

CUDA work is asynchronous: a clock read while kernels are still queued times their launch, not their work.
`synchronize` waits for the device before each reading (`engine.evaluation.evaluate.time_inference`); on the CPU
it does nothing. Models without torch (the legacy check) always run on the CPU, and say so.
"""

from __future__ import annotations

import platform
import re

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def parse_device(text: str) -> str:
    """`text` if it names a device this option takes; ValueError naming it otherwise (no torch needed)."""
    value = text.strip().lower()
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"--device {text!r} is not a device; use {DEVICE_HELP}")
    return value


def resolve_device(requested: str) -> str:
    """The device `requested` means on this machine: `cpu` or `cuda:N`; RuntimeError when CUDA is asked for and
    missing (a job must not silently run somewhere else than asked)."""
    import torch

    requested = parse_device(requested)
    if requested == "cpu":
        return "cpu"
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return "cuda:0" if available else "cpu"
    index = int(requested.partition(":")[2] or 0)
    if index >= available:
        seen = f"{available} CUDA device(s)" if available else "no CUDA device"
        raise RuntimeError(f"--device {requested}: torch sees {seen} on {platform.node()}")
    return f"cuda:{index}"


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
