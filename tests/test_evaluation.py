"""The evaluation grid on a small generated part: records, determinism, skipping, failures, refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest

from engine.cli import main as gluelab
from engine.evaluation.evaluate import NonFiniteScores, evaluate_job
from engine.evaluation.grid import run_grid
from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS
from engine.ingest.part_data import load_part
from engine.jobs import Job, plan_grid
from engine.models.base import Detector, Prediction
from engine.models.catalogue import MODELS
from engine.models.registry import ModelEntry
from store.runs import artifacts_dir, run_artifacts, run_image_scores, run_metrics, runs
from store.stages import STAGES, run_stages
from tests.conftest import file_digest, generated_store


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """part1 with 25 images (15 train, 5 good test, 5 defective), registered in a fresh store."""
    return generated_store(tmp_path_factory.mktemp("evaluation"))


def _metrics(store: Path, job: Job) -> dict:
    frame = run_metrics(store)
    return frame[frame.run_id == job.run_id].set_index("metric")["value"].to_dict()


def test_a_run_records_metrics_scores_examples_and_its_setup(small_store):
    jobs = plan_grid(["part1"], ["legacy", "padim"], None, 1, ["baseline"], "cpu", small_store)
    summary = run_grid(jobs, small_store, show_progress=False)
    assert (summary.finished, summary.failed) == (2, 0)

    table = runs(small_store).set_index("run_id")
    for job in jobs:
        run = table.loc[job.run_id]
        assert run.status == "finished" and run.n_train == 15 and run.n_test == 10
        assert run.train_seconds > 0 and run.inference_ms > 0 and run.throughput_fps > 0 and run.peak_memory_mb > 100
        metrics = _metrics(small_store, job)
        assert set(metrics) == set(IMAGE_METRICS + PIXEL_METRICS)
        assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1 and 0 <= metrics["aupro"] <= 1
        scores = run_image_scores(job.run_id, small_store)
        assert len(scores) == 10 and set(scores.label) == {"normal", "anomalous"}
        assert (scores.predicted_anomalous == (scores.score >= metrics["image_threshold"])).all()
        examples = run_artifacts(job.run_id, small_store)
        assert len(examples) == 5 + 5  # every defective image and the (up to 10) highest-scoring good ones
        for row in examples.itertuples():
            assert (artifacts_dir(small_store) / row.anomaly_map_path).is_file()
            assert (artifacts_dir(small_store) / row.pred_mask_path).is_file()
        environment = json.loads(run.environment)
        assert environment["versions"]["anomalib"] == "2.7.0" and environment["hardware"]["cpu_count"] >= 1
        config = json.loads(run.config)
        assert config["job"] == job.key() and isinstance(config["deviations"], list)
    padim_config = json.loads(table.loc[jobs[1].run_id].config)
    assert any("EfficientNet-Lite" in d for d in padim_config["deviations"])


def test_a_run_s_time_is_stored_by_stage_and_the_stages_add_up_to_its_wall_time(small_store):
    """The runs of the test above: every stage one of the registry's, none negative, together within 5 % of the run's
    wall time from its claim to its store write; PaDiM's frozen backbone timed apart from the rest of its fit."""
    jobs = plan_grid(["part1"], ["legacy", "padim"], None, 1, ["baseline"], "cpu", small_store)
    table = runs(small_store).set_index("run_id")
    stages = run_stages(small_store, [job.run_id for job in jobs])
    for job in jobs:
        seconds = stages[stages.run_id == job.run_id].set_index("stage")["seconds"]
        assert set(seconds.index) <= set(STAGES) and (seconds >= 0).all(), seconds.to_dict()
        every_run = {"hand_over", "build", "fit", "timing", "image_metrics", "pixel_metrics", "aupro", "heatmaps"}
        assert every_run | {"store"} <= set(seconds.index), seconds.to_dict()
        run = table.loc[job.run_id]
        wall = (run.finished_at - run.started_at).total_seconds()
        assert abs(seconds.sum() - wall) <= 0.05 * wall, (seconds.to_dict(), wall)
    padim = stages[stages.run_id == jobs[1].run_id].set_index("stage")["seconds"]
    assert padim["backbone_train"] > 0  # apart from the rest of the fit
    assert "scoring" not in padim and "backbone_test" not in padim  # its 10 test images are all the timing windows'
    assert stages.loc[stages.run_id == jobs[0].run_id, "stage"].iloc[0] == "read"  # the grid's first job read the part


