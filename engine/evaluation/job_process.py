"""One job in a process of its own, watched by the grid: a job that outgrows its memory budget is killed alone.

The grid process does no torch work. Jobs run in children forked from a server process that imported
the models once (multiprocessing's forkserver), so a child starts in a fraction of a second and never
inherits a used OpenMP thread pool (a process forked after torch ran parallel code hangs in its first
parallel operation). The grid samples the child's resident set from /proc every 50 ms and kills it
with SIGKILL once it passes the budget, so a job that runs away with memory fails with that reason
instead of pushing the machine into swapping, where it would no longer react to SIGTERM. The child
sends its `RunOutcome` back through a pipe; the grid writes it to the store in one transaction.

Every job's process names itself `gluelab-job` and sets torch to `engine.cores.threads_per_job()` threads, so
jobs never oversubscribe the cores and a timing can tell when another gluelab job ran beside it.

A child dies with its server (SIGKILL on the parent's death), and the server with the grid, so killing
the grid never leaves a job running.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import traceback
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cores import name_this_process_a_job, threads_per_job
from engine.heap import keep_freed_memory

if TYPE_CHECKING:
    from engine.evaluation.evaluate import Timing
    from engine.ingest.part_data import PartData
    from engine.jobs import Job
    from engine.models.feature_cache import FeatureCache
    from store.runs import RunOutcome

# What the fork server imports for every job's process (`TASKS` there names what a job may run); the grid never does.
JOB_MODELS = "engine.evaluation.job_models"

MEMORY_BUDGET_ENV = "GLUELAB_MEMORY_BUDGET_GB"
RESERVED_FOR_THE_SYSTEM_GB = 4.0  # left to the OS, the dashboard and the grid itself by the default budget
POLL_SECONDS = 0.05
_PR_SET_PDEATHSIG = 1
GB = 2**30


class JobFailed(RuntimeError):
    """The job's process raised, or died without handing back a result."""


class MemoryBudgetExceeded(JobFailed):
    def __init__(self, budget_bytes: int, resident_bytes: int):
        super().__init__(
            f"exceeded its memory budget of {budget_bytes / GB:.1f} GB at {resident_bytes / GB:.1f} GB"
            " (the job's process was killed; raise --memory-budget-gb or $" + MEMORY_BUDGET_ENV + " if the machine"
            " has room)"
        )


def total_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        return int(meminfo.readline().split()[1]) * 1024


def memory_budget_bytes(budget_gb: float | None = None) -> int:
    """Bytes one job may hold: `budget_gb`, else $GLUELAB_MEMORY_BUDGET_GB, else total RAM minus 4 GiB."""
    if budget_gb is None and os.environ.get(MEMORY_BUDGET_ENV):
        text = os.environ[MEMORY_BUDGET_ENV]
        try:
            budget_gb = float(text)
        except ValueError:
            raise ValueError(f"${MEMORY_BUDGET_ENV} must be a number of GB (got {text!r})") from None
    if budget_gb is not None:
        if not budget_gb > 0:
            raise ValueError(f"the memory budget must be a positive number of GB (got {budget_gb})")
        return int(budget_gb * GB)
    return max(total_memory_bytes() - int(RESERVED_FOR_THE_SYSTEM_GB * GB), GB)


def describe(error: BaseException) -> str:
    """`Type: message (at file:line)`, the line being where the error was raised."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    location = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(error).__name__}: {error}{location}"


def run_job_in_child(
    job: Job,
    data: PartData,
    artifacts_root: Path,
    examples_folder: str,
    budget_bytes: int,
    settings: dict,
    feature_cache: FeatureCache | None = None,
    device: str = "cpu",
) -> RunOutcome:
    """`evaluate_job` in a forked child with the preset `settings` the grid resolved, on `device`; raises
    MemoryBudgetExceeded or JobFailed when it does not finish.

    Ctrl-C or SIGTERM in the grid (KeyboardInterrupt) kills the child before propagating.
    """
    arguments = (job, data, artifacts_root, examples_folder, settings, feature_cache, device)
    return _run_in_child("evaluate", arguments, job, budget_bytes)


def retime_in_child(
    job: Job,
    data: PartData,
    budget_bytes: int,
    settings: dict,
    feature_cache: FeatureCache | None = None,
    device: str = "cpu",
) -> Timing:
    """`retime_job` in a forked child, watched like `run_job_in_child`."""
    return _run_in_child("retime", (job, data, settings, feature_cache, device), job, budget_bytes)


def start_job_server() -> None:
    """Start the server that job processes are forked from, if it is not running: it imports torch and the models
    (seconds), meanwhile this process can read the part the first job needs."""
    _job_context()
    multiprocessing.forkserver.ensure_running()


def _job_context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, JOB_MODELS])
    return context


def _run_in_child(task: str, arguments: tuple, job: Job, budget_bytes: int) -> Any:
    context = _job_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=(sender, task, arguments, _quiet_settings(), dict(os.environ)),
        name=f"gluelab job {job.label}",
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        return _watch(process, receiver, budget_bytes)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()


def _watch(process: Any, receiver: Connection, budget_bytes: int) -> Any:
    while True:
        if receiver.poll(POLL_SECONDS):
            try:
                kind, payload = receiver.recv()
            except EOFError:
                break
            if kind == "error":
                raise JobFailed(payload)
            return payload
        resident = _resident_bytes(process.pid)
        if resident > budget_bytes:
            process.kill()
            raise MemoryBudgetExceeded(budget_bytes, resident)
    process.join()
    raise JobFailed(f"the job's process died without a result ({_exit_reason(process.exitcode)})")


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0  # already gone; its exit is picked up by the next poll


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"killed by {name}" + (", possibly by the kernel for lack of memory" if name == "SIGKILL" else "")
    return f"exit code {exitcode}"


def _quiet_settings() -> tuple[list, dict[str, int]]:
    """The grid's warning filters and logger levels, for the child to apply: it should say no more than the grid."""
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    return list(warnings.filters), levels


def _child_main(
    sender: Connection,
    task: str,
    arguments: tuple,
    quiet: tuple[list, dict[str, int]],
    environment: dict[str, str],
) -> None:
    """Entry point of the job's process: run `task` (a name in `job_models.TASKS`) on `arguments`, send ("ok", result)
    or ("error", description)."""
    import torch  # loaded already, with the models, by the fork server

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the grid decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    name_this_process_a_job()
    torch.set_num_threads(threads_per_job())  # the one definition every job's process follows (engine.cores)
    keep_freed_memory()  # every forward pass reuses the memory the last one freed (engine.heap)
    # The fork server kept the environment it started with; the job sees the grid's as it is now
    # (GLUELAB_HOME, where imported weights live, may have been set since).
    os.environ.clear()
    os.environ.update(environment)
    filters, levels = quiet
    warnings.filters[:] = filters  # type: ignore[index]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    silence_progress_bars()
    try:
        message: tuple[str, Any] = ("ok", importlib.import_module(JOB_MODELS).TASKS[task](*arguments))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the grid, which records it
        message = ("error", describe(error))
    sender.send(message)
    sender.close()


def _die_with_parent() -> None:
    """SIGKILL this process when its parent (the fork server, which ends with the grid) dies."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def silence_progress_bars() -> None:
    """No nested progress bars under the grid's: libraries' own bars (PatchCore's coreset, EfficientAD's and
    CFA's passes over the data) default to disabled in a job's process."""
    from functools import partialmethod

    from tqdm import tqdm

    tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)
