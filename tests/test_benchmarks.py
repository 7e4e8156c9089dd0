"""The dashboard load benchmark spells out engine constants so it can run without torch: they must agree.

A metric renamed or added in the engine, or a change to how many good heatmaps
are kept would otherwise leave the benchmark timing a store shaped unlike the ones the engine writes.
"""

from __future__ import annotations

from benchmarks import dashboard_load
from engine.evaluation import evaluate
from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS
from engine.jobs import Job


def test_benchmark_draws_every_metric_the_engine_records():
    drawn = {"image_threshold", *dashboard_load.INTERVAL_METRICS, *dashboard_load.METRIC_RANGES}  # the threshold and
    # the interval are drawn with each run's scores and AUROC
    assert drawn == set(IMAGE_METRICS + PIXEL_METRICS)


def test_benchmark_keeps_as_many_good_heatmaps_as_the_engine():
    assert dashboard_load.NORMAL_EXAMPLES == evaluate.NORMAL_EXAMPLES


def test_benchmark_environment_has_the_fields_the_engine_records():
    recorded = evaluate.environment()
    assert set(dashboard_load.ENVIRONMENT) == set(recorded)
    assert set(dashboard_load.ENVIRONMENT["hardware"]) == set(recorded["hardware"])


def test_benchmark_run_ids_are_the_engines():
    keys = dashboard_load.grid_runs(40, n_seeds=2)
    for row in keys.itertuples(index=False):
        job = Job(row.part, row.model, row.backbone, row.preset, int(row.seed), row.condition)
        assert row.run_id == job.run_id, job


def test_the_gpu_check_refuses_in_one_line_where_there_is_no_cuda(capsys, monkeypatch):
    import sys

    import torch

    from benchmarks import gpu_check

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a CUDA device")
    monkeypatch.setattr(sys, "argv", ["gpu_check"])
    assert gpu_check.main() == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "sees no CUDA device" in out
