"""Run a grid of jobs against the store: skip finished runs, survive failing jobs, stop cleanly, lose nothing.

Before each job the grid claims it in the store, which re-reads what is finished and what other live
processes are running, so two grids over overlapping jobs split the work instead of colliding: a job
another process runs is left to it. Each job runs in a child process under a memory budget
(`job_process`); the grid writes its results, with the `finished` status, in one transaction. A job
that raises, produces NaN, exceeds its memory budget or whose results cannot be written fails alone,
recorded with the reason, and the grid goes on. Ctrl-C or SIGTERM kills the running job and records it
`cancelled`; the store's own transactions are never cut in half by them.

A forced re-run keeps the finished run it redoes until the new one replaces it, heatmaps included
(each attempt writes its own folder), so a re-run that fails, is cancelled or is killed loses nothing.
Runs left `running` by a killed process are marked failed when the next grid starts.

One job runs at a time on the machine (`engine.cores`): before claiming a job the grid takes a job slot, waiting
(and saying so) while another grid's job holds it, so no two jobs ever share the cores and time each other.

With `executor="ray"` the jobs run as tasks on a Ray cluster instead (`ray_executor`); this process still claims,
stores, fails and cancels every run through the same `RunRecord`.
"""

from __future__ import annotations

import shutil
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.cores import SlotHolder, job_slot
from engine.devices import resolve_device
from engine.evaluation.job_process import JobFailed, describe, memory_budget_bytes, run_job_in_child
from engine.ingest.part_data import PartData, load_part
from engine.jobs import Job
from engine.models.feature_cache import FeatureCache, feature_cache_dir, limit_from_environment
from engine.models.registry import get_model
from store import DEFAULT_STORE
from store.runs import (
    ClaimState,
    RunOutcome,
    artifacts_dir,
    claim_run,
    end_run,
    finish_run,
    finished_run_ids,
    mark_stale_runs,
)

CANCELLED_ERROR = "cancelled (Ctrl-C or SIGTERM) while running"
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class GridSummary:
    finished: int
    failed: int
    skipped: int  # already finished, before the grid started or by another process since
    stale_marked: int
    busy: int = 0  # being run by another live process when their turn came, so left to it


class Interrupts:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, held back while the store is being written.

    A store transaction cut by an exception rolls back, but the bookkeeping around it (a claim taken, a
    result written) must not be cut from what follows it; the interrupt is raised when the write is done.
    """

    def __init__(self) -> None:
        self.holding = 0
        self.pending = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold interrupts back while the block runs; `check` raises one that came meanwhile."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1

    def check(self) -> None:
        if self.pending and not self.holding:
            self.pending = False
            raise KeyboardInterrupt


@contextmanager
def interrupts_handled() -> Iterator[Interrupts]:
    """Treat SIGTERM like Ctrl-C, so both cancel the running job the same way."""
    interrupts = Interrupts()
    previous = {sig: signal.signal(sig, interrupts) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupts
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_grid(
    jobs: list[Job],
    store: Path | str = DEFAULT_STORE,
    force: bool = False,
    show_progress: bool = True,
    memory_budget_gb: float | None = None,
    feature_cache_gb: float | None = None,
    *,
    device: str = "cpu",
    executor: str = "local",
    address: str | None = None,
) -> GridSummary:
    """Run `jobs` (finished ones only with `force`); each job may hold `memory_budget_gb` (default: see
    `job_process.memory_budget_bytes`). Frozen backbone features are kept beside the store in a cache of at
    most `feature_cache_gb` (default `$GLUELAB_FEATURE_CACHE_GB`, else 10 GB; 0 turns it off). Models compute on
    `device` (`auto`, `cpu`, `cuda`, `cuda:N`; `engine.devices`), resolved once here before any job starts.

    `executor` is where the jobs run: `local` (here, one at a time, as above) or `ray` (as tasks on the Ray
    cluster at `address`, or on a local Ray instance when it is None; `engine.evaluation.ray_executor`, which
    neither applies the memory budget nor uses the feature cache, and resolves `device` against the cluster's
    GPUs). Either way this process alone writes the store.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise ValueError(f"an address ({address}) is for the ray executor; the {executor} executor takes none")
    if executor == "ray":
        from engine.evaluation.ray_executor import run_ray_grid

        return run_ray_grid(jobs, store, force, show_progress, address=address, device=device)
    device = resolve_device(device)
    budget = memory_budget_bytes(memory_budget_gb)
    limit = limit_from_environment() if feature_cache_gb is None else feature_cache_gb
    cache = FeatureCache(feature_cache_dir(store), limit) if limit > 0 else None
    stale = mark_stale_runs(store)
    done = finished_run_ids(store)
    todo = [job for job in jobs if force or job.run_id not in done]
    counts: Counter[str] = Counter()
    parts: dict[str, PartData] = {}
    with interrupts_handled() as interrupts:
        progress = tqdm(todo, desc="evaluating", unit="run", disable=not show_progress)
        for job in progress:
            interrupts.check()
            progress.set_postfix_str(job.label)
            runner = _JobRunner(RunRecord(job, store, force, interrupts, progress.write), budget, cache, device)
            counts[runner.run(parts)] += 1
            if cache is not None:
                cache.evict()
        interrupts.check()
    return GridSummary(
        counts["finished"], counts["failed"], len(jobs) - len(todo) + counts["skipped"], stale, counts["busy"]
    )


