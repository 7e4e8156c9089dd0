"""Store arithmetic on hand-built runs, and the store's transaction and lock behaviour.

Runs are written through the store's own lifecycle (`claim_run` then `finish_run`), with scores and
timings chosen by hand so every expected count, mean and std can be worked out on paper.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from store import StoreLockedError, write_store
from store.queries import operating_points, store_stamp
from store.runs import (
    RUN_KEY,
    Training,
    claim_run,
    leaderboard,
    mark_stale_runs,
    run_claims,
    run_training_losses,
    runs,
    training_note,
)
from tests.conftest import file_digest, write_finished_run
from tests.conftest import run_key as key


def test_operating_points_count_false_alarms_and_misses_per_threshold_policy(tmp_path):
    store = tmp_path / "store.duckdb"
    # F1 policy, threshold 4.5: good 5 is a false alarm, defect 3 is missed.
    # Zero escapes, threshold 3 (lowest defect): good 3 (a tie), 4 and 5 are false alarms, nothing is missed.
    write_finished_run(store, "a", key(seed=0), [1, 2, 3, 4, 5], [3, 6, 7], threshold=4.5)
    # Every defect above every good image: no false alarm and no miss under either policy.
    write_finished_run(store, "b", key(seed=1), [0.1, 0.2, 0.3], [0.9, 0.8], threshold=0.8)
    # Not counted: another part, and a run still running.
    write_finished_run(store, "c", key(part="part16"), [9, 9], [1], threshold=5)
    claim_run("d", key(seed=2), store)

    points = operating_points(store, ["part1"]).set_index("run_id").sort_index()
    assert list(points.index) == ["a", "b"]
    counted = ["n_good", "n_defective", "false_alarms_f1", "missed_f1", "false_alarms_zero_escape"]
    assert points.loc["a", counted].tolist() == [5, 3, 1, 1, 3]
    assert points.loc["b", counted].tolist() == [3, 2, 0, 0, 0]
    assert points.loc["a", list(RUN_KEY)].to_dict() == key(seed=0)

    both = operating_points(store, ["part1", "part16"]).set_index("run_id")
    assert both.loc["c", ["false_alarms_f1", "missed_f1", "false_alarms_zero_escape"]].tolist() == [2, 1, 2]


def test_leaderboard_takes_mean_sample_std_and_train_minutes_over_seeds(tmp_path):
    store = tmp_path / "store.duckdb"
    auroc = [0.80, 0.90, 0.97]
    train_seconds = [60.0, 150.0, 300.0]
    inference_ms = [12.0, 15.0, 30.0]
    for seed, (value, seconds, ms) in enumerate(zip(auroc, train_seconds, inference_ms, strict=True)):
        write_finished_run(
            store, f"seed{seed}", key(seed=seed), [1], [2], 1.5, {"image_auroc": value}, seconds, ms, 1000 / ms
        )
    write_finished_run(store, "single", key(model="dfm"), [1], [2], 1.5, {"image_auroc": 0.6}, 90.0)
    claim_run("unfinished", key(seed=9), store)  # a running run counts for nothing

    board = leaderboard(store, "part1").set_index(["model", "metric"])
    padim = board.loc["padim"]
    assert padim.loc["image_auroc", "mean"] == pytest.approx(np.mean(auroc))
    assert padim.loc["image_auroc", "std"] == pytest.approx(np.std(auroc, ddof=1))
    assert padim.loc["image_auroc", "n_seeds"] == 3
    minutes = np.array(train_seconds) / 60
    assert padim.loc["train_min", "mean"] == pytest.approx(minutes.mean())  # 2.8333 minutes
    assert padim.loc["train_min", "std"] == pytest.approx(minutes.std(ddof=1))
    assert padim.loc["inference_ms", "mean"] == pytest.approx(19.0)
    assert padim.loc["throughput_fps", "mean"] == pytest.approx(np.mean([1000 / ms for ms in inference_ms]))
    dfm = board.loc["dfm"]
    assert dfm.loc["train_min", "mean"] == pytest.approx(1.5)
    assert dfm.loc["image_auroc", "n_seeds"] == 1 and np.isnan(dfm.loc["image_auroc", "std"])


def test_a_write_that_raises_inside_the_block_leaves_the_store_as_it_was(tmp_path):
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "a", key(), [1, 2], [3], threshold=2.5)
    before_bytes, before_stamp, before_runs = file_digest(store), store_stamp(store), runs(store)

    with pytest.raises(RuntimeError, match="disk on fire"), write_store(store) as con:
        con.execute("DELETE FROM image_scores")
        con.execute("UPDATE runs SET status = 'failed'")
        start = {"run_id": "b", **key(seed=5)}
        con.execute(
            f"INSERT INTO runs (run_id, {', '.join(RUN_KEY)}, status, host, pid, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 'h', 1, now())",
            list(start.values()),
        )
        raise RuntimeError("disk on fire")

    assert file_digest(store) == before_bytes
    assert store_stamp(store) == before_stamp
    pd.testing.assert_frame_equal(runs(store), before_runs)
    assert operating_points(store, ["part1"])["n_good"].tolist() == [2]


HOLD_THE_STORE = textwrap.dedent(
    """
    import sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1])  # a write connection: DuckDB's file lock, held by another process
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def hold_store(store: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the write lock of a new, empty `store` for `seconds`; returns once it holds it."""
    with write_store(store):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_STORE, str(store), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_store_held_by_another_process_gives_up_with_a_clear_error_and_writes_nothing(tmp_path):
    store = tmp_path / "store.duckdb"
    holder = hold_store(store, 60)
    try:
        start = time.monotonic()
        with pytest.raises(StoreLockedError, match=f"store {store} is busy"), write_store(store, wait_seconds=1.0):
            pytest.fail("the block must not run while another process holds the store")
        assert time.monotonic() - start >= 1.0  # it retried for the whole wait before giving up
    finally:
        holder.kill()
        holder.wait()
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_write_waits_for_another_process_to_release_the_store(tmp_path):
    store = tmp_path / "store.duckdb"
    holder = hold_store(store, 1.5)
    try:
        claim_run("a", key(), store)  # retried with backoff until the holder lets go
    finally:
        holder.wait()
    assert holder.returncode == 0
    assert runs(store)["run_id"].tolist() == ["a"]


CLAIM_AND_DIE = """
import sys
from store.runs import claim_run
print(claim_run(sys.argv[2], {"part": "part1", "model": "padim", "backbone": "tf_efficientnet_lite0",
                              "preset": "cpu", "seed": 0, "condition": "baseline"}, sys.argv[1], force=True))
"""


def test_a_forced_rerun_killed_before_it_finished_leaves_only_a_claim_that_the_next_grid_drops(tmp_path):
    """The killed re-run's process is gone: its claim is stale, the finished run it was redoing untouched."""
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "a", key(), normal=[0.1, 0.2], anomalous=[0.9], threshold=0.5)
    claimed = subprocess.run(
        [sys.executable, "-c", CLAIM_AND_DIE, str(store), "a"], capture_output=True, text=True, check=True
    )
    assert claimed.stdout.strip() == "rerun" and len(run_claims(store)) == 1

    assert mark_stale_runs(store) == 0  # no run was left running: only the claim was stale
    assert run_claims(store).empty
    assert runs(store).set_index("run_id").loc["a", "status"] == "finished"


