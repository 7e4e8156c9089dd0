"""Run one job: fit, time, score, measure and keep example heatmaps. Nothing here touches the store."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from statistics import median
from typing import Self

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from lightning.pytorch import seed_everything

from engine.devices import cpu_model, device_name, synchronize
from engine.evaluation.metrics import image_metrics, pixel_metrics
from engine.evaluation.stage_clock import StageClock, backbone_passes
from engine.evaluation.timing import TimingWindow
from engine.ingest.part_data import PartData, study_augmentation
from engine.jobs import Job
from engine.models.anomalib_detector import AUGMENTED_COPIES
from engine.models.base import Detector, Prediction
from engine.models.catalogue import get_model
from engine.models.feature_cache import FeatureCache
from store.runs import RunOutcome

THROUGHPUT_BATCH = 32  # deployments time their exported models at this batch (engine.evaluation.deploy)
# Throughput is timed at each of these batch sizes, after one warm-up batch of that size, and the batch that scores
# the most images per second on the job's device is recorded with it (`environment.timing.throughput_batch`); 1 when
# no batch beats one image at a time. A batch size is timed only where the timed images fill one batch of it: on fewer
# images the pass would form a smaller batch than the one recorded (a part with fewer than 8 test images is timed at a
# batch of all of them). Which batch wins is measured, not assumed: before a job's process kept the memory a pass
# frees (engine.heap), every pass at batch 32 on 2 CPU cores faulted its ~100 MB per image of activations in afresh
# (22,000 to 30,000 page faults per image) and delivered a third to a half of the batch-1 rate.
THROUGHPUT_BATCHES = (8, 32)
# The test images after the timing windows are scored in batches of 8: on 2 CPU cores a batch of 32 256 x 256
# images overflowed the caches and cost PaDiM about 95 ms per image, a batch of 8 about 60 ms (before engine.heap).
SCORING_BATCH = 8
THROUGHPUT_IMAGES = 64  # throughput is timed on (at most) 64 test images, without the feature cache
LATENCY_WARMUP = 3
LATENCY_IMAGES = 20
NORMAL_EXAMPLES = 10  # highest-scoring normal images whose heatmaps are kept, besides every anomalous one
LIBRARIES = ("gluelab", "torch", "torchvision", "anomalib", "timm", "numpy", "albumentations", "scikit-learn")


class NonFiniteScores(ValueError):
    """The model produced NaN or infinite scores."""


class PeakMemory:
    """Largest resident set size of this process while the block runs, sampled every 20 ms."""

    def __enter__(self) -> Self:
        self.peak_bytes = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def environment(device: str = "cpu") -> dict:
    """Library versions and the hardware a run used: `gpu` is the GPU it computed on (None for a CPU run)."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {
        "versions": {name: version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "hardware": {
            "machine": platform.machine(),
            "processor": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "memory_gb": round(total_kb / 2**20, 1),
            "device": device,
            "gpu": device_name(device) if device.startswith("cuda") else None,
        },
    }


def torch_threads() -> tuple[int, int]:
    """This process's torch (intra-op, inter-op) thread counts."""
    return torch.get_num_threads(), torch.get_num_interop_threads()


@dataclass(frozen=True)
class Timing:
    """A fitted model's batch-1 latency and throughput, and the load they were timed under (with, in `load`, the
    `throughput_batch` the throughput was timed at)."""

    inference_ms: float
    throughput_fps: float
    load: dict  # `TimingLoad.record()`: the samples and whether they make the timing contended


def time_inference(detector: Detector, test: list[np.ndarray], device: str = "cpu") -> tuple[Timing, Prediction]:
    """Median batch-1 latency after warm-up (over `LATENCY_IMAGES` test images, or each of fewer once), then throughput at the batch size that serves `device` best, on the plain
    model, while `TimingWindow` watches what else runs on the machine. The clock is read only once `device` has
    finished its queued work (`engine.devices.synchronize`).

    Throughput is timed over `THROUGHPUT_IMAGES` test images (or all, where there are fewer) at each of
    `throughput_batches` (`THROUGHPUT_BATCHES` that the timed images fill), each after one un-timed batch of its size
    (the first pass at a new size pays for its allocations and kernel choices), and the highest rate is kept with its
    batch size; where none beats the batch-1 rate, throughput is that rate at batch 1. Batch-1 latency stays a real
    batch-1 pass from raw image to verdict.

    Every pass, warm-ups included, scores test images of its own (`_TestImages`): the windows take the test images in
    order, so the first ~190 are scored while they are timed and not again after. Returns the timing and the results
    of the test images the windows scored, `test[:n]`.
    """
    images = _TestImages(test)
    with TimingWindow(torch_threads()) as window:
        inference_ms = _batch1_latency_ms(detector, images, device)
        throughput, batch = 1000 / inference_ms, 1
        timed = min(THROUGHPUT_IMAGES, len(test))
        for size in throughput_batches(timed):
            images.timed_pass(detector, size, size, device)
            rate = timed / images.timed_pass(detector, timed, size, device)
            if rate > throughput:
                throughput, batch = rate, size
    assert window.load is not None
    return Timing(inference_ms, throughput, {**window.load.record(), "throughput_batch": batch}), images.scored()