def test_the_same_job_twice_gives_the_same_metrics(small_store):
    jobs = plan_grid(["part1"], ["padim", "legacy"], None, 1, ["augmented"], "cpu", small_store)
    run_grid(jobs, small_store, show_progress=False)
    first = [_metrics(small_store, job) for job in jobs]
    run_grid(jobs, small_store, force=True, show_progress=False)
    second = [_metrics(small_store, job) for job in jobs]
    assert first == second


def test_rerun_skips_finished_runs_and_force_redoes_them(small_store):
    jobs = plan_grid(["part1"], ["legacy"], None, 2, ["baseline"], "cpu", small_store)
    run_grid(jobs, small_store, show_progress=False)
    again = run_grid(jobs, small_store, show_progress=False)
    assert (again.finished, again.skipped) == (0, 2)
    forced = run_grid(jobs, small_store, force=True, show_progress=False)
    assert (forced.finished, forced.skipped) == (2, 0)


def test_a_failing_job_is_stored_with_its_error_and_the_grid_goes_on(small_store):
    failing = Job("part1", "padim", "resnet18", "cpu", 5, "baseline")  # no resnet18 weights on this machine
    passing = Job("part1", "legacy", "", "cpu", 5, "baseline")
    summary = run_grid([failing, passing], small_store, show_progress=False)
    assert (summary.finished, summary.failed) == (1, 1)
    table = runs(small_store).set_index("run_id")
    assert table.loc[failing.run_id].status == "failed"
    assert "gluelab weights import" in table.loc[failing.run_id].error
    assert table.loc[passing.run_id].status == "finished"
    assert _metrics(small_store, failing) == {}


@pytest.mark.parametrize(
    "arguments, named",
    [
        (["--models", "padim", "unheard_of"], "unheard_of"),
        (["--models", "padim", "--backbones", "no_such_backbone"], "no_such_backbone"),
        (["--models", "padim", "--backbones", "vit_base_patch16_224"], "cannot take backbone 'vit_base_patch16_224'"),
        (["--models", "padim", "--seeds", "0"], "--seeds must be at least 1"),
        (["--models", "padim", "--parts", "part99"], "part 'part99' is not in the store"),
        (["--models", "padim", "--conditions", "foggy"], "unknown condition 'foggy'"),
        (["--models", "padim", "--preset", "turbo"], "unknown preset 'turbo'"),
    ],
)
def test_a_malformed_request_is_refused_before_anything_runs(arguments, named, small_store, capsys):
    before = file_digest(small_store)
    parts = [] if "--parts" in arguments else ["--parts", "part1"]
    assert gluelab(["evaluate", *parts, *arguments, "--store", str(small_store)]) == 2
    err = capsys.readouterr().err
    assert named in err and "nothing was run" in err
    assert file_digest(small_store) == before


def test_models_command_lists_where_each_model_runs_and_what_it_needs(capsys):
    assert gluelab(["models"]) == 0
    table, _, notes = capsys.readouterr().out.partition("\n\n")
    lines = table.splitlines()
    assert re.split(r" {2,}", lines[0]) == ["model", "study name", "runs here", "needs an import first"]
    rows = {columns[0]: columns for columns in (re.split(r" {2,}", line, maxsplit=3) for line in lines[1:])}
    instructions = dict(re.findall(r"^\[(\d+)\] (.*)$", notes, flags=re.MULTILINE))

    def needs(model: str) -> dict[str, str]:
        """backbone -> the instruction its note gives, for what `model` lacks."""
        return {item: instructions[n] for item, n in re.findall(r"(\S+) \[(\d+)\]", rows[model][3])}

    assert "tf_efficientnet_lite0" in rows["padim"][2] and "tf_efficientnet_lite2" in rows["fastflow"][2]
    assert rows["legacy"][2:] == ["yes (no backbone)", "-"]
    assert needs("padim")["resnet18"].endswith("gluelab weights import FILE --name resnet18")
    assert "tf_efficientnet_lite0" in rows["reverse_distillation"][2]
    assert needs("dsr")["weights"].endswith("gluelab weights import FILE --name dsr_vq")


