"""The grid as a separate process: cancellation, being killed, and a dashboard-like reader alongside."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from engine.cli import main as gluelab
from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS
from store.runs import STALE_RUN_ERROR, run_image_scores, run_metrics, runs
from tests.conftest import evaluate_process, generated_store

pytestmark = pytest.mark.heavy  # grid processes


@pytest.fixture
def store(tmp_path) -> Path:
    return generated_store(tmp_path)


def _wait_for_status(store: Path, status: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.exists():
            table = runs(store)
            match = table[table.status == status]
            if not match.empty:
                return match.run_id.iloc[0]
        time.sleep(0.2)
    raise AssertionError(f"no run reached status {status!r} within {timeout} s")


def test_sigterm_marks_the_running_job_cancelled(store):
    process = evaluate_process(store, "--models", "stfpm")
    run_id = _wait_for_status(store, "running")
    time.sleep(2)  # well inside training
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    run = runs(store).set_index("run_id").loc[run_id]
    assert run.status == "cancelled" and "SIGTERM" in run.error


def test_after_sigkill_the_store_is_consistent_and_the_next_start_fails_the_stale_run(store):
    process = evaluate_process(store, "--models", "stfpm")
    run_id = _wait_for_status(store, "running")
    time.sleep(2)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert runs(store).set_index("run_id").loc[run_id].status == "running"

    assert gluelab(["evaluate", "--parts", "part1", "--models", "legacy", "--store", str(store)]) == 0
    run = runs(store).set_index("run_id").loc[run_id]
    assert run.status == "failed" and run.error == STALE_RUN_ERROR
    assert run_metrics(store).query("run_id == @run_id").empty


def test_a_reader_sees_no_errors_and_no_partial_run_while_a_grid_writes(store):
    process = evaluate_process(store, "--models", "legacy", "--seeds", "4", "--conditions", "baseline", "augmented")
    reads, complete_runs = 0, set()
    expected_metrics = len(IMAGE_METRICS) + len(PIXEL_METRICS)
    while process.poll() is None:
        table = runs(store)
        finished = set(table.run_id[table.status == "finished"])
        metrics = run_metrics(store)
        counts = metrics.groupby("run_id").size().to_dict()
        for run_id in finished:
            assert counts.get(run_id) == expected_metrics, (run_id, counts.get(run_id))
            assert len(run_image_scores(run_id, store)) == 10
        complete_runs |= finished
        reads += 1
        time.sleep(0.1)  # a reader that polls ten times a second: the dashboard's pages poll far less often
    output = process.stdout.read()
    assert process.returncode == 0, output
    assert len(complete_runs) >= 4 and reads > 20, (len(complete_runs), reads)
    assert (runs(store).status == "finished").sum() == 8
