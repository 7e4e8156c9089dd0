"""`gluelab deploy`: export a finished run's model, check it scores as the eager model does, time it, record it.

A run keeps its figures, scores and heatmaps but not its fitted weights, so the model is fitted again from
the run's stored config (the preset settings it ran with, `config.settings`) and seed, exactly as the
evaluation fitted it (`evaluate.build_job_model`, the store's feature cache, the condition's augmentation).
Memory-bank models refit to the same scores; a gradient-trained run stopped by its time budget is refitted
for exactly the epochs it trained (`replay_epochs`). The refitted model must reproduce the run's stored
test scores (within `SCORE_TOLERANCE`), or nothing is exported: it would not be the run's model.

The model is exported with anomalib's exporters (`engine.models.export`) into a temporary folder beside
`--out`. Each runtime that reads the format then scores every test image of the part, and must give the eager
scores within `SCORE_TOLERANCE`; then it is timed like the evaluation times the eager model (median batch-1
latency after warm-up, throughput at batch 32), and the eager model is timed again in the same session for a
like-for-like ratio. Only when all of that succeeded is the folder moved to `--out` and the figures stored,
in one transaction; any failure leaves the store and `--out` as they were.

With it go the exported files' sha256 (`gluelab inspect` refuses a file changed since) and the operating point the
line is scored at (`LinePoint`: `gluelab deploy` gives the run's least-cost threshold on the line, as Line stops
chooses it, with the run's test-set false-alarm and miss rates there, from which a watch expects its alarm rate).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.evaluation.evaluate import (
    LATENCY_IMAGES,
    LATENCY_WARMUP,
    THROUGHPUT_BATCH,
    build_job_model,
    environment,
)
from engine.ingest.part_data import PartData, load_part
from engine.jobs import Job
from engine.models.anomalib_detector import AnomalibDetector
from engine.models.base import Detector
from engine.models.export import (
    ExportError,
    Scorer,
    Timing,
    check_format,
    export_module,
    first_line,
    images_to_input,
    input_size,
    open_runtime,
    runtime_versions,
    time_scorer,
)
from engine.models.feature_cache import FeatureCache, feature_cache_dir, limit_from_environment
from store import DEFAULT_STORE
from store.deployments import RUNTIMES, Deployment, LinePoint, finished_run, record_deployments, run_thresholds
from store.runs import run_image_scores

# Exported and eager image scores may differ by this much relative to the score (absolutely for scores below 1):
# float32 kernels of another library sum in another order. Measured: PaDiM's scores (about 500) moved by 6e-4.
SCORE_TOLERANCE = 1e-3
DESCRIPTION = "deployment.json"  # beside the exported file: what it takes and returns, how it was checked


@dataclass(frozen=True)
class DeploymentResult:
    run_id: str
    label: str  # the run in words, e.g. "part1 padim/tf_efficientnet_lite0 seed 0 baseline"
    fmt: str
    path: Path  # the exported model file, under --out
    refit_difference: float  # largest |refitted - stored| test score
    deployments: list[Deployment]
    point: LinePoint | None  # where the line is scored (None: at the run's F1-optimal threshold)


def files_sha256(folder: Path) -> str:
    """sha256 over the exported model's files in `folder` (names and contents, in name order), not its description."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != DESCRIPTION:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def score_differences(scores: np.ndarray, reference: np.ndarray) -> tuple[float, bool]:
    """The largest |scores - reference|, and whether every difference is within `SCORE_TOLERANCE` (relative to
    the reference score, absolute below 1)."""
    difference = np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))
    allowed = SCORE_TOLERANCE * np.maximum(1.0, np.abs(reference))
    return float(difference.max(initial=0.0)), bool((difference <= allowed).all())


def job_of(run: dict) -> tuple[Job, dict]:
    """The run's job and the preset settings it ran with (from its config)."""
    config = json.loads(run["config"])
    job = Job(**config["job"])
    settings = dict(config.get("settings") or {})
    if run.get("stop_reason") == "budget":  # wall-clock minutes would train another number of epochs here
        settings["replay_epochs"] = int(run["epochs"])
    return job, settings


