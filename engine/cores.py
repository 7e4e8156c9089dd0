"""How gluelab shares this machine's cores: how many jobs run at once, and how many threads each job's torch uses.

One definition for every way a job starts: the grid (`gluelab evaluate`, from a shell, from `make demo` or from
the dashboard's Runs page) and `gluelab evaluate --retime` both take a job slot before a job's process starts,
and the job's process sets its torch threads to `threads_per_job()`.

Rule: **one job at a time per machine, with every usable core.** Two torch processes with two threads each on
two cores oversubscribe them: each parallel region waits for its slowest thread, and a thread that has lost
its core to the other process stalls the region. PaDiM's batch-1 latency went from 47 ms quiet to 521 ms
beside one other torch process on a 2-core machine, DFM's from 16 ms to 2,133 ms (docs/engine.md). A job
with all the cores trains about as fast as two jobs sharing them, and its times mean something.

The slots are `flock` locks on files in one machine-wide folder (`$GLUELAB_SLOTS_DIR`, else
`<temp dir>/gluelab-job-slots`), so grids on different stores, started by different sessions, still take turns;
the kernel releases a slot when its holder dies, however it dies. A grid waits for a slot before it claims a
job, so two grids over overlapping jobs still split the work between them, one job at a time.

This module imports no torch: the dashboard reads it to tell whether an evaluation is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

JOBS_AT_ONCE = 1  # per machine; see the module docstring
SLOTS_DIR_ENV = "GLUELAB_SLOTS_DIR"
JOB_PROCESS_NAME = "gluelab-job"  # the name (/proc/<pid>/comm, at most 15 bytes) of every process running a job
WAIT_POLL_SECONDS = 0.5
_PR_SET_NAME = 15


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    return max(len(os.sched_getaffinity(0)), 1)


def threads_per_job() -> int:
    """torch intra-op threads for a job's process: the usable cores shared among `JOBS_AT_ONCE` jobs, at least 1."""
    return max(usable_cores() // JOBS_AT_ONCE, 1)


def slots_dir() -> Path:
    folder = Path(os.environ.get(SLOTS_DIR_ENV) or Path(tempfile.gettempdir()) / "gluelab-job-slots")
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # shared by every user of the machine
        folder.chmod(0o1777)
    return folder


@dataclass(frozen=True)
class SlotHolder:
    """Who holds a busy job slot: its process id and what it is doing, as it wrote them into the slot file."""

    pid: int | None
    doing: str

    def __str__(self) -> str:
        return f"process {self.pid}: {self.doing}" if self.pid is not None else self.doing


def _slot_files() -> list[Path]:
    return [slots_dir() / f"slot-{index}.lock" for index in range(JOBS_AT_ONCE)]


def _open(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):
        os.fchmod(descriptor, 0o666)
    return descriptor


def _holder(path: Path) -> SlotHolder:
    try:
        pid_text, _, doing = path.read_text().partition("\n")
        return SlotHolder(int(pid_text), doing.strip() or "a gluelab job")
    except (OSError, ValueError):
        return SlotHolder(None, "a gluelab job")


def _try_take(doing: str) -> int | None:
    """A descriptor holding a free slot (its file now naming this process and `doing`), or None when all are busy."""
    for path in _slot_files():
        descriptor = _open(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n{doing}\n".encode(), 0)
        return descriptor
    return None


def busy_slots() -> list[SlotHolder]:
    """The holders of the slots in use right now (empty: no gluelab job is running on this machine)."""
    holders = []
    for path in _slot_files():
        descriptor = _open(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holders.append(_holder(path))
        finally:
            os.close(descriptor)  # also releases the shared lock taken to look
    return holders


@contextlib.contextmanager
def job_slot(doing: str, on_wait: Callable[[list[SlotHolder]], None] | None = None) -> Iterator[None]:
    """Hold a job slot while the block runs, waiting for one when all are busy.

    `doing` (e.g. "gluelab evaluate: part1 padim seed 0 baseline") is written into the slot for others to read;
    `on_wait` is called once with the holders when this has to wait. Ctrl-C while waiting raises as usual.
    """
    descriptor = _try_take(doing)
    if descriptor is None and on_wait is not None:
        on_wait(busy_slots())
    while descriptor is None:
        time.sleep(WAIT_POLL_SECONDS)
        descriptor = _try_take(doing)
    try:
        yield
    finally:
        os.close(descriptor)  # releases the lock


def name_this_process_a_job() -> None:
    """Name this process `JOB_PROCESS_NAME`, so other jobs' timing can tell a gluelab job is running beside them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, JOB_PROCESS_NAME.encode(), 0, 0, 0)


def other_job_processes() -> list[int]:
    """Process ids of the gluelab jobs besides this process (named `JOB_PROCESS_NAME`) that may run on any of this
    process's cores. A job confined to other cores (a container's cpuset, `taskset`) takes none of ours."""
    mine, cores = os.getpid(), os.sched_getaffinity(0)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        try:
            if (entry / "comm").read_text().strip() == JOB_PROCESS_NAME and os.sched_getaffinity(
                int(entry.name)
            ) & cores:
                found.append(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return sorted(found)
