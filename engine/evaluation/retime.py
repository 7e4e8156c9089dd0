"""`gluelab evaluate --retime RUN_ID…`: measure finished runs' latency and throughput again, with their load.

Fitted models are not kept, so each run's job is fitted again exactly as it ran (its key, its preset's settings,
which must still be those its config recorded, the same seed) in a job process of its own, under a job slot like any grid job, and only its
inference is timed (`engine.evaluation.evaluate.retime_job`). The new figures and the load they were timed under
replace the run's when they were taken quietly, which clears a contended run's flag; see
`store.runs.record_retiming` for when a contended measurement is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.cores import SlotHolder, job_slot
from engine.devices import resolve_device
from engine.evaluation.job_process import memory_budget_bytes, retime_in_child
from engine.ingest.part_data import PartData, load_part
from engine.jobs import Job, unique
from engine.models.catalogue import get_model
from engine.models.feature_cache import FeatureCache, feature_cache_dir, limit_from_environment
from store import DEFAULT_STORE
from store.runs import RUN_KEY, finished_run, record_retiming

if TYPE_CHECKING:
    from engine.evaluation.evaluate import Timing  # only the job's process loads the models


@dataclass(frozen=True)
class Retimed:
    """One run timed again: its figures before, the new measurement, and whether the run now carries it."""

    run_id: str
    job: Job
    before_ms: float
    before_note: str | None  # why the earlier timing was contended; None when quiet or not recorded
    timing: Timing
    recorded: bool

    def describe(self) -> str:
        """The outcome in one line, e.g. "part1 padim … (run 3f…): 47.1 ms/image (was 521), timed quietly"."""
        new = f"{self.timing.inference_ms:.3g} ms/image, {self.timing.throughput_fps:.3g} images/s"
        reason = self.timing.load.get("reason")
        head = f"{self.job.label} (run {self.run_id}): "
        if not self.recorded:
            return (
                head
                + f"kept its quiet timing of {self.before_ms:.3g} ms/image; the new one ({new}) was contended: {reason}"
            )
        verdict = "timed quietly" if reason is None else f"still contended: {reason}"
        return head + f"{new} (was {self.before_ms:.3g} ms/image), {verdict}"


def retime_runs(
    run_ids: list[str],
    store=DEFAULT_STORE,
    memory_budget_gb: float | None = None,
    feature_cache_gb: float | None = None,
    report: Callable[[str], None] = print,
) -> list[Retimed]:
    """Time each finished run of `run_ids` again and record it (see the module docstring), one job at a time.

    Every id is checked first: ValueError naming each unknown or unfinished run, before anything runs.
    """
    problems, runs = [], []
    for run_id in unique(run_ids):
        try:
            run = finished_run(run_id, store)
            job = Job(*(run[key] for key in RUN_KEY))
            run["settings"] = get_model(job.model).presets[job.preset]
        except ValueError as error:
            problems.append(str(error))
            continue
        try:  # timed again where it ran: a GPU run on this machine's GPU, a CPU run on the CPU
            run["device"] = resolve_device(run.get("device") or "cpu")
        except RuntimeError as error:
            problems.append(f"run {run_id!r} ran on {run['device']} ({run.get('device_name')}): {error}")
        recorded = run["config"].get("settings")
        if recorded is not None and json.loads(json.dumps(run["settings"])) != recorded:
            problems.append(
                f"run {run_id!r} was fitted with other {job.preset!r} settings than the preset has now, so refitting"
                " it would time another model: evaluate it again with --force instead"
            )
        runs.append(run)
    if problems:
        raise ValueError("nothing was timed:\n  " + "\n  ".join(problems))
    budget = memory_budget_bytes(memory_budget_gb)
    limit = limit_from_environment() if feature_cache_gb is None else feature_cache_gb
    cache = FeatureCache(feature_cache_dir(store), limit) if limit > 0 else None
    parts: dict[str, PartData] = {}
    done = []
    for run in runs:
        job = Job(*(run[key] for key in RUN_KEY))

        def waiting(holders: list[SlotHolder], label: str = job.label) -> None:
            report(f"waiting: {label} is timed when the running job ends ({'; '.join(map(str, holders))})")

        with job_slot(f"gluelab evaluate --retime: {job.label} ({store})", on_wait=waiting):
            if job.part not in parts:
                parts[job.part] = load_part(job.part, store)
            timing = retime_in_child(job, parts[job.part], budget, run["settings"], cache, run["device"])
        recorded = record_retiming(run["run_id"], timing.inference_ms, timing.throughput_fps, timing.load, store)
        retimed = Retimed(run["run_id"], job, run["inference_ms"], run["timing_note"], timing, recorded)
        report(retimed.describe())
        done.append(retimed)
    return done
