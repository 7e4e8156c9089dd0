"""The grid on a real Ray cluster (a head started on 127.0.0.1 for this module): the same results as the local
grid, and a task whose worker dies is retried once, then recorded failed, while the rest of the grid is kept."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main as gluelab
from engine.cores import usable_cores
from engine.evaluation.grid import run_grid
from engine.evaluation.ray_executor import cpus_for, resources_for, task_name
from engine.evaluation.records import CANCELLED_ERROR
from engine.jobs import Job, plan_grid
from store.requests import requests_table
from store.runs import artifacts_dir, run_artifacts, run_image_scores, run_metrics, runs
from tests.conftest import generated_store

pytestmark = pytest.mark.heavy  # a Ray head and its workers

REPO = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).parent / "ray"
SOCKET_PATH_MAX = 107  # Unix socket paths; Ray puts its sockets under <temp dir>/session_<date>_<pid>/sockets/


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        children = parents.get(stack.pop(), [])
        found += children
        stack += children
    return found


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A Ray head on 127.0.0.1 with the cores this process may use (`ray start --head --block`), stopped at the end by
    its process ids. Its tasks then run as many torch threads as a local job's process, and compute alike."""
    temp = tmp_path_factory.mktemp("ray")
    short = len(str(temp)) + 70 > SOCKET_PATH_MAX  # too long for Ray's socket paths: a shorter one of our own
    if short:
        temp = Path(tempfile.mkdtemp(prefix="ray-"))
    port = _free_port()
    # Token authentication with a token of this module's own, for the head and for the grid (the driver), so
    # neither depends on a token a user may keep in ~/.ray.
    authentication = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    previous = {name: os.environ.get(name) for name in authentication}
    os.environ.update(authentication)
    environment = {
        **os.environ,  # GLUELAB_HOME and the timing margin the session set, for the workers too
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += [
        f"--num-cpus={usable_cores()}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    log = (temp / "ray-start.log").open("w")
    head = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        assert head.poll() is None, (temp / "ray-start.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the Ray head did not start within 90 s"
            time.sleep(0.5)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        started = _descendants(head.pid)
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the head's processes as it exits
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        for pid in started:  # any the head left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        if short:
            shutil.rmtree(temp, ignore_errors=True)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _copy_store(store: Path, to: Path) -> Path:
    """A second store registering the same generated images (the copy reads them from the same folder)."""
    to.mkdir(parents=True)
    shutil.copy(store, to / store.name)
    return to / store.name


def test_tasks_ask_for_the_cpus_of_their_preset_and_a_gpu_on_cuda(tmp_path):
    job = Job("part1", "padim", "tf_efficientnet_lite0", "cpu", 0, "baseline")
    assert cpus_for("cpu") == 2 and cpus_for("cpu", node_cpus=1) == 1 and cpus_for("paper", node_cpus=16) == 4
    assert resources_for(job) == {"num_cpus": 2, "num_gpus": 0}
    assert resources_for(job, "cuda", node_cpus=8) == {"num_cpus": 2, "num_gpus": 1}
    with pytest.raises(ValueError, match="'dask'"):
        run_grid([job], tmp_path / "store.duckdb", executor="dask")
    with pytest.raises(ValueError, match="is for the ray executor"):
        run_grid([job], tmp_path / "store.duckdb", address="127.0.0.1:6379")


def test_the_ray_executor_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where Ray is not installed
    job = Job("part1", "legacy", "", "cpu", 0, "baseline")
    with pytest.raises(RuntimeError, match=re.escape("the ray executor needs Ray: pip install -e '.[ray]'")):
        run_grid([job], tmp_path / "store.duckdb", executor="ray")
    assert not (tmp_path / "store.duckdb").exists()


def test_a_grid_on_ray_gives_every_metric_the_local_executor_gives(tmp_path, ray_address):
    local_store = generated_store(tmp_path / "local")
    ray_store = _copy_store(local_store, tmp_path / "ray")
    jobs = plan_grid(["part1"], ["legacy", "padim"], None, 2, ["baseline"], "cpu", local_store)
    assert len(jobs) == 4

    start = time.perf_counter()
    local = run_grid(jobs, local_store, show_progress=False)
    local_seconds = time.perf_counter() - start
    start = time.perf_counter()
    grid = ["--parts", "part1", "--models", "legacy", "padim", "--seeds", "2", "--store", str(ray_store)]
    assert gluelab(["evaluate", *grid, "--executor", "ray", "--address", ray_address]) == 0
    ray_seconds = time.perf_counter() - start
    print(
        f"\n4-job grid (part1 x legacy, padim x 2 seeds, cpu preset): local {local_seconds:.1f} s, ray {ray_seconds:.1f} s"
    )
    assert (local.finished, local.failed) == (4, 0)

    ids = {job.run_id for job in jobs}
    for store in (local_store, ray_store):
        table = runs(store)
        assert set(table.run_id) == ids and (table.status == "finished").all()
    # Exactly equal: the same seeds, images, library versions and torch thread count (2: the local job takes every
    # core, the Ray task the 2 CPUs it asked for), and no reduction whose order depends on the process.
    columns = ["run_id", "metric", "value"]
    local_metrics = run_metrics(local_store)[columns].sort_values(columns[:2]).reset_index(drop=True)
    ray_metrics = run_metrics(ray_store)[columns].sort_values(columns[:2]).reset_index(drop=True)
    assert len(local_metrics) > 4 * 5
    pd.testing.assert_frame_equal(local_metrics, ray_metrics, check_exact=True)
    for job in jobs:
        pd.testing.assert_frame_equal(
            run_image_scores(job.run_id, local_store), run_image_scores(job.run_id, ray_store)
        )
        examples = run_artifacts(job.run_id, ray_store)
        assert len(examples) == len(run_artifacts(job.run_id, local_store)) > 0
        for row in examples.itertuples():
            assert (artifacts_dir(ray_store) / row.anomaly_map_path).is_file()
            assert (artifacts_dir(ray_store) / row.pred_mask_path).is_file()

    # The same grid queued and run by a worker on Ray: finished runs are skipped, never redone.
    assert gluelab(["evaluate", *grid, "--submit"]) == 0
    assert gluelab(["worker", "--once", "--executor", "ray", "--address", ray_address, "--store", str(ray_store)]) == 0
    request = requests_table(ray_store).iloc[0]
    assert request.state == "finished" and request.message == "0 runs finished, 0 failed, 4 already done"


class _WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the Ray worker running a named task, `times` attempts per task name, as each attempt starts.

    A worker's process title is `ray::<task name>` while it runs a task (`ray_executor.task_name`).
    """

    def __init__(self, times: dict[str, int]):
        super().__init__(daemon=True)
        self.times = times
        self.killed: Counter[str] = Counter()
        self.pids: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        titles = {f"ray::{name}".encode(): name for name in self.times}
        while not self.done.wait(0.05):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) in self.pids:
                    continue
                try:
                    title = (entry / "cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                name = titles.get(title)
                if name is not None and self.killed[name] < self.times[name]:
                    os.kill(int(entry.name), signal.SIGKILL)
                    self.pids.add(int(entry.name))
                    self.killed[name] += 1


def test_a_ray_task_whose_worker_dies_is_retried_once_then_recorded_failed_and_nothing_is_lost(tmp_path, ray_address):
    store = generated_store(tmp_path)
    twice, once = plan_grid(["part1"], ["padim"], None, 2, ["baseline"], "cpu", store)
    (steady,) = plan_grid(["part1"], ["legacy"], None, 1, ["baseline"], "cpu", store)
    killer = _WorkerKiller({task_name(twice): 2, task_name(once): 1})
    killer.start()
    try:
        summary = run_grid([twice, steady, once], store, show_progress=False, executor="ray", address=ray_address)
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed == {task_name(twice): 2, task_name(once): 1}
    assert (summary.finished, summary.failed) == (2, 1)

    table = runs(store).set_index("run_id")
    failed = table.loc[twice.run_id]
    assert failed.status == "failed"
    assert failed.error.startswith(f"its Ray worker died twice running {twice.label} (retried once): ")
    assert "WorkerCrashedError" in failed.error, failed.error
    assert run_metrics(store).query("run_id == @twice.run_id").empty
    for job in (once, steady):  # the retry of the job killed once finished, and the others are all stored
        assert table.loc[job.run_id].status == "finished"
        assert len(run_image_scores(job.run_id, store)) == 10
        for row in run_artifacts(job.run_id, store).itertuples():
            assert (artifacts_dir(store) / row.anomaly_map_path).is_file()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _running_task_pid(name: str, timeout: float = 120) -> int:
    """The pid of the Ray worker whose process title is `ray::<name>`, once one runs it."""
    title = f"ray::{name}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[0] == title:
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no Ray worker ran {name!r} within {timeout} s")


def test_ctrl_c_in_the_driver_cancels_the_outstanding_task_and_records_its_run_cancelled(tmp_path, ray_address):
    store = generated_store(tmp_path)
    # `augmented`: no earlier test's task has this label, so no worker Ray keeps from it carries its title
    first, second = plan_grid(["part1"], ["padim"], None, 2, ["augmented"], "cpu", store)
    workers: list[int] = []

    def interrupt_once_the_first_task_runs() -> None:
        workers.append(_running_task_pid(task_name(first)))
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the grid runs in this process's main thread

    interrupter = threading.Thread(target=interrupt_once_the_first_task_runs, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        run_grid([first, second], store, show_progress=False, executor="ray", address=ray_address)
    interrupter.join()

    table = runs(store).set_index("run_id")
    assert table.loc[first.run_id].status == "cancelled" and table.loc[first.run_id].error == CANCELLED_ERROR
    assert second.run_id not in table.index  # never claimed: a `cpu` task takes every CPU of the head, one at a time
    assert run_metrics(store).empty
    deadline = time.monotonic() + 30
    while _alive(workers[0]):  # the cancelled task's worker was stopped (force=True)
        assert time.monotonic() < deadline, "the cancelled task's worker is still running"
        time.sleep(0.2)
