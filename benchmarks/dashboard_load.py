"""Print how long each dashboard page takes to load its data from a store of 100,000 runs (target: < 1 s per page).

The store is synthetic load: every metric, score and timing in it is a random draw, never a result. Its
finished runs fill the grid parts x model/backbone pairs x presets x conditions x seeds part by part, as
many parts as the runs need, each run with the metrics, runtime columns, per-image scores and kept
examples the engine records; beside them the parts' datasets and images (paths to no file) and the
published figures.

First it shows that a write to the store changes `cached_queries.stamp` and makes the loaders reload. Then every
page is rendered through Streamlit's AppTest on a cleared cache and rerun: the time spent in the
`dashboard.cached_queries` loaders is the page's data time, the figure held to 1 s.

Like the dashboard it measures, it loads no torch: models and their backbones come from the model registry
(light until a model is built), presets and conditions from the store; the metric ranges drawn and the
environment fields the engine records are spelled out here, and
tests/test_benchmarks.py checks that they agree with the engine.

    .venv/bin/python benchmarks/dashboard_load.py [--runs 100000] [--seeds 5] [--store FILE] [--reuse]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from itertools import islice, product
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import streamlit as st
import streamlit.logger
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from engine.ingest.synthetic.plant import DEFAULT_IMAGES, plan_part
from engine.models.catalogue import MODELS
from store import DatasetRecord, ImageRecord, dataset_parts, register_dataset
from store.connection import insert_frame, write_store
from store.published import load_published_results
from store.queries import run_status_counts
from store.runs import CONDITIONS, PRESETS, RUN_KEY

# Cached loaders called here and in AppTest warn on every call that no Streamlit server runs: errors only.
streamlit_config.get_config_options()
streamlit_config.set_option("logger.level", "error")
streamlit.logger.set_log_level("error")

from dashboard import cached_queries  # noqa: E402  (after the logger is quietened: importing it registers the loaders)

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
VIEWS = APP.parent / "views"
DEFAULT_STORE_FILE = Path(tempfile.gettempdir()) / "gluelab_dashboard_load.duckdb"
SYNTHETIC_SOURCE = "synthetic load of benchmarks/dashboard_load.py: random draws, not results"
TARGET_SECONDS = 1.0
RENDER_TIMEOUT_SECONDS = 300
# engine.evaluation.metrics IMAGE_METRICS + PIXEL_METRICS, drawn uniformly; image_threshold is each run's, drawn with its scores
METRIC_RANGES = {
    "image_auroc": (0.5, 1.0),
    "image_f1": (0.6, 1.0),
    "fpr_at_full_recall": (0.0, 1.0),
    "pixel_auroc": (0.7, 1.0),
    "pixel_f1": (0.05, 0.7),
    "pixel_threshold": (0.2, 5.0),
    "aupro": (0.3, 1.0),
}
INTERVAL_METRICS = ("image_auroc_low", "image_auroc_high")
# engine.evaluation.evaluate keeps the heatmaps of every defective image and of the 10 highest-scoring good ones
NORMAL_EXAMPLES = 10
ENVIRONMENT = {  # the shape of engine.evaluation.evaluate.environment()
    "versions": {"gluelab": "synthetic-load"},
    "python": platform.python_version(),
    "hardware": {
        "machine": platform.machine(),
        "processor": "synthetic-load CPU",
        "cpu_count": os.cpu_count(),
        "torch_threads": 2,
        "memory_gb": 24.0,
        "device": "cpu",
        "gpu": None,
    },
}
RUNS_PER_WRITE = 5000
FIRST_START = pd.Timestamp("2026-01-05 06:00")
PART = "part1"  # the part pages open on: the first one


def grid_runs(n_runs: int, n_seeds: int) -> pd.DataFrame:
    """Run id and key of the first `n_runs` jobs of the grid, run part by part like `gluelab evaluate`."""
    pairs = [(name, backbone) for name, entry in MODELS.items() for backbone in entry.backbones or ("",)]
    runs_per_part = len(pairs) * len(PRESETS) * len(CONDITIONS) * n_seeds
    parts = [f"part{number}" for number in range(1, -(-n_runs // runs_per_part) + 1)]
    jobs = (
        {"part": part, "model": model, "backbone": backbone, "preset": preset, "seed": seed, "condition": condition}
        for part, preset, (model, backbone), condition, seed in product(
            parts, PRESETS, pairs, CONDITIONS, range(n_seeds)
        )
    )
    keys = pd.DataFrame(list(islice(jobs, n_runs)), columns=list(RUN_KEY))
    run_ids = [hashlib.sha1("|".join(map(str, key)).encode()).hexdigest()[:16] for key in keys.itertuples(index=False)]
    keys.insert(0, "run_id", run_ids)  # as engine.jobs.Job.run_id
    return keys


def synthetic_images(rng: np.random.Generator) -> list[ImageRecord]:
    """The images of a default synthetic part (engine.ingest.synthetic.plant's plan) with drawn brightness and defect sizes."""
    records = []
    for plan in plan_part(DEFAULT_IMAGES):
        brightness = float(rng.normal(95, 25))
        defective = plan.defect_type != "good"
        records.append(
            ImageRecord(
                image_path=plan.image_path,
                split=plan.split,
                label="anomalous" if defective else "normal",
                defect_type=plan.defect_type,
                mask_path=plan.mask_path or None,
                width=640,
                height=480,
                original_mode="L",
                mean_brightness=round(brightness, 3),
                over_exposed=brightness > 140,
                region=plan.region or None,
                severity=plan.severity or None,
                defect_area_px=int(rng.integers(200, 4000)) if defective else None,
                exposure_stops=round(float(rng.normal(0, 0.5)), 4),
            )
        )
    return records


def finished_runs(keys: pd.DataFrame, n_train: int, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    """The runs table rows: finished one after the other, with drawn timings and the engine's config and environment."""
    n = len(keys)
    train_seconds = rng.lognormal(np.log(90), 1.0, n)
    inference_ms = rng.lognormal(np.log(40), 0.8, n)
    seconds = train_seconds + n_test * inference_ms / 1000 + 5
    started_at = FIRST_START + pd.to_timedelta(np.cumsum(seconds) - seconds, unit="s")
    key_columns = list(RUN_KEY)
    configs = [
        json.dumps(
            {
                "job": dict(zip(key_columns, key, strict=True)),
                "run_id": run_id,
                "image_size": [256, 256],
                "batch_size": 32,
                "deviations": [],
            },
            sort_keys=True,
        )
        for run_id, *key in keys[["run_id", *key_columns]].itertuples(index=False)
    ]
    return keys.assign(
        status="finished",
        error=None,
        host="synthetic-load",
        pid=rng.integers(1000, 60000, n),
        started_at=started_at,
        finished_at=started_at + pd.to_timedelta(seconds, unit="s"),
        train_seconds=train_seconds,
        inference_ms=inference_ms,
        throughput_fps=1000 / inference_ms * rng.uniform(1.5, 4.0, n),
        peak_memory_mb=rng.normal(1500, 400, n).clip(300),
        n_train=n_train,
        n_test=n_test,
        config=configs,
        environment=json.dumps(ENVIRONMENT, sort_keys=True),
    )


def write_run_batch(store: Path, runs: pd.DataFrame, test_images: pd.DataFrame, rng: np.random.Generator) -> int:
    """Write `runs` with their metrics, per-image scores and kept examples in one transaction; returns score rows."""
    n, n_images = len(runs), len(test_images)
    defective = (test_images["label"] == "anomalous").to_numpy()
    separation = rng.uniform(0.3, 3.5, n)
    thresholds = separation / 2 + rng.normal(0, 0.2, n)
    scores = rng.normal(size=(n, n_images)) + separation[:, None] * defective[None, :]
    run_ids = runs["run_id"].to_numpy()

    drawn = {"image_threshold": thresholds} | {
        name: rng.uniform(low, high, n) for name, (low, high) in METRIC_RANGES.items()
    }
    low, high = INTERVAL_METRICS  # image AUROC's 95 % interval over the test images, drawn around it
    drawn[low] = np.clip(drawn["image_auroc"] - rng.uniform(0.02, 0.15, n), 0.0, 1.0)
    drawn[high] = np.minimum(drawn["image_auroc"] + rng.uniform(0.01, 0.1, n), 1.0)
    metrics = pd.DataFrame(
        {
            "run_id": np.repeat(run_ids, len(drawn)),
            "metric": np.tile(list(drawn), n),
            "value": np.column_stack(list(drawn.values())).ravel(),
        }
    )
    image_scores = pd.DataFrame(
        {
            "run_id": np.repeat(run_ids, n_images),
            "image_path": np.tile(test_images["image_path"].to_numpy(), n),
            "label": np.tile(test_images["label"].to_numpy(), n),
            "score": scores.ravel(),
            "predicted_anomalous": (scores >= thresholds[:, None]).ravel(),
        }
    )
    normal = np.flatnonzero(~defective)
    top_normal = normal[np.argsort(-scores[:, normal], axis=1)[:, :NORMAL_EXAMPLES]]
    kept = np.sort(np.hstack([np.broadcast_to(np.flatnonzero(defective), (n, defective.sum())), top_normal]), axis=1)
    kept_runs = np.repeat(run_ids, kept.shape[1])
    kept_indices = kept.ravel()
    artifacts = pd.DataFrame(
        {
            "run_id": kept_runs,
            "image_path": test_images["image_path"].to_numpy()[kept_indices],
            "anomaly_map_path": [
                f"{run_id}/{index:04d}_map.png" for run_id, index in zip(kept_runs, kept_indices, strict=True)
            ],
            "pred_mask_path": [
                f"{run_id}/{index:04d}_mask.png" for run_id, index in zip(kept_runs, kept_indices, strict=True)
            ],
            "map_min": 0.0,
            "map_max": np.repeat(rng.uniform(1, 10, n), kept.shape[1]),
        }
    )
    with write_store(store) as con:
        insert_frame(con, "runs", runs)
        insert_frame(con, "metrics", metrics)
        insert_frame(con, "image_scores", image_scores)
        insert_frame(con, "artifacts", artifacts)
    return len(image_scores)


def build_store(store: Path, n_runs: int, n_seeds: int) -> None:
    print(f"Building {store}: {n_runs:,} runs of SYNTHETIC LOAD (random draws, never results) ...", flush=True)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    keys = grid_runs(n_runs, n_seeds)
    parts = keys["part"].unique()
    for part in parts:
        images = synthetic_images(rng)
        register_dataset(
            DatasetRecord(part, "mvtec", f"/synthetic-load/{part}", SYNTHETIC_SOURCE, len(images), True, True),
            images,
            store,
        )
    # every part follows the same plan, so all share these test images and labels
    test_images = pd.DataFrame(
        [(i.image_path, i.label) for i in images if i.split == "test"], columns=["image_path", "label"]
    )
    runs = finished_runs(keys, len(images) - len(test_images), len(test_images), rng)
    score_rows = 0
    for first in range(0, n_runs, RUNS_PER_WRITE):
        score_rows += write_run_batch(store, runs.iloc[first : first + RUNS_PER_WRITE], test_images, rng)
        print(
            f"  {min(first + RUNS_PER_WRITE, n_runs):,} runs written ({time.perf_counter() - start:.0f} s)", flush=True
        )
    load_published_results(store)
    pairs = len(runs[["model", "backbone"]].drop_duplicates())
    print(
        f"Built in {time.perf_counter() - start:.1f} s: {len(parts)} parts, "
        f"up to {runs['part'].value_counts().max():,} runs each"
    )
    print(f"  {pairs} model/backbone pairs x {len(PRESETS)} presets x {len(CONDITIONS)} conditions x {n_seeds} seeds")
    print(f"  {score_rows:,} per-image scores, {len(test_images)} test images per run")


def is_synthetic_store(store: Path) -> bool:
    sources = dataset_parts(store)["source"]
    return not sources.empty and (sources == SYNTHETIC_SOURCE).all()


class DataTimer:
    """Times every `dashboard.cached_queries` loader the pages call, counting only the outermost call of a nest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth = 0

    def wrap(self, loader: Callable) -> Callable:
        @functools.wraps(loader)
        def timed(*args, **kwargs):
            self._depth += 1
            start = time.perf_counter()
            try:
                return loader(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds[loader.__name__] = self.seconds.get(loader.__name__, 0.0) + time.perf_counter() - start

        return timed

    def install(self) -> None:
        """Replace the module's loaders (cached reads and the helpers built on them) with timed ones."""
        for name, loader in vars(cached_queries).items():
            if (
                callable(loader)
                and getattr(loader, "__module__", None) == cached_queries.__name__
                and name != "store_path"
            ):
                setattr(cached_queries, name, self.wrap(loader))

    def total(self) -> float:
        return sum(self.seconds.values())


def time_pages(store: str) -> None:
    """Each page rendered through Streamlit's AppTest on a cleared cache, then rerun (cached).

    The data figure is the time spent inside `dashboard.cached_queries` loaders during the render, which is what the
    page waits for from the store; the render figure adds building the page and its charts.
    """
    os.environ["GLUELAB_STORE"] = store
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # the images are paths to no file
    timer = DataTimer()
    timer.install()
    print(f"\nPer page, cold cache then cached rerun (PASS: data under {TARGET_SECONDS:.0f} s cold)")
    print(
        f"{'page':16s} {'data s':>7s} {'render s':>8s} {'data s':>7s} {'render s':>8s} verdict  cold data s per loader"
    )
    for page in sorted(VIEWS.glob("*.py")):
        st.cache_data.clear()
        app = AppTest.from_file(str(APP), default_timeout=RENDER_TIMEOUT_SECONDS)
        app.switch_page(f"views/{page.name}")
        figures = []
        for _ in ("cold", "warm"):
            timer.seconds = {}
            start = time.perf_counter()
            app.run()
            figures.append((timer.total(), time.perf_counter() - start, dict(timer.seconds)))
            if app.exception:
                print(f"{page.stem}: exception: {'; '.join(e.message for e in app.exception)}")
        (cold_data, cold_render, loaders), (warm_data, warm_render, _) = figures
        verdict = "PASS" if cold_data < TARGET_SECONDS else "FAIL"
        slowest = ", ".join(
            f"{name} {seconds:.2f}" for name, seconds in sorted(loaders.items(), key=lambda item: -item[1])
        )
        print(
            f"{page.stem:16s} {cold_data:7.3f} {cold_render:8.2f} {warm_data:7.3f} {warm_render:8.2f} {verdict}     {slowest}"
        )


def show_invalidation(store: str) -> None:
    cached_stamp = cached_queries.stamp(store)
    cached_queries.part_results(store, cached_stamp, PART)
    start = time.perf_counter()
    cached_queries.part_results(store, cached_stamp, PART)
    cached = time.perf_counter() - start
    cached_queries.stamp.clear()  # read the stamp afresh, so its ttl starts now
    before = cached_queries.stamp(store)
    load_published_results(store)
    within_ttl = cached_queries.stamp(store)
    time.sleep(cached_queries.STAMP_SECONDS + 0.5)
    after = cached_queries.stamp(store)
    start = time.perf_counter()
    cached_queries.part_results(store, after, PART)
    reload = time.perf_counter() - start
    print(f"\nInvalidation: a write (load_published_results) moved the store stamp {before} -> {after}")
    print(
        f"  read again at once, cached_queries.stamp still gave the {'cached old' if within_ttl == before else 'NEW'} stamp "
        f"(ttl {cached_queries.STAMP_SECONDS} s); {cached_queries.STAMP_SECONDS + 0.5} s later: "
        + ("the new one" if after != before else "UNCHANGED")
    )
    print(
        f"  cached_queries.part_results({PART}): {cached:.3f} s from the cache on the old stamp, {reload:.3f} s reloaded on the new one"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="finished runs in the store")
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds per job; fewer seeds spread the runs over more parts"
    )
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE_FILE)
    parser.add_argument(
        "--reuse", action="store_true", help="benchmark the store an earlier run built (built when missing)"
    )
    args = parser.parse_args()
    store = args.store
    if store.exists() and not is_synthetic_store(store):
        parser.error(f"{store} is not a store this benchmark built; pass another --store")
    if args.reuse and store.exists():
        runs = run_status_counts(store)["runs"].sum()
        print(f"Reusing {store}: {runs:,} runs of SYNTHETIC LOAD (random draws, never results)")
    else:
        store.unlink(missing_ok=True)
        Path(f"{store}.wal").unlink(missing_ok=True)
        build_store(store, args.runs, args.seeds)
    print(f"Store file: {store.stat().st_size / 2**20:,.0f} MiB")
    show_invalidation(str(store))
    time_pages(str(store))


if __name__ == "__main__":
    main()