def refit(run: dict, data: PartData, store: Path | str) -> AnomalibDetector:
    """The run's model fitted again from its stored config and seed; ExportError for a model anomalib cannot export."""
    job, settings = job_of(run)
    detector, augment = build_job_model(job, settings or None)
    if not isinstance(detector, AnomalibDetector):
        raise ExportError(
            f"{job.model} cannot be exported: it is not an anomalib model (the rule-based legacy camera check has no "
            "network to export)"
        )
    limit = limit_from_environment()
    cache = FeatureCache(feature_cache_dir(store), limit) if limit > 0 else None
    with detector.cached_features(cache):
        detector.fit(data.training_subset(job.train_size, job.seed).train, augment)
    return detector


def refit_as_evaluated(run: dict, data: PartData, store: Path | str) -> tuple[AnomalibDetector, np.ndarray, float]:
    """`refit`, confirmed: the refitted model, its scores of the part's test images and their largest difference from
    the run's stored scores, which must be within `SCORE_TOLERANCE` (`score_differences`); ExportError naming the run
    otherwise."""
    detector = refit(run, data, store)
    eager = detector.predict(data.test, batch_size=THROUGHPUT_BATCH).scores
    difference, same = score_differences(eager, _stored_scores(run["run_id"], data, store))
    if not same:
        raise ExportError(
            f"{run['model']}: refitting run {run['run_id']} from its config and seed did not reproduce its stored test "
            f"scores (largest difference {difference:.3g}); re-run the job (`gluelab evaluate --force`) and use that run"
        )
    return detector, eager, difference


def _stored_scores(run_id: str, data: PartData, store: Path | str) -> np.ndarray:
    stored = run_image_scores(run_id, store).set_index("image_path")["score"]
    return stored.reindex(data.test_info["image_path"]).to_numpy(np.float64)


def _eager_scorer(detector: Detector) -> Callable[[list[np.ndarray]], np.ndarray]:
    return lambda images: detector.predict(images, batch_size=len(images)).scores


def _checked_and_timed(
    exported: Path, runtime: str, images: list[np.ndarray], size: tuple[int, int] | None, what: str
) -> tuple[Timing, np.ndarray]:
    """The exported file timed in `runtime` (`_timing`) and its scores of every image in `images`: the throughput
    passes' scores, then the images after them at `THROUGHPUT_BATCH`. So the file runs at batch 1 and at that batch,
    the batch sizes it is timed at, and no image is scored twice for the check. ExportError when the runtime cannot
    load or run the file (e.g. a batch size that the exporter fixed while tracing)."""
    try:
        score = _on_gray_images(open_runtime(exported, runtime), size)
        timing, scores = _timing(score, images)
        rest = images[len(scores) :]
        scores = np.concatenate(
            [
                scores,
                *(score(rest[first : first + THROUGHPUT_BATCH]) for first in range(0, len(rest), THROUGHPUT_BATCH)),
            ]
        )
    except Exception as error:  # noqa: BLE001 - each runtime raises its own error classes
        raise ExportError(f"{what} does not run in {runtime}: {first_line(error)}") from error
    return timing, scores


def _on_gray_images(scorer: Scorer, size: tuple[int, int] | None) -> Callable[[list[np.ndarray]], np.ndarray]:
    """An exported model's scorer taking 8-bit grayscale images, their conversion to its input included."""
    return lambda images: scorer(images_to_input(images, size))


def _timing(score: Callable[[list[np.ndarray]], object], images: list[np.ndarray]) -> tuple[Timing, np.ndarray]:
    return time_scorer(score, images, LATENCY_WARMUP, LATENCY_IMAGES, THROUGHPUT_BATCH)