class _TestImages:
    """The test images as the timing windows take them: in order, each pass the next ones, round again once all are
    taken (a part with fewer test images than the windows' passes); the first result of each image is kept."""

    def __init__(self, test: list[np.ndarray]) -> None:
        self.test, self.taken = test, 0
        self.scores: list[float] = []
        self.maps: list[np.ndarray] | None = []

    def timed_pass(self, detector: Detector, count: int, batch_size: int, device: str) -> float:
        """Score the next `count` test images at `batch_size`; the seconds it took, the device synchronised."""
        indices = [(self.taken + offset) % len(self.test) for offset in range(count)]
        images = [self.test[index] for index in indices]
        synchronize(device)
        start = time.perf_counter()
        prediction = detector.predict(images, batch_size=batch_size)
        synchronize(device)
        seconds = time.perf_counter() - start
        new = max(len(self.test) - self.taken, 0)  # the images of this pass not scored before
        self.scores.extend(prediction.scores[:new].tolist())
        if prediction.maps is None:
            self.maps = None
        elif self.maps is not None:
            self.maps.extend(prediction.maps[:new])
        self.taken += count
        return seconds

    def scored(self) -> Prediction:
        """The results of `test[:n]`, the n test images scored so far."""
        maps = None if not self.maps else np.stack(self.maps)
        return Prediction(np.asarray(self.scores), maps)


def throughput_batches(images: int) -> list[int]:
    """The batch sizes throughput is timed at on `images` timed images: those of `THROUGHPUT_BATCHES` that the images
    fill, or one batch of all of them where they fill none."""
    return [size for size in THROUGHPUT_BATCHES if size <= images] or [images]


def _batch1_latency_ms(detector: Detector, images: _TestImages, device: str) -> float:
    """The median of `LATENCY_IMAGES` batch-1 passes after `LATENCY_WARMUP`, or of one per test image where the part
    has fewer (as a deployment is timed, `engine.models.export.time_scorer`): timing an image again adds no case."""
    for _ in range(LATENCY_WARMUP):
        images.timed_pass(detector, 1, 1, device)
    times = [images.timed_pass(detector, 1, 1, device) for _ in range(min(LATENCY_IMAGES, len(images.test)))]
    return 1000 * median(times)


def _save_examples(
    prediction: Prediction, data: PartData, pixel_threshold: float, folder: Path, relative_to: Path
) -> pd.DataFrame:
    """Anomaly map (8-bit PNG, scaled by the run's map range) and predicted mask for the chosen images."""
    if prediction.maps is None:
        return pd.DataFrame()
    normal = np.flatnonzero(data.test_labels == 0)
    top_normal = normal[np.argsort(prediction.scores[normal])[::-1][:NORMAL_EXAMPLES]]
    chosen = sorted(set(np.flatnonzero(data.test_labels == 1)) | set(top_normal))
    low, high = float(prediction.maps.min()), float(prediction.maps.max())
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in chosen:
        anomaly_map = prediction.maps[index]
        scaled = np.round(255 * (anomaly_map - low) / max(high - low, 1e-12)).astype(np.uint8)
        map_path, mask_path = folder / f"{index:04d}_map.png", folder / f"{index:04d}_mask.png"
        cv2.imwrite(str(map_path), scaled)
        cv2.imwrite(str(mask_path), (anomaly_map >= pixel_threshold).astype(np.uint8) * 255)
        rows.append(
            {
                "image_path": data.test_info["image_path"].iloc[index],
                "anomaly_map_path": map_path.relative_to(relative_to).as_posix(),
                "pred_mask_path": mask_path.relative_to(relative_to).as_posix(),
                "map_min": low,
                "map_max": high,
            }
        )
    return pd.DataFrame(rows)


def _with_augmentation(config: dict, job: Job) -> dict:
    if job.condition != "augmented" or "deviations" not in config:
        return config
    drawn = (
        f"augmentations drawn {AUGMENTED_COPIES} times per training image (seeded) and cycled through by epoch,"
        " not afresh every epoch"
    )
    return {**config, "deviations": [*config["deviations"], drawn]}


def build_job_model(job: Job, settings: dict | None = None) -> tuple[Detector, A.Compose | None]:
    """Seed every library with the job's seed and build its model from `settings` (default: the registry's preset);
    with the training augmentation of the job's condition (None for `baseline`)."""
    seed_everything(job.seed, workers=True, verbose=False)
    detector = get_model(job.model).build(job.backbone, job.preset, settings)
    return detector, study_augmentation(job.seed) if job.condition == "augmented" else None


