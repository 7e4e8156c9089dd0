"""Throughput means what it says, and GPU runs are their own machine.

Throughput is timed at the batch size that serves the device best, never below what batch 1 delivers without the
reason in words; a store's CUDA runs are labelled as the machine they ran on, apart from the study's RTX 4090.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from dashboard import cached_queries
from engine.analysis import selection
from engine.analysis.recommendation import STUDY_HARDWARE, recommend
from engine.analysis.throughput import candidate_notes, run_note
from engine.cli import main as gluelab
from engine.evaluation.evaluate import (
    LATENCY_IMAGES,
    LATENCY_WARMUP,
    THROUGHPUT_BATCHES,
    THROUGHPUT_IMAGES,
    time_inference,
)
from engine.models.base import Detector, Prediction
from tests.conftest import open_page, run_key, write_finished_run


class Sleeper(Detector):
    """Scores `n` images in `call + per_image * n * (1 + n / crowding)` seconds: a fixed cost per call, and a cost per
    image that grows with the batch once batches crowd the machine (`crowding` images)."""

    def __init__(self, call: float, per_image: float, crowding: float):
        self.call, self.per_image, self.crowding = call, per_image, crowding

    def fit(self, train, augment) -> None:
        pass

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        for start in range(0, len(images), batch_size):
            n = len(images[start : start + batch_size])
            time.sleep(self.call + self.per_image * n * (1 + n / self.crowding))
        return Prediction(np.zeros(len(images)), None)

    def resize_masks(self, masks):
        raise NotImplementedError

    @property
    def config(self) -> dict:
        return {}


IMAGES = [np.zeros((4, 4), np.uint8)] * THROUGHPUT_IMAGES


def test_throughput_is_timed_at_the_batch_that_serves_the_device_best():
    timing, first = time_inference(Sleeper(call=0.004, per_image=0.0002, crowding=1e9), IMAGES)
    assert timing.load["throughput_batch"] == max(THROUGHPUT_BATCHES)  # a cost per call: the biggest batch wins
    assert timing.throughput_fps > 1000 / timing.inference_ms
    assert len(first.scores) == THROUGHPUT_IMAGES


def test_where_no_batch_beats_one_image_at_a_time_throughput_is_the_batch1_rate():
    timing, _ = time_inference(Sleeper(call=0.0, per_image=0.0005, crowding=2), IMAGES)
    assert timing.load["throughput_batch"] == 1
    assert timing.throughput_fps == pytest.approx(1000 / timing.inference_ms)


class Marker(Sleeper):
    """Scores each image by its first pixel, at once."""

    def __init__(self):
        super().__init__(call=0.0, per_image=0.0, crowding=1e9)

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        return Prediction(np.array([float(image[0, 0]) for image in images]), np.stack(images).astype(np.float32))


@pytest.mark.parametrize("test_images", [250, 100])
def test_every_timing_pass_scores_test_images_of_its_own_and_keeps_each_image_s_first_result(test_images):
    """Warm-ups, batch-1 passes and throughput windows take the test images in order, so no image is scored twice
    while another waits; a part with fewer test images than the passes goes round again and keeps the first result."""
    images = [np.full((4, 4), index % 256, np.uint8) for index in range(test_images)]
    _, scored = time_inference(Marker(), images)
    windows = LATENCY_WARMUP + LATENCY_IMAGES + sum(size + THROUGHPUT_IMAGES for size in THROUGHPUT_BATCHES)
    assert len(scored.scores) == min(windows, test_images)
    assert scored.scores.tolist() == [float(index % 256) for index in range(len(scored.scores))]
    assert scored.maps is not None and (scored.maps[:, 0, 0] == scored.scores).all()


@pytest.mark.parametrize("test_images", [LATENCY_IMAGES + 5, 10])
def test_batch1_latency_is_the_median_of_20_passes_or_of_each_test_image_once_where_there_are_fewer(test_images):
    recorder = Recorder()
    time_inference(recorder, [np.zeros((4, 4), np.uint8)] * test_images)
    batch1 = next(index for index, size in enumerate(recorder.batches) if size != 1)  # then throughput's batches
    assert batch1 == LATENCY_WARMUP + min(LATENCY_IMAGES, test_images)


class Recorder(Sleeper):
    """A `Sleeper` that notes the size of every batch it forms."""

    def __init__(self):
        super().__init__(call=0.004, per_image=0.0002, crowding=1e9)
        self.batches: list[int] = []

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        self.batches += [len(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        return super().predict(images, batch_size)


@pytest.mark.parametrize("test_images, recorded", [(12, 8), (5, 5)])
def test_throughput_is_timed_only_at_a_batch_the_test_images_fill_and_records_the_batch_it_formed(
    test_images, recorded
):
    detector = Recorder()
    timing, first = time_inference(detector, IMAGES[:test_images])
    assert timing.load["throughput_batch"] == recorded  # a cost per call: the biggest batch formed wins
    assert max(detector.batches) == recorded  # no pass formed a smaller batch than the one it was timed at
    assert len(first.scores) == test_images


def test_a_throughput_below_the_batch1_rate_says_why():
    old = pd.Series({"run_id": "r1", "inference_ms": 36.3, "throughput_fps": 14.3, "throughput_batch": None})
    assert run_note(old).startswith("below 27.5 images/s at batch 1: timed at batch 32 with no warm-up")
    assert "`gluelab evaluate --retime r1`" in run_note(old)
    assert run_note(old.drop("throughput_batch")) == run_note(old)
    new = pd.Series({"run_id": "r2", "inference_ms": 36.3, "throughput_fps": 27.55, "throughput_batch": 1})
    assert run_note(new) == ""
    table = pd.DataFrame(
        {
            "candidate": ["PaDiM", "DFM", "STFPM (paper)"],
            "source": ["local", "local", "published"],
            "inference_ms_mean": [36.3, 29.2, 10.0],
            "throughput_fps_mean": [14.3, 40.0, 50.0],
        }
    )
    runs = pd.DataFrame([{**old, "candidate": "PaDiM"}, {**new, "candidate": "DFM", "inference_ms": 29.2}])
    notes = candidate_notes(table, runs).set_index("candidate")["note"]
    assert list(notes.index) == ["PaDiM", "STFPM (paper)"]
    assert notes["PaDiM"] == run_note(old) and notes["STFPM (paper)"].startswith("as the study published it")


def test_a_cuda_run_is_its_own_machine_apart_from_the_study_s_rtx_4090_and_the_recommendation_names_it(tmp_path):
    store = tmp_path / "store.duckdb"
    assert gluelab(["load-published", "--store", str(store)]) == 0
    gpu = "NVIDIA GeForce RTX 4090"
    machine = {"processor": "AMD EPYC 7763 64-Core Processor", "cpu_count": 16, "gpu": gpu}
    for model, ms, auroc in (("padim", 4.5, 0.91), ("patchcore", 9.0, 0.95)):
        write_finished_run(
            store, model, run_key(model=model), [0.1], [0.9], 0.5, {"image_auroc": auroc, "pixel_auroc": auroc},
            inference_ms=ms, throughput_fps=500.0, environment={"hardware": machine}, device="cuda:0",
        )  # fmt: skip
    results = cached_queries.part_results_by_hardware(str(store), "stamp", "part1")
    local = results[results["source"] == "local"]
    assert set(local["hardware"]) == {f"{machine['processor']}, 16 CPUs, and {gpu}"}
    assert set(results.loc[results["source"] != "local", "hardware"]) == {STUDY_HARDWARE}
    assert all("cuda:0" in candidate for candidate in local["candidate"])

    baseline = results[(results["condition"] == "baseline") & results["metric"].isin(["inference_ms", "image_auroc"])]
    candidates = selection.candidate_table(baseline, ["source", "candidate", "hardware"])
    speed = selection.Criterion("inference_ms", "min")
    auroc = selection.Criterion("image_auroc", "max")
    per_machine = selection.select_per_hardware(candidates, [speed, auroc])
    local_machine = f"{machine['processor']}, 16 CPUs, and {gpu}"
    assert set(per_machine) == {local_machine, STUDY_HARDWARE}
    card = recommend(per_machine[local_machine], ["part1"], auroc, {"image_auroc": "Image AUROC"})
    assert card is not None and card.hardware == local_machine
    assert f"timed on {local_machine}" in card.why and f"measured here on {local_machine}" in card.figures
    study = recommend(per_machine[STUDY_HARDWARE], ["part1"], auroc, {"image_auroc": "Image AUROC"})
    assert study is not None and f"timed on {STUDY_HARDWARE}" in study.why


def test_the_runtime_page_says_why_a_throughput_is_below_the_batch1_rate(tmp_path, monkeypatch):
    """A run from before the batch was chosen (batch 32, no warm-up) keeps its figure, with the reason beside it."""
    store = tmp_path / "store.duckdb"
    machine = {"processor": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "cpu_count": 2, "gpu": None}
    write_finished_run(
        store, "old", run_key(model="padim"), [0.1], [0.9], 0.5, {"image_auroc": 0.9},
        inference_ms=36.3, throughput_fps=14.3, environment={"hardware": machine},
    )  # fmt: skip
    app = open_page(store, "runtime.py", monkeypatch)
    text = "\n".join(str(block.value) for block in app.markdown)
    assert "Throughput below the batch-1 rate" in text and "timed at batch 32 with no warm-up" in text
    runs = next(frame.value for frame in app.dataframe if "throughput_note" in frame.value.columns)
    assert runs.set_index("run_id").loc["old", "throughput_note"].startswith("below 27.5 images/s at batch 1")