def deploy_run(
    run_id: str,
    fmt: str,
    out: Path | str,
    store: Path | str = DEFAULT_STORE,
    report: Callable[[str], None] = lambda message: None,
    point: LinePoint | None = None,
) -> DeploymentResult:
    """Export run `run_id`'s model as `fmt` into `out`, time it in each runtime that reads `fmt`, record it.

    Raises ValueError for an unknown format or run, or a run that did not finish; ExportError (a ValueError)
    naming the model when it cannot be exported or its file does not score as the eager model does.
    """
    check_format(fmt)
    run = finished_run(run_id, store)
    job, _ = job_of(run)
    thresholds = run_thresholds(run_id, store)
    if thresholds["image_threshold"] is None:
        raise ValueError(f"run {run_id!r} has no image threshold in {store}")
    data = load_part(job.part, store)
    report(f"refitting {job.label} from its stored config and seed")
    detector, eager, refit_difference = refit_as_evaluated(run, data, store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".deploy-{uuid.uuid4().hex[:8]}"
    try:
        report(f"exporting {job.model} to {fmt} with anomalib")
        image_size, resized = input_size(data.test + data.train, (detector.input_size[0], detector.input_size[1]))
        pixel_threshold = thresholds["pixel_threshold"]
        try:
            exported = export_module(
                detector.module,
                fmt,
                staging,
                (int(image_size[0]), int(image_size[1])),
                float(thresholds["image_threshold"]),
                float(thresholds["image_threshold"] if pixel_threshold is None else pixel_threshold),
            )
        except ExportError as error:
            raise ExportError(f"{job.model} cannot be exported to {fmt}: {error}") from error
        final = out / exported.relative_to(staging)
        report("timing the eager model")
        eager_timing, _ = _timing(_eager_scorer(detector), data.test)
        deployments = []
        for runtime in RUNTIMES[fmt]:
            report(f"checking and timing {runtime}")
            timing, scores = _checked_and_timed(
                exported,
                runtime,
                data.test,
                image_size if resized else None,
                f"{job.model} cannot be deployed as {fmt}: the exported file",
            )
            difference, same = score_differences(scores, eager)
            if not same:
                raise ExportError(
                    f"{job.model} exported to {fmt} scores differently in {runtime}: largest difference "
                    f"{difference:.3g} from the eager model's scores (allowed: {SCORE_TOLERANCE:g} relative)"
                )
            deployments.append(
                Deployment(
                    runtime,
                    timing.latency_ms,
                    timing.throughput_fps,
                    eager_timing.latency_ms,
                    difference,
                    str(final.resolve()),
                )
            )
        _describe(exported.parent, run, job, fmt, image_size, resized, thresholds, deployments, point)
        digest = files_sha256(exported.parent)
        _move_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run_environment = environment()
    run_environment["versions"].update(runtime_versions())
    try:
        record_deployments(run_id, fmt, deployments, run_environment, store, digest, point)
    except Exception:
        shutil.rmtree(final.parent, ignore_errors=True)  # the store has no record of it: leave no file behind
        raise
    return DeploymentResult(run_id, job.label, fmt, final, refit_difference, deployments, point)


def _describe(
    folder: Path,
    run: dict,
    job: Job,
    fmt: str,
    image_size: tuple[int, int],
    resized: bool,
    thresholds: dict,
    deployments: list[Deployment],
    point: LinePoint | None,
) -> None:
    """`deployment.json` beside the exported file: what it takes, what it returns and how it was checked."""
    description = {
        "run_id": run["run_id"],
        "run": job.key(),
        "format": fmt,
        "input": {
            "name": "input",
            "shape": ["batch", 3, *image_size],
            "dtype": "float32",
            "range": "RGB in [0, 1] at the part's image size (a grayscale image repeated on 3 channels); the run's"
            " resize and normalisation are inside the graph"
            if not resized
            else "RGB in [0, 1] (a grayscale image repeated on 3 channels) at the model's input size: the part's"
            " images differ in size, so each frame is first resized to it on the host with torch's antialiased"
            " bilinear resize, as the run did; the run's normalisation is inside the graph",
            "resize_on_host": resized,
        },
        "outputs": {
            "pred_score": "raw anomaly score, as the run's per-image scores",
            "pred_label": "pred_score >= image_threshold",
            "anomaly_map": "raw anomaly map at the model's resolution (models with maps)",
            "pred_mask": "anomaly_map >= pixel_threshold (models with maps)",
        },
        "thresholds": thresholds,
        "line": None if point is None else {"threshold": point.threshold, **point.line},
        "score_tolerance": SCORE_TOLERANCE,
        "runtimes": [deployment.__dict__ for deployment in deployments],
    }
    (folder / DESCRIPTION).write_text(json.dumps(description, indent=2, default=str))


def _move_into(staging: Path, out: Path) -> None:
    """Move the staged `weights/<format>/` folder into `out`, replacing an earlier export of that format."""
    for folder in (staging / "weights").iterdir():
        target = out / "weights" / folder.name
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)
