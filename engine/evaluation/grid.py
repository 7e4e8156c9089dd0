"""Run a grid of jobs against the store: skip finished runs, survive failing jobs, stop cleanly.

Each job is recorded `running` before it starts and `finished` (with every result, in one
transaction), `failed` (with its error) or `cancelled` (Ctrl-C or SIGTERM) after. A job that
raises, produces NaN or runs out of memory fails alone; the grid goes on. Runs left `running` by
a killed process are marked failed when the next grid starts.
"""

from __future__ import annotations

import signal
import traceback
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.evaluation.evaluate import evaluate_job
from engine.evaluation.jobs import Job
from engine.ingest.part_data import PartData, load_part
from store import DEFAULT_STORE
from store.runs import artifacts_dir, end_run, finish_run, finished_run_ids, mark_stale_runs, start_run

CANCELLED_ERROR = "cancelled (Ctrl-C or SIGTERM) while running"


@dataclass(frozen=True)
class GridSummary:
    finished: int
    failed: int
    skipped: int
    stale_marked: int


@contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so both cancel the running job the same way."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_grid(
    jobs: list[Job], store: Path | str = DEFAULT_STORE, force: bool = False, show_progress: bool = True
) -> GridSummary:
    stale = mark_stale_runs(store)
    done = finished_run_ids(store)
    todo = [job for job in jobs if force or job.run_id not in done]
    counts = Counter()
    parts: dict[str, PartData] = {}
    with _sigterm_as_interrupt():
        progress = tqdm(todo, desc="evaluating", unit="run", disable=not show_progress)
        for job in progress:
            progress.set_postfix_str(job.label)
            start_run(job.run_id, job.key(), store)
            try:
                if job.part not in parts:
                    parts[job.part] = load_part(job.part, store)
                outcome = evaluate_job(job, parts[job.part], artifacts_dir(store))
            except KeyboardInterrupt:
                end_run(job.run_id, "cancelled", CANCELLED_ERROR, store=store)
                raise
            except Exception as error:  # noqa: BLE001 - any failure of one job is recorded and the grid goes on
                end_run(job.run_id, "failed", _describe(error), {"job": job.key()}, store=store)
                counts["failed"] += 1
                progress.write(f"failed: {job.label}: {type(error).__name__}: {error}")
                continue
            finish_run(job.run_id, outcome, store)
            counts["finished"] += 1
    return GridSummary(counts["finished"], counts["failed"], len(jobs) - len(todo), stale)


def _describe(error: Exception) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    location = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(error).__name__}: {error}{location}"