def evaluate_job(
    job: Job,
    data: PartData,
    artifacts_root: Path,
    examples_folder: str | None = None,
    settings: dict | None = None,
    feature_cache: FeatureCache | None = None,
    device: str = "cpu",
) -> RunOutcome:
    """Fit and test `job`'s model on `data`; example heatmaps go to `artifacts_root/<examples_folder>/`.

    The folder defaults to the run id; the grid gives each attempt a folder of its own, so a re-run never
    overwrites the heatmaps of the result it may replace before the new result is stored. `settings` are the
    preset's settings as the grid resolved them (the job's process builds exactly what the grid planned);
    by default they are read from the registry here. With `feature_cache`, the model's frozen backbone
    features come from it while the model fits and while it scores the test set; batch-1 latency and
    throughput are always timed on the plain model (whose results for the timed images are the run's results for
    them), and the load they were timed under goes to the run's `environment.timing` (`time_inference`). A
    learning-curve job (`job.train_size`: fitted on fewer than all training images) is not timed: it is there to
    say how accurate the model is with that many images, its speed is the full run's, and the windows would cost
    each size of a sweep as much as the full run (its latency and throughput are None, `gluelab evaluate --retime`
    times it if wanted). The model computes on `device` (`cpu` or `cuda:N`, see `engine.devices`) where it can; the run records
    the device it used; cached features come back on that device.
    """
    data = data.training_subset(job.train_size, job.seed)
    clock = StageClock()
    with clock.stage("build"):
        detector, augment = build_job_model(job, settings)
        device = detector.to(device)
    detector.report = lambda progress: print(f"  {job.label}: {progress}", file=sys.stderr, flush=True)
    with PeakMemory() as memory:
        start = time.perf_counter()
        with (
            clock.stage("fit"),
            detector.cached_features(feature_cache),
            backbone_passes(clock, detector.frozen_modules(), "backbone_train"),  # the cache's wrappers, if any
        ):
            detector.fit(data.train, augment)
        train_seconds = time.perf_counter() - start
        timing, prediction = None, None
        if job.train_size is None:  # a learning-curve run is there for its accuracy: its speed is the full run's
            with clock.stage("timing"):  # every pass of the windows, the backbone's included
                timing, prediction = time_inference(detector, data.test, device)
        rest = data.test[0 if prediction is None else len(prediction.scores) :]  # the timed images are not scored again
        if rest:
            with (
                clock.stage("scoring"),
                detector.cached_features(feature_cache),
                backbone_passes(clock, detector.frozen_modules(), "backbone_test"),
            ):
                later = detector.predict(rest, batch_size=SCORING_BATCH)
            prediction = later if prediction is None else prediction.followed_by(later)
    assert prediction is not None
    has_maps = prediction.maps is not None
    if not (np.isfinite(prediction.scores).all() and (prediction.maps is None or np.isfinite(prediction.maps).all())):
        raise NonFiniteScores(f"{job.model} produced NaN or infinite anomaly scores")

    with clock.stage("image_metrics"):
        image_level = image_metrics(data.test_labels, prediction.scores)
    image_threshold = image_level["image_threshold"]
    metrics: dict[str, float | None] = {**image_level}
    with clock.stage("pixel_metrics"):
        masks = None if data.test_masks is None or not has_maps else detector.resize_masks(data.test_masks)
    metrics |= pixel_metrics(masks, prediction.maps, clock)
    pixel_threshold = metrics["pixel_threshold"] if masks is not None else None
    if pixel_threshold is None:  # without masks the example masks use the image threshold
        pixel_threshold = image_threshold
    scores = pd.DataFrame(
        {
            "image_path": data.test_info["image_path"],
            "label": data.test_info["label"],
            "score": prediction.scores.astype(float),
            "predicted_anomalous": prediction.scores >= image_threshold,
        }
    )
    with clock.stage("heatmaps"):
        artifacts = _save_examples(
            prediction, data, pixel_threshold, artifacts_root / (examples_folder or job.run_id), artifacts_root
        )
    return RunOutcome(
        metrics=metrics,
        train_seconds=train_seconds,
        inference_ms=None if timing is None else timing.inference_ms,
        throughput_fps=None if timing is None else timing.throughput_fps,
        peak_memory_mb=memory.peak_bytes / 2**20,
        n_train=len(data.train),
        n_test=len(data.test),
        config={
            "job": job.key(),
            "run_id": job.run_id,
            **_with_augmentation(detector.config, job),
            "pixel_metrics_size": None if masks is None else list(masks.shape[1:]),
        },
        environment=environment(device) | ({} if timing is None else {"timing": timing.load}),
        device=device,
        device_name=device_name(device),
        image_scores=scores,
        training=detector.training,
        artifacts=artifacts,
        stages=clock.seconds,
    )


def retime_job(
    job: Job,
    data: PartData,
    settings: dict | None = None,
    feature_cache: FeatureCache | None = None,
    device: str = "cpu",
) -> Timing:
    """Fit `job`'s model again as the run did (same seed, settings, condition and device) and time its inference
    afresh.

    Fitted models are not kept, so the fit is repeated (its features from `feature_cache`, its time not recorded);
    only latency, throughput and their load are measured. The throughput window's results are dropped.
    """
    detector, augment = build_job_model(job, settings)
    device = detector.to(device)
    with detector.cached_features(feature_cache):
        detector.fit(data.training_subset(job.train_size, job.seed).train, augment)
    return time_inference(detector, data.test, device)[0]