def test_a_run_keeps_its_loss_per_epoch_and_stop_reason_and_a_rerun_replaces_them(tmp_path):
    store = tmp_path / "gluelab.duckdb"
    budget = Training([0.9, 0.7, 0.65], [10.0, 20.0, 30.0], "budget", epoch_cap=100, budget_minutes=0.5)
    write_finished_run(store, "r1", key(model="stfpm"), [0.1, 0.2], [0.8, 0.9], 0.5, training=budget)
    row = runs(store).iloc[0]
    assert (row["epochs"], row["stop_reason"], bool(row["under_trained"])) == (3, "budget", True)
    assert run_training_losses("r1", store).values.tolist() == [[1, 0.9, 10.0], [2, 0.7, 20.0], [3, 0.65, 30.0]]
    assert (
        training_note("budget", 3, 100, 0.5)
        == "stopped by the 0.5-minute budget after 3 epochs, before its loss levelled off"
    )

    converged = Training([0.9, 0.5], [5.0, 9.0], "converged", epoch_cap=100, budget_minutes=10)
    claim_run("r1", key(model="stfpm"), store, force=True)
    write_finished_run(store, "r1", key(model="stfpm"), [0.1, 0.2], [0.8, 0.9], 0.5, training=converged)
    row = runs(store).iloc[0]
    assert (row["epochs"], row["stop_reason"], bool(row["under_trained"])) == (2, "converged", False)
    assert run_training_losses("r1", store)["loss"].tolist() == [0.9, 0.5]

    write_finished_run(store, "r2", key(model="padim"), [0.1, 0.2], [0.8, 0.9], 0.5)
    one_pass = runs(store).set_index("run_id").loc["r2"]
    assert pd.isna(one_pass["stop_reason"]) and run_training_losses("r2", store).empty