@dataclass
class RunRecord:
    """One job's run as the grid writes it to the store, whichever executor runs the job: the claim, the
    finished result, a failure or a cancellation. Every write holds interrupts back until it is done."""

    job: Job
    store: Path | str
    force: bool
    interrupts: Interrupts
    report: Callable[[str], None]

    def claim(self) -> ClaimState | None:
        """What `claim_run` found (`new` or `rerun`: the job is this process's to run), or None when the store could
        not be written (reported; the job counts as failed)."""
        job = self.job
        try:
            with self.interrupts.held():
                state = claim_run(job.run_id, job.key(), self.store, self.force)
        except Exception as error:  # noqa: BLE001 - a store that cannot be written fails this job, not the grid
            self.report(f"failed: {job.label}: could not claim it in the store: {describe(error)}")
            return None
        if state == "busy":
            self.report(f"skipped: {job.label}: another process is running it")
        return state

    def new_folder(self) -> str:
        """A folder under `artifacts_dir` for this attempt's heatmaps, apart from any earlier run's."""
        return f"{self.job.run_id}-{uuid.uuid4().hex[:8]}"

    def store_outcome(self, outcome: RunOutcome, state: ClaimState, folder: str) -> str:
        """Write the finished run in one transaction: 'finished', or 'failed' when it could not be written."""
        with self.interrupts.held():  # once written, the run is finished: an interrupt now waits for the next job
            try:
                replaced = finish_run(self.job.run_id, self.job.key(), outcome, self.store)
            except Exception as error:  # noqa: BLE001 - the transaction rolled back; the job fails alone
                return self.fail(state, folder, f"its results could not be written to the store: {describe(error)}")
            for old in replaced:
                shutil.rmtree(artifacts_dir(self.store) / old, ignore_errors=True)
        return "finished"

    def fail(self, state: ClaimState, folder: str, reason: str) -> str:
        self.discard(folder)
        self.end(state, "failed", reason)
        kept = " (its earlier finished run is kept)" if state == "rerun" else ""
        self.report(f"failed: {self.job.label}: {reason}{kept}")
        return "failed"

    def cancel(self, state: ClaimState, folder: str) -> None:
        self.discard(folder)
        self.end(state, "cancelled", CANCELLED_ERROR)

    def end(self, state: ClaimState, status: str, reason: str) -> None:
        try:
            with self.interrupts.held():
                end_run(self.job.run_id, status, reason, {"job": self.job.key()}, store=self.store)
        except Exception as error:  # noqa: BLE001 - the next grid start marks the run failed instead
            self.report(f"{self.job.label}: could not record it {status} in the store: {describe(error)}")

    def discard(self, folder: str) -> None:
        shutil.rmtree(artifacts_dir(self.store) / folder, ignore_errors=True)


def settled(state: ClaimState | None) -> str:
    """How a job counts whose claim found it is not to run (None: the claim failed; `finished`; `busy`)."""
    return {None: "failed", "finished": "skipped", "busy": "busy"}[state]


@dataclass
class _JobRunner:
    record: RunRecord
    budget: int
    cache: FeatureCache | None = None
    device: str = "cpu"

    def run(self, parts: dict[str, PartData]) -> str:
        """'finished', 'failed', 'skipped' (finished meanwhile) or 'busy' (another process runs it).

        The job waits for a job slot (`engine.cores`) before it is claimed, so it never runs beside another job.
        """
        record = self.record
        with job_slot(f"gluelab evaluate: {record.job.label} ({record.store})", on_wait=self._waiting):
            return self._claim_and_run(parts)

    def _waiting(self, holders: list[SlotHolder]) -> None:
        running = "; ".join(map(str, holders)) or "another gluelab job"
        self.record.report(
            f"waiting: {self.record.job.label} starts when the running job ends ({running}); one job runs at a time"
        )

    def _claim_and_run(self, parts: dict[str, PartData]) -> str:
        record = self.record
        state = record.claim()
        if state is None or state in ("finished", "busy"):
            return settled(state)
        folder = record.new_folder()
        try:
            record.interrupts.check()
            return self._evaluate_and_store(parts, state, folder)
        except KeyboardInterrupt:
            record.cancel(state, folder)
            raise

    def _evaluate_and_store(self, parts: dict[str, PartData], state: ClaimState, folder: str) -> str:
        record, job = self.record, self.record.job
        try:
            if job.part not in parts:
                parts[job.part] = load_part(job.part, record.store)
            settings = get_model(job.model).presets[job.preset]
            outcome = run_job_in_child(
                job,
                parts[job.part],
                artifacts_dir(record.store),
                folder,
                self.budget,
                settings,
                self.cache,
                self.device,
            )
        except Exception as error:  # noqa: BLE001 - any failure of one job is recorded and the grid goes on
            return record.fail(state, folder, str(error) if isinstance(error, JobFailed) else describe(error))
        return record.store_outcome(outcome, state, folder)
