"""Run a grid's jobs as tasks on a Ray cluster, while this process (the driver) alone writes the store.

`run_grid(..., executor="ray", address=...)` comes here. Ray is an optional extra (`pip install -e '.[ray]'`),
imported only inside these functions.

- The driver claims each job in the store exactly as the local grid does (`claim_run`, through
  `grid.RunRecord`), so finished runs are skipped and never redone, and a job another process runs is left to it.
  It claims a job only when the cluster has room to start it, so queued jobs are not shown `running`.
- Each job is one Ray task named `gluelab <job label>` (the worker's process title while it runs), asking for
  `resources_for(job, device)`: `cpus_for(preset)` CPUs (the `cpu` preset all the CPUs of a node up to 2, the
  `paper` preset up to 4) and, on device `cuda`, one GPU. Ray retries a task once when its worker process dies
  (`max_retries=1`); an exception the job raises is not retried (`retry_exceptions=False`).
- Part images are read from the same path on every node (a shared mount); the store stays with the driver.
  The driver sends each task the part's image list as the store has it (its folder and the images' paths,
  labels and masks, `store.part_images`), and the task reads the images from that folder (`read_part`).
- The task sets torch's threads to the CPUs Ray gave it, runs `evaluate_job` with its example heatmaps in a
  temporary folder on the node, and returns the `RunOutcome` with those files' bytes (path relative to the
  artifacts folder -> bytes). The driver writes them under `artifacts_dir(store)` and the run with
  `finish_run` as each task finishes, so a task that dies later loses nothing already done.
- A task that raised is recorded `failed` with the exception's description; one whose worker died on both
  attempts is recorded `failed` saying Ray retried it once; the grid goes on. Ctrl-C or SIGTERM in the driver
  cancels the outstanding tasks (`ray.cancel(force=True)`) and records their runs `cancelled`.

Unlike the local grid, a Ray task has no memory budget of the grid's (Ray's own memory monitor kills a worker
when its node runs out of memory; that counts as the worker dying) and no feature cache, takes no machine-wide
job slot (Ray's CPU accounting keeps tasks from sharing cores), and runs beside other tasks on a node that has
the CPUs for more than one.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter, deque
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from engine.devices import parse_device, resolve_device
from engine.evaluation.job_process import JobFailed, describe
from engine.evaluation.records import GridSummary, Interrupts, RunRecord, interrupts_handled, settled
from engine.ingest.part_data import read_part
from engine.jobs import Job
from engine.models.catalogue import get_model
from store import DEFAULT_STORE, part_images
from store.runs import ClaimState, RunOutcome, artifacts_dir, finished_run_ids, mark_stale_runs

RAY_MISSING = "the ray executor needs Ray: pip install -e '.[ray]'"
PRESET_CPUS = {"cpu": 2, "paper": 4}  # CPUs a task asks for, at most: all of a smaller node's
DEVICES = ("cpu", "cuda")
MAX_RETRIES = 1  # Ray starts a task again once when its worker process dies
WAIT_SECONDS = 0.5  # how long the driver waits for a finished task before it looks at Ctrl-C again
# Ray's errors for a task whose worker process (or its whole node) died on every attempt.
WORKER_DEATHS = ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "LocalRayletDiedError")

ExampleFiles = dict[str, bytes]  # path relative to the artifacts folder -> the file's bytes


def cpus_for(preset: str, node_cpus: float | None = None) -> int:
    """CPUs one task of `preset` asks for: the preset's number, or all of `node_cpus` (the largest node's) if fewer."""
    wanted = PRESET_CPUS[preset]
    return wanted if not node_cpus else max(1, min(wanted, int(node_cpus)))


def resources_for(job: Job, device: str = "cpu", node_cpus: float | None = None) -> dict[str, int]:
    """The Ray resources `job`'s task asks for (`num_cpus`, `num_gpus`)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    return {"num_cpus": cpus_for(job.preset, node_cpus), "num_gpus": 1 if device == "cuda" else 0}