class NonFiniteDetector(Detector):
    """A model that fits and scores like any other but reports NaN scores, or an infinite value in one map."""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        self.mean = float(np.mean([image.mean() for image in train]))

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        scores = np.array([abs(image.mean() - self.mean) for image in images])
        maps = np.stack([np.abs(cv2.resize(image, (32, 32)).astype(np.float32) - self.mean) for image in images])
        if self.broken == "scores":
            scores[len(scores) // 2] = np.nan
        else:
            maps[0, 3, 4] = np.inf
        return Prediction(scores, maps)

    def resize_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.stack(
            [cv2.resize(mask.astype(np.uint8), (32, 32), interpolation=cv2.INTER_NEAREST) > 0 for mask in masks]
        )

    @property
    def config(self) -> dict:
        return {"model": "non_finite", "deviations": []}


@pytest.mark.parametrize("broken", ["scores", "maps"])
def test_nan_or_infinite_output_fails_the_job_with_the_reason(broken, small_store, monkeypatch, tmp_path):
    entry = ModelEntry(
        "non_finite",
        "Non-finite",
        lambda entry, backbone, settings: NonFiniteDetector(broken),
        {"cpu": {}, "paper": {}},
        missing=lambda backbone: None,  # needs no weights
    )
    monkeypatch.setitem(MODELS, "non_finite", entry)
    job = Job("part1", "non_finite", "", "cpu", 0, "baseline")
    with pytest.raises(NonFiniteScores, match="non_finite produced NaN or infinite anomaly scores"):
        evaluate_job(job, load_part("part1", small_store), tmp_path)
    assert not any(tmp_path.iterdir())  # no heatmap was kept for results that do not exist


def test_a_job_that_raises_is_stored_failed_with_its_reason_and_no_results_while_the_grid_goes_on(small_store):
    failing = Job("part1", "dsr", "", "cpu", 0, "baseline")  # DSR's codebook is not on this machine
    passing = Job("part1", "legacy", "", "cpu", 11, "baseline")
    summary = run_grid([failing, passing], small_store, force=True, show_progress=False)

    assert (summary.finished, summary.failed) == (1, 1)
    table = runs(small_store).set_index("run_id")
    assert table.loc[failing.run_id].status == "failed"
    assert table.loc[failing.run_id].error.startswith(
        "RuntimeError: DSR's pretrained VQ codebook is not on this machine"
    )
    assert _metrics(small_store, failing) == {}
    assert run_image_scores(failing.run_id, small_store).empty and run_artifacts(failing.run_id, small_store).empty
    assert table.loc[passing.run_id].status == "finished"


@pytest.fixture(scope="module")
def wider_store(tmp_path_factory) -> Path:
    """part1 with 60 images: 12 good test images, more than the 10 whose heatmaps are kept."""
    return generated_store(tmp_path_factory.mktemp("wider"), images=60)


def test_heatmaps_are_kept_for_every_defect_and_the_ten_highest_scoring_good_images(wider_store):
    job = plan_grid(["part1"], ["legacy"], None, 1, ["baseline"], "cpu", wider_store)[0]
    assert run_grid([job], wider_store, show_progress=False).finished == 1

    scores = run_image_scores(job.run_id, wider_store)
    kept = set(run_artifacts(job.run_id, wider_store)["image_path"])
    good = scores[scores["label"] == "normal"].sort_values("score", ascending=False)
    assert len(good) == 12 and good["score"].iloc[9] > good["score"].iloc[-1]  # the choice is not arbitrary
    kept_good = good[good["image_path"].isin(kept)]
    left_out = good[~good["image_path"].isin(kept)]
    assert len(kept_good) == 10 and kept_good["score"].min() >= left_out["score"].max()
    defective = set(scores.loc[scores["label"] == "anomalous", "image_path"])
    assert len(defective) == 12 and defective <= kept
    assert kept == defective | set(kept_good["image_path"])
