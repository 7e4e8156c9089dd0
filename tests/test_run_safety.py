"""Nothing lost: a forced re-run keeps the result it redoes until the new one exists, and two grids share work."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal

from engine.cli import main as gluelab
from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS
from store.runs import artifacts_dir, run_artifacts, run_claims, run_metrics, runs
from tests.conftest import evaluate_process, generated_store

pytestmark = pytest.mark.heavy  # grid processes


@pytest.fixture
def store(tmp_path) -> Path:
    return generated_store(tmp_path)


def _wait_for_a_claim(store: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run_claims(store).empty:
            return
        time.sleep(0.1)
    raise AssertionError(f"no job was claimed within {timeout} s")


def test_sigterm_during_a_forced_rerun_keeps_the_old_result(store):
    """`--force` used to delete the finished run when the re-run started, so a cancelled re-run lost it."""
    assert gluelab(["evaluate", "--parts", "part1", "--models", "padim", "--store", str(store)]) == 0
    before_runs, before_metrics = runs(store), run_metrics(store)
    run_id = before_runs.run_id.iloc[0]
    before_examples = run_artifacts(run_id, store)

    process = evaluate_process(store, "--models", "padim", "--force")
    _wait_for_a_claim(store)
    time.sleep(1)  # the re-run's job is under way in its process
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output

    after_runs = runs(store)
    assert after_runs.status.tolist() == ["finished"]
    assert_frame_equal(after_runs, before_runs)
    assert_frame_equal(run_metrics(store), before_metrics)
    assert len(before_metrics) == len(IMAGE_METRICS + PIXEL_METRICS)
    assert_frame_equal(run_artifacts(run_id, store), before_examples)
    assert all((artifacts_dir(store) / path).is_file() for path in before_examples.anomaly_map_path)
    assert run_claims(store).empty


def test_a_forced_rerun_replaces_the_result_and_its_heatmaps_in_one_go(store):
    arguments = ["evaluate", "--parts", "part1", "--models", "padim", "--store", str(store)]
    assert gluelab(arguments) == 0
    run_id = runs(store).run_id.iloc[0]
    old_folders = {Path(path).parts[0] for path in run_artifacts(run_id, store).anomaly_map_path}
    assert gluelab([*arguments, "--force"]) == 0
    new_examples = run_artifacts(run_id, store)
    new_folders = {Path(path).parts[0] for path in new_examples.anomaly_map_path}
    assert new_folders.isdisjoint(old_folders)
    assert not any((artifacts_dir(store) / folder).exists() for folder in old_folders)
    assert all((artifacts_dir(store) / path).is_file() for path in new_examples.anomaly_map_path)
    assert len(run_metrics(store)) == len(IMAGE_METRICS + PIXEL_METRICS)


def test_two_processes_on_the_same_grid_both_exit_0_with_each_run_finished_exactly_once(store):
    """The second process used to insert metrics for runs the first had finished and crash on the duplicate key."""
    arguments = ("--models", "legacy", "padim", "--seeds", "2")
    first, second = evaluate_process(store, *arguments), evaluate_process(store, *arguments)
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    finished = [int(re.search(r"(\d+) runs finished", output).group(1)) for output in outputs]
    assert sum(finished) == 4, outputs
    table = runs(store)
    assert len(table) == 4 and set(table.status) == {"finished"}
    counts = run_metrics(store).groupby("run_id").size()
    assert set(counts.index) == set(table.run_id) and (counts == len(IMAGE_METRICS + PIXEL_METRICS)).all()
    assert run_claims(store).empty
    assert "Traceback" not in "".join(outputs)
