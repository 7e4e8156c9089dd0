"""Honest timing: every run records the load it was timed under, contended timings are flagged by one rule,
gluelab runs one job at a time, and `gluelab evaluate --retime` measures a run again."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.cli import main as gluelab
from engine.cores import busy_slots, job_slot, threads_per_job, usable_cores
from engine.evaluation.evaluate import evaluate_job
from engine.evaluation.timing import (
    MIN_WATCH_ENV,
    MIN_WATCH_SECONDS,
    OTHER_CPU_MARGIN_CORES,
    TimingLoad,
    TimingWindow,
    contention,
)
from engine.ingest.part_data import load_part
from engine.jobs import Job
from store.runs import artifacts_dir, claim_run, finish_run, record_retiming, runs
from tests.conftest import evaluate_process, generated_store, run_key, write_finished_run

LEGACY = Job("part1", "legacy", "", "cpu", 0, "baseline")


def load(other_cpu_cores: float, cores: int = 2, threads: int = 2, jobs: list[int] | None = None) -> TimingLoad:
    return TimingLoad(1.0, other_cpu_cores, cores, threads, 1, 0.5, jobs or [])


def test_the_contention_rule_allows_a_quarter_core_beyond_the_spare_cores_and_no_other_gluelab_job():
    assert OTHER_CPU_MARGIN_CORES == 0.25
    assert contention(load(0.05)) is None  # a quiet 2-core machine: kernel threads, the grid watching its job
    assert contention(load(0.25)) is None
    busy = contention(load(1.93))
    assert (
        busy
        == "other processes used 1.93 cores on average while it was timed (more than 0.25 on 2 cores with 2 torch threads)"
    )
    assert contention(load(3.0, cores=8, threads=2)) is None  # 6 cores were free for it
    assert contention(load(6.5, cores=8, threads=2)) is not None
    assert contention(load(0.0, jobs=[4242])) == "another gluelab job was running (process 4242)"
    assert contention(load(0.0, threads=4)) == "torch ran 4 threads on 2 cores"
    recorded = load(1.93).record()
    assert recorded["contended"] and recorded["reason"] == busy and TimingLoad.from_record(recorded) == load(1.93)


@pytest.fixture(scope="module")
def part1_store(tmp_path_factory) -> Path:
    return generated_store(tmp_path_factory.mktemp("timing"), images=25)


def test_a_short_window_is_watched_a_second_unless_the_environment_sets_another_minimum(monkeypatch):
    assert MIN_WATCH_SECONDS == 1.0
    for setting, at_least in (("", 1.0), ("0.3", 0.3)):
        monkeypatch.setenv(MIN_WATCH_ENV, setting)
        with TimingWindow((1, 1)) as window:
            pass
        assert window.load is not None and at_least <= window.load.seconds < at_least + 0.5
    for setting in ("soon", "-1"):
        monkeypatch.setenv(MIN_WATCH_ENV, setting)
        with pytest.raises(ValueError, match=r"\$GLUELAB_MIN_WATCH_SECONDS must be"), TimingWindow((1, 1)):
            pass


def test_a_run_records_the_load_it_was_timed_under_and_its_verdict_is_the_rule_s_on_those_samples(
    part1_store, quiet_margin
):
    """Whatever else this shared machine runs meanwhile, the verdict stored with the run is the rule applied to the
    samples stored beside it."""
    outcome = evaluate_job(LEGACY, load_part("part1", part1_store), artifacts_dir(part1_store))
    timing = outcome.environment["timing"]
    samples = TimingLoad.from_record(timing)
    assert samples.seconds >= 1.0 and samples.cores == usable_cores() and samples.intra_op_threads >= 1
    assert samples.margin_cores == OTHER_CPU_MARGIN_CORES
    assert timing["reason"] == contention(samples) and timing["contended"] == (timing["reason"] is not None)


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_a_run_timed_while_busy_loops_occupy_every_core_is_stored_contended_with_its_reason(part1_store, quiet_margin):
    hogs = busy_loops(usable_cores())
    try:
        time.sleep(0.5)
        outcome = evaluate_job(LEGACY, load_part("part1", part1_store), artifacts_dir(part1_store))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    claim_run("hogged", LEGACY.key(), part1_store)
    finish_run("hogged", LEGACY.key(), outcome, part1_store)
    run = runs(part1_store).set_index("run_id").loc["hogged"]
    assert run.timing_contended
    assert (
        run.timing_note.startswith("other processes used ") and "cores on average while it was timed" in run.timing_note
    )
    stored = json.loads(run.environment)["timing"]
    assert stored["other_cpu_cores"] > usable_cores() - stored["intra_op_threads"] + OTHER_CPU_MARGIN_CORES


def test_a_quiet_retiming_replaces_a_contended_timing_and_clears_its_flag_but_a_contended_one_never_replaces_a_quiet_one(
    tmp_path,
):
    store = tmp_path / "store.duckdb"
    hogged = load(1.9).record()
    write_finished_run(store, "r", run_key(), [0.1], [0.9], 0.5, inference_ms=520.0, environment={"timing": hogged})
    assert runs(store).set_index("run_id").loc["r"].timing_contended

    assert record_retiming("r", 600.0, 2.0, load(1.5).record(), store)  # contended again: replaces a contended one
    run = runs(store).set_index("run_id").loc["r"]
    assert run.inference_ms == 600.0 and run.timing_contended and not pd_isna(run.retimed_at)

    assert record_retiming("r", 47.0, 21.0, load(0.02).record(), store)
    run = runs(store).set_index("run_id").loc["r"]
    assert run.inference_ms == 47.0 and run.throughput_fps == 21.0
    assert not run.timing_contended and pd_isna(run.timing_note)
    history = json.loads(run.environment)["timing_history"]
    assert [entry["inference_ms"] for entry in history] == [520.0, 600.0] and history[0]["load"] == hogged

    assert not record_retiming("r", 900.0, 1.0, load(1.9).record(), store)  # a quiet timing is kept
    assert runs(store).set_index("run_id").loc["r"].inference_ms == 47.0


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


@pytest.mark.parametrize("unknown", ["no_such_run", "0123456789abcdef"])
def test_retime_of_an_unknown_run_fails_naming_it_and_times_nothing(unknown, tmp_path, capsys):
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "known", run_key(), [0.1], [0.9], 0.5)
    claim_run("unfinished", run_key(seed=1), store)
    assert gluelab(["evaluate", "--retime", "known", unknown, "unfinished", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"no run {unknown!r} in {store}" in err and "nothing was timed" in err
    assert "run 'unfinished' is running, not finished" in err
    assert pd_isna(runs(store).set_index("run_id").loc["known"].retimed_at)


def test_retime_refuses_a_grid_s_arguments(tmp_path, capsys):
    assert gluelab(["evaluate", "--retime", "x", "--models", "padim", "--store", str(tmp_path / "s.duckdb")]) == 2
    assert "leave out --models" in capsys.readouterr().err
    assert gluelab(["evaluate", "--parts", "part1", "--store", str(tmp_path / "s.duckdb")]) == 2
    assert "--models required" in capsys.readouterr().err


def test_retime_measures_a_finished_run_again_and_records_its_new_load(part1_store, capsys):
    assert gluelab(["evaluate", "--parts", "part1", "--models", "legacy", "--force", "--store", str(part1_store)]) == 0
    before = runs(part1_store).set_index("run_id").loc[LEGACY.run_id]
    capsys.readouterr()
    code = gluelab(["evaluate", "--retime", LEGACY.run_id, "--store", str(part1_store)])
    after = runs(part1_store).set_index("run_id").loc[LEGACY.run_id]
    assert f"{LEGACY.label} (run {LEGACY.run_id}): " in capsys.readouterr().out
    assert not pd_isna(after.retimed_at) and after.finished_at == before.finished_at
    environment = json.loads(after.environment)
    assert environment["timing_history"][0]["load"] == json.loads(before.environment)["timing"]
    # the grid's job process and the retiming's both ran torch on the threads engine.cores gives a job
    assert (
        environment["timing"]["intra_op_threads"]
        == threads_per_job()
        == environment["timing_history"][0]["load"]["intra_op_threads"]
    )
    verdict = contention(TimingLoad.from_record(environment["timing"]))
    assert (None if pd_isna(after.timing_note) else after.timing_note) == verdict
    assert after.timing_contended == (verdict is not None)
    assert code == (1 if verdict else 0)


def test_a_second_grid_waits_for_the_running_job_instead_of_sharing_the_cores(part1_store):
    """While a job holds the machine's one job slot, another `gluelab evaluate` says it is waiting, claims nothing,
    and runs its job once the slot is free."""
    lines: list[str] = []
    with job_slot("a job started by the test"):
        assert [holder.doing for holder in busy_slots()] == ["a job started by the test"]
        process = evaluate_process(part1_store, "--models", "legacy", "--force")
        reader = threading.Thread(target=lambda: [lines.append(line) for line in process.stdout], daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("waiting: " in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        waiting = next(line for line in lines if "waiting: " in line)
        assert "a job started by the test" in waiting and "one job runs at a time" in waiting
        time.sleep(1)
        table = runs(part1_store)
        assert not (table.status == "running").any()
    process.wait(timeout=180)
    reader.join(timeout=10)
    assert process.returncode == 0, "".join(lines)
    assert busy_slots() == []
