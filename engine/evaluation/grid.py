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
stores, fails and cancels every run through the same `RunRecord` (`records`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.cores import SlotHolder, job_slot
from engine.devices import resolve_device
from engine.evaluation.job_process import (
    JobFailed,
    describe,
    memory_budget_bytes,
    run_job_in_child,
    start_job_server,
)
from engine.evaluation.records import GridSummary, RunRecord, interrupts_handled, settled
from engine.evaluation.stage_clock import with_parent_stages
from engine.ingest.part_data import PartData, load_part
from engine.jobs import Job
from engine.models.catalogue import get_model
from engine.models.feature_cache import FeatureCache, feature_cache_dir, limit_from_environment
from store import DEFAULT_STORE
from store.runs import ClaimState, artifacts_dir, finished_run_ids, mark_stale_runs

EXECUTORS = ("local", "ray")


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
    if todo:
        start_job_server()  # it imports the models while the first job's part is read
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
            read = None
            if job.part not in parts:
                started = time.perf_counter()
                parts[job.part] = load_part(job.part, record.store)
                read = time.perf_counter() - started
            settings = get_model(job.model).presets[job.preset]
            started = time.perf_counter()
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
            in_child = time.perf_counter() - started
        except Exception as error:  # noqa: BLE001 - any failure of one job is recorded and the grid goes on
            return record.fail(state, folder, str(error) if isinstance(error, JobFailed) else describe(error))
        return record.store_outcome(with_parent_stages(outcome, read, in_child), state, folder)
