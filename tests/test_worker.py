"""The request queue and its worker: requests run in order, once, can be cancelled, and survive a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from engine.cli import main as gluelab
from engine.ingest.importer import import_dataset
from engine.jobs import GridRequest, RequestLimits, plan_request, submit
from store.requests import cancel_request, requests_table, running_worker
from store.runs import runs
from tests.conftest import file_digest, generated_store

pytestmark = pytest.mark.heavy  # worker processes


@pytest.fixture
def store(tmp_path) -> Path:
    return generated_store(tmp_path, images=12)


def _worker_process(store: Path, *arguments: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "engine.cli", "worker", "--store", str(store), *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _request(store: Path, request_id: int) -> pd.Series:
    return requests_table(store).set_index("request_id").loc[request_id]


def _wait_for(condition, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _running_run(store: Path, model: str) -> str | None:
    table = runs(store) if store.exists() else pd.DataFrame()
    match = table[(table.status == "running") & (table.model == model)] if not table.empty else table
    return None if match.empty else match.run_id.iloc[0]


def test_the_same_grid_submitted_twice_while_open_is_queued_once(store):
    first = submit(GridRequest(("part1",), ("legacy", "padim")), "ann", "test", store)
    again = submit(GridRequest(("part1",), ("legacy", "padim")), "bob", "test", store)
    other = submit(GridRequest(("part1",), ("legacy",)), "bob", "test", store)
    assert first.queued and first.n_runs == 2
    assert not again.queued and again.request_id == first.request_id and again.state == "queued"
    assert other.queued and other.request_id != first.request_id
    assert len(requests_table(store)) == 2


@pytest.mark.parametrize(
    ("grid", "field"),
    [
        (GridRequest(("part1",), ("no_such_model",)), "unknown model 'no_such_model'"),
        (GridRequest(("part99",), ("legacy",)), "part 'part99' is not in the store"),
        (GridRequest((), ("legacy",)), "parts: choose at least one"),
        (GridRequest(("part1",), ()), "models: choose at least one"),
        (GridRequest(("part1",), ("legacy",), conditions=()), "conditions: choose at least one"),
        (GridRequest(("part1",), ("legacy",), seeds=0), "--seeds must be at least 1"),
        (GridRequest(("part1",), ("legacy",), seeds=4), "seeds: 4 is more than the limit of 3"),
        (
            GridRequest(("part1",), ("padim", "dfm"), seeds=3),
            "runs: the request makes 6 runs, more than the limit of 5",
        ),
        (GridRequest(("part1",), ("legacy",), preset="fast"), "unknown preset 'fast'"),
        (GridRequest(("part1",), ("padim",), backbones=("resnet999",)), "cannot take backbone 'resnet999'"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field_and_leaves_the_store_as_it_was(store, grid, field):
    before = file_digest(store)
    with pytest.raises(ValueError, match="nothing was queued") as refused:
        submit(grid, "ann", "test", store, RequestLimits(max_runs=5, max_queued=2, max_seeds=3))
    assert field in str(refused.value)
    assert file_digest(store) == before


def test_pixel_metrics_for_a_part_without_masks_are_refused_naming_the_part(tmp_path, store):
    root = tmp_path / "plain_images"
    for folder, count in (("normal", 10), ("abnormal", 3)):
        (root / folder).mkdir(parents=True)
        for index in range(count):
            Image.new("L", (64, 48), 100 + index).save(root / folder / f"{index:02d}.png")
    import_dataset("folder", "customer_part", root, store)
    assert plan_request(GridRequest(("customer_part",), ("legacy",)), store)  # image metrics alone are fine
    with pytest.raises(ValueError, match="pixel_metrics: part 'customer_part' has no defect masks"):
        plan_request(GridRequest(("part1", "customer_part"), ("legacy",), pixel_metrics=True), store)
    assert plan_request(GridRequest(("part1",), ("legacy",), pixel_metrics=True), store)


def test_a_full_queue_refuses_one_more_request_naming_the_limit(store):
    limits = RequestLimits(max_queued=1)
    submit(GridRequest(("part1",), ("legacy",)), "ann", "test", store, limits)
    with pytest.raises(ValueError, match="queued requests: 1 are already waiting and the limit is 1"):
        submit(GridRequest(("part1",), ("padim",)), "ann", "test", store, limits)
    assert len(requests_table(store)) == 1


def test_limits_come_from_the_config_file_and_a_bad_value_is_named(tmp_path, store, monkeypatch, capsys):
    config = tmp_path / "plant.toml"
    config.write_text("[requests]\nmax_seeds = 2\n")
    monkeypatch.setenv("GLUELAB_CONFIG", str(config))
    command = ["evaluate", "--parts", "part1", "--models", "legacy", "--seeds", "3", "--submit", "--store", str(store)]
    assert gluelab(command) == 2
    assert "seeds: 3 is more than the limit of 2" in capsys.readouterr().err
    config.write_text("[requests]\nmax_seeds = 'many'\n")
    assert gluelab(command) == 2
    assert f"{config}: [requests] max_seeds must be a whole number" in capsys.readouterr().err
    assert not requests_table(store).shape[0]


def test_submit_leaves_where_the_grid_runs_to_the_worker(store, capsys):
    command = [
        "evaluate",
        "--parts",
        "part1",
        "--models",
        "legacy",
        "--submit",
        "--device",
        "cpu",
        "--store",
        str(store),
    ]
    assert gluelab(command) == 2
    assert "--device: where and how a queued grid runs is the worker's to say" in capsys.readouterr().err


def test_a_worker_runs_requests_in_order_and_a_second_worker_is_refused_naming_the_first(store, capsys):
    first = submit(GridRequest(("part1",), ("legacy",)), "ann", "test", store).request_id
    second = submit(GridRequest(("part1",), ("legacy",), seeds=2), "bob", "test", store).request_id
    worker = _worker_process(store)
    try:
        _wait_for(lambda: running_worker(store), "the worker taking the store")
        assert gluelab(["worker", "--once", "--store", str(store)]) == 2
        refusal = capsys.readouterr().err
        assert (
            "another gluelab worker (" in refusal and f" {worker.pid}) already runs the requests of {store}" in refusal
        )
        _wait_for(lambda: _request(store, second).state == "finished", "the second request finishing")
        assert _request(store, first).state == "finished"
        assert _request(store, first).ended_at <= _request(store, second).started_at
        assert _request(store, second).message == "1 runs finished, 0 failed, 1 already done"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 130, output
    assert running_worker(store) is None


def test_cancel_ends_a_queued_request_and_stops_a_running_one_recording_its_job_cancelled(store):
    slow = submit(GridRequest(("part1",), ("stfpm",)), "ann", "test", store).request_id
    queued = submit(GridRequest(("part1",), ("padim",)), "ann", "test", store).request_id
    after = submit(GridRequest(("part1",), ("legacy",)), "ann", "test", store).request_id
    assert cancel_request(queued, "bob", store) == "cancelled"
    worker = _worker_process(store)
    try:
        run_id = _wait_for(lambda: _running_run(store, "stfpm"), "stfpm running")
        time.sleep(2)  # inside training
        assert cancel_request(slow, "bob", store) == "running"
        _wait_for(lambda: _request(store, slow).state == "cancelled", "the running request being cancelled", 60)
        assert runs(store).set_index("run_id").loc[run_id].status == "cancelled"
        assert _request(store, slow).message == "cancelled by bob while running; its finished runs are kept"
        _wait_for(lambda: _request(store, after).state == "finished", "the next request running")
        assert _request(store, queued).state == "cancelled" and _request(store, queued).started_at is pd.NaT
        assert worker.poll() is None  # cancelling a request does not stop the worker
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)


def test_after_sigkill_the_next_worker_resumes_the_request_redoing_no_finished_run(store):
    request = submit(GridRequest(("part1",), ("legacy", "padim")), "ann", "test", store).request_id
    worker = _worker_process(store)
    _wait_for(lambda: _running_run(store, "padim"), "padim running after legacy finished")
    legacy = runs(store).query("model == 'legacy'").iloc[0]
    assert legacy.status == "finished"
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=30)
    assert _request(store, request).state == "running"

    assert gluelab(["worker", "--once", "--store", str(store)]) == 0
    table = runs(store).set_index("model")
    assert set(table.status) == {"finished"}
    assert table.loc["legacy", "finished_at"] == legacy.finished_at  # not run again
    ended = _request(store, request)
    assert ended.state == "finished" and ended.message == "1 runs finished, 0 failed, 1 already done"
    assert ended.runs_finished == ended.n_runs == 2


def test_threads_of_one_process_read_and_write_a_store_without_errors(store):
    """The dashboard's sessions and a worker's cancel watcher share a process with other users of the store."""
    errors: list[BaseException] = []
    request = submit(GridRequest(("part1",), ("legacy",)), "ann", "test", store).request_id

    def keep(action) -> None:
        for _ in range(60):
            try:
                action()
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

    threads = [
        threading.Thread(target=keep, args=(lambda: cancel_request(request + 1000, "bob", store),)),
        threading.Thread(target=keep, args=(lambda: requests_table(store),)),
        threading.Thread(target=keep, args=(lambda: runs(store),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
