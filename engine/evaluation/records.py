"""What the local and the Ray executor share: a grid's summary, the interrupts held back while the store is
written, and `RunRecord`, through which either claims, stores, fails and cancels a job's run."""

from __future__ import annotations

import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.evaluation.job_process import describe
from engine.jobs import Job
from store.runs import ClaimState, RunOutcome, artifacts_dir, claim_run, end_run, finish_run

CANCELLED_ERROR = "cancelled (Ctrl-C or SIGTERM) while running"


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