def task_name(job: Job) -> str:
    """The task's name in Ray, and its worker's process title (`ray::<name>`) while it runs."""
    return f"gluelab {job.label}"


def evaluate_on_node(
    job: Job, images: pd.DataFrame, folder: str, settings: dict, device: str = "cpu"
) -> tuple[RunOutcome, ExampleFiles]:
    """The body of a job's Ray task: read the part from its folder, evaluate on `device` (`cpu`, or `cuda`: the
    GPU Ray gave the task), return the outcome and its heatmaps.

    Raises JobFailed with the description of whatever the job raised (not retried by Ray).
    """
    import ray
    import torch

    from engine.cores import name_this_process_a_job
    from engine.evaluation.evaluate import evaluate_job
    from engine.evaluation.job_process import silence_progress_bars
    from engine.heap import keep_freed_memory

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(int(cpus), 1))
    keep_freed_memory()  # as in a local job's process (engine.heap)
    name_this_process_a_job()  # other jobs' timing on this node sees it; Ray names the worker again afterwards
    silence_progress_bars()
    try:
        data = read_part(job.part, images)
        with tempfile.TemporaryDirectory(prefix="gluelab-task-") as temporary:
            root = Path(temporary)
            outcome = evaluate_job(job, data, root, folder, settings, device=resolve_device(device))
            files = {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    except Exception as error:  # noqa: BLE001 - described here, where its traceback is; the driver records it
        raise JobFailed(describe(error)) from None
    return outcome, files


def run_ray_grid(
    jobs: list[Job],
    store: Path | str = DEFAULT_STORE,
    force: bool = False,
    show_progress: bool = True,
    *,
    address: str | None = None,
    device: str = "cpu",
) -> GridSummary:
    """Run `jobs` (finished ones only with `force`) as Ray tasks on the cluster at `address` (None: start or join a
    local Ray instance). `device` (`engine.devices`) is resolved against the cluster: `auto` is `cuda` when the
    cluster has GPUs, and each `cuda` task is given one GPU by Ray, which it sees as `cuda:0`. Ray is shut down
    at the end if this call started it.
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError(RAY_MISSING) from None
    requested = parse_device(device)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        kind = "cuda" if requested.startswith("cuda") or (requested == "auto" and gpus > 0) else "cpu"
        if kind == "cuda" and not gpus:
            raise RuntimeError(f"--device {requested}: the Ray cluster has no GPU")
        return _RayGrid(ray, store, force, kind).run(jobs, show_progress)
    finally:
        if started:
            ray.shutdown()


@dataclass
class _Submitted:
    record: RunRecord
    state: ClaimState
    folder: str


class _RayGrid:
    def __init__(self, ray: Any, store: Path | str, force: bool, device: str):
        self.ray, self.store, self.force, self.device = ray, store, force, device
        self.task = ray.remote(evaluate_on_node)
        self.node_cpus = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        self.images: dict[str, pd.DataFrame] = {}
        self.pending: dict[Any, _Submitted] = {}

    def run(self, jobs: list[Job], show_progress: bool) -> GridSummary:
        stale = mark_stale_runs(self.store)
        done = finished_run_ids(self.store)
        todo = [job for job in jobs if self.force or job.run_id not in done]
        queue = deque(todo)
        capacity = self._capacity(todo)
        counts: Counter[str] = Counter()
        with interrupts_handled() as interrupts:
            progress = tqdm(total=len(todo), desc="evaluating on Ray", unit="run", disable=not show_progress)
            try:
                while queue or self.pending:
                    while queue and len(self.pending) < capacity:
                        record = RunRecord(queue.popleft(), self.store, self.force, interrupts, progress.write)
                        with interrupts.held():  # a claimed job is in `pending` before an interrupt can come
                            counted = self._submit(record)
                        if counted is not None:
                            counts[counted] += 1
                            progress.update()
                        interrupts.check()
                    self._collect_finished(interrupts, counts, progress)
            except KeyboardInterrupt:
                with interrupts.held():
                    self._cancel_pending()
                raise
            interrupts.check()
        skipped = len(jobs) - len(todo) + counts["skipped"]
        return GridSummary(counts["finished"], counts["failed"], skipped, stale, counts["busy"])

    def _capacity(self, todo: list[Job]) -> int:
        """How many tasks the cluster can run at once: the jobs claimed and submitted ahead of their turn."""
        if not todo:
            return 1
        resources = self.ray.cluster_resources()
        per_task = min(cpus_for(job.preset, self.node_cpus) for job in todo)
        capacity = int(resources.get("CPU", 0)) // per_task
        if self.device == "cuda":
            capacity = min(capacity, int(resources.get("GPU", 0)))
        return max(capacity, 1)

    def _submit(self, record: RunRecord) -> str | None:
        """Claim the job and start its task; how it counts when it does not start ('skipped', 'busy', 'failed')."""
        job = record.job
        state = record.claim()
        if state is None or state in ("finished", "busy"):
            return settled(state)
        folder = record.new_folder()
        try:
            if job.part not in self.images:
                self.images[job.part] = part_images(job.part, self.store)
            settings = get_model(job.model).presets[job.preset]
            options = {"name": task_name(job), "max_retries": MAX_RETRIES, "retry_exceptions": False}
            call = self.task.options(**options, **resources_for(job, self.device, self.node_cpus))
            reference = call.remote(job, self.images[job.part], folder, settings, self.device)
        except Exception as error:  # noqa: BLE001 - a job that cannot be started fails alone
            return record.fail(state, folder, f"its Ray task could not be started: {describe(error)}")
        self.pending[reference] = _Submitted(record, state, folder)
        return None

    def _collect_finished(self, interrupts: Interrupts, counts: Counter[str], progress: tqdm) -> None:
        """Wait a moment for tasks to finish and record each that did."""
        if not self.pending:
            return
        ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=WAIT_SECONDS)
        for reference in ready:
            with interrupts.held():  # the result is written, or the run failed, before an interrupt is taken
                counts[self._record(reference, self.pending.pop(reference))] += 1
            progress.update()
            interrupts.check()

    def _record(self, reference: Any, submitted: _Submitted) -> str:
        record, state, folder = submitted.record, submitted.state, submitted.folder
        try:
            outcome, files = self.ray.get(reference)
        except self.ray.exceptions.RayTaskError as error:  # the job raised: described where it was raised
            cause = error.cause
            reason = str(cause) if isinstance(cause, JobFailed) else describe(cause or error)
            return record.fail(state, folder, reason)
        except self.ray.exceptions.RayError as error:
            return record.fail(state, folder, self._lost_task_reason(record.job, error))
        try:
            _write_examples(artifacts_dir(self.store), files)
        except OSError as error:
            return record.fail(state, folder, f"its example heatmaps could not be written: {describe(error)}")
        return record.store_outcome(outcome, state, folder)

    def _cancel_pending(self) -> None:
        """Cancel the outstanding tasks and record their runs cancelled."""
        for reference, submitted in self.pending.items():
            with suppress(Exception):  # a task that ended meanwhile cannot be cancelled; its run is cancelled anyway
                self.ray.cancel(reference, force=True)
            submitted.record.cancel(submitted.state, submitted.folder)
        self.pending.clear()

    def _lost_task_reason(self, job: Job, error: Exception) -> str:
        """Why a task ended without a result, with Ray's words (the first line of its message)."""
        exceptions = self.ray.exceptions
        lines = str(error).strip().splitlines()
        message = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if isinstance(error, tuple(getattr(exceptions, name) for name in WORKER_DEATHS if hasattr(exceptions, name))):
            return f"its Ray worker died twice running {job.label} (retried once): {message}"
        if isinstance(error, exceptions.TaskCancelledError):
            return f"its Ray task was cancelled: {message}"
        return f"Ray could not run it: {message}"


def _write_examples(root: Path, files: ExampleFiles) -> None:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
