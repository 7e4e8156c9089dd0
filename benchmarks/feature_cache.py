"""Print what the frozen-feature cache saves, measured in one run on a generated part.

Targets: a grid of PaDiM + PatchCore + DFM + DFKDE with a warm cache costs at most 1.5x PaDiM alone;
a FastFlow training epoch with its backbone features cached costs at least 5x less than without;
a cached grid's peak memory on a 300-image part stays under 4 GB.

Grids run through the engine's own runner (`run_grid`, a process per job, `cpu` presets, one seed),
so their times include everything a user waits for. PaDiM alone runs without the cache.

.venv/bin/python benchmarks/feature_cache.py [--images 300] [--fastflow-epochs 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from engine.cli import main as gluelab
from engine.evaluation.evaluate import evaluate_job
from engine.evaluation.grid import run_grid
from engine.ingest.part_data import load_part
from engine.jobs import Job, plan_grid
from engine.models.anomalib_detector import AnomalibDetector, TrainImages
from engine.models.catalogue import get_model
from engine.models.feature_cache import FeatureCache, feature_cache_dir
from store.runs import runs

MODELS = ["padim", "patchcore", "dfm", "dfkde"]
BACKBONE = "tf_efficientnet_lite0"


def grid_seconds(store: Path, models: list[str], cache_gb: float) -> float:
    jobs = plan_grid(["part1"], models, None, 1, ["baseline"], "cpu", store)
    start = time.perf_counter()
    summary = run_grid(jobs, store, force=True, show_progress=False, feature_cache_gb=cache_gb)
    if summary.failed:
        raise SystemExit(f"{summary.failed} of the grid's jobs failed; see `gluelab runs --store {store}`")
    return time.perf_counter() - start


def fastflow_epoch_seconds(store: Path, out: Path, epochs: int, cache: FeatureCache | None) -> list[float]:
    """Seconds per training epoch of FastFlow at its `cpu` settings, trained for a fixed `epochs`."""
    settings = {k: v for k, v in get_model("fastflow").presets["cpu"].items() if k != "budget_minutes"}
    settings["epochs"] = epochs
    job = Job("part1", "fastflow", BACKBONE, "cpu", 0, "baseline")
    outcome = evaluate_job(job, load_part("part1", store), out, "fastflow", settings, cache)
    assert outcome.training is not None
    ends = [0.0, *outcome.training.seconds]
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def fastflow_backbone_seconds(store: Path) -> float:
    """Seconds FastFlow's frozen backbone takes over one epoch's training images: all a cache can save per epoch."""
    entry = get_model("fastflow")
    settings = entry.presets["cpu"]
    detector = entry.build(BACKBONE, "cpu", settings)
    assert isinstance(detector, AnomalibDetector)
    model = detector.module.model
    (path,) = entry.frozen_paths(settings)
    backbone = model.get_submodule(path).eval()
    images = TrainImages(load_part("part1", store).train, None, detector.transform)
    inputs = torch.stack([images.pixels(i) for i in range(len(images))])
    start = time.perf_counter()
    with torch.no_grad():
        for batch in inputs.split(settings["batch_size"]):
            backbone(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--fastflow-epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = root / "store.duckdb"
        quiet = ["--out", str(root / "data"), "--store", str(store)]
        assert gluelab(["generate", "--parts", "part1", "--images", str(args.images), *quiet]) == 0
        cache_folder = feature_cache_dir(store)

        padim_alone = grid_seconds(store, ["padim"], 0)
        uncached = grid_seconds(store, MODELS, 0)
        cold = grid_seconds(store, MODELS, 10)
        warm = grid_seconds(store, MODELS, 10)
        peak = runs(store).query("model in @MODELS")["peak_memory_mb"].max()
        print(f"part1, {args.images} images, cpu presets, one seed, {BACKBONE}; grid = {' + '.join(MODELS)}")
        print(f"  PaDiM alone, no cache       {padim_alone:7.1f} s")
        print(f"  grid, cache off             {uncached:7.1f} s  ({uncached / padim_alone:.2f}x PaDiM alone)")
        print(f"  grid, cache cold            {cold:7.1f} s  ({cold / padim_alone:.2f}x PaDiM alone)")
        print(f"  grid, cache warm            {warm:7.1f} s  ({warm / padim_alone:.2f}x PaDiM alone; target <= 1.5x)")
        print(f"  cache on disk               {FeatureCache(cache_folder).size_bytes() / 2**20:7.1f} MB")
        print(f"  peak memory of a cached job {peak:7.0f} MB (target < 4096 MB)")

        shutil.rmtree(cache_folder, ignore_errors=True)
        plain = fastflow_epoch_seconds(store, root / "art", args.fastflow_epochs, None)
        cached = fastflow_epoch_seconds(store, root / "art", args.fastflow_epochs, FeatureCache(cache_folder))
        again = fastflow_epoch_seconds(store, root / "art", args.fastflow_epochs, FeatureCache(cache_folder))
        per_plain = sum(plain) / len(plain)
        per_cached = sum(cached[1:] + again) / len(cached[1:] + again)  # the cold run's first epoch fills the cache
        print(f"FastFlow epoch, cache off     {per_plain:7.2f} s  ({', '.join(f'{s:.1f}' for s in plain)})")
        print(f"FastFlow epoch, features read {per_cached:7.2f} s  ({per_plain / per_cached:.1f}x less; target >= 5x)")
        print(f"  first epoch, filling cache  {cached[0]:7.2f} s")
        backbone = fastflow_backbone_seconds(store)
        print(f"  FastFlow's frozen backbone alone, over one epoch's images: {backbone:.2f} s")
        print(
            f"  an epoch with its features read still takes {per_cached:.2f} s: the flows' forward and backward pass"
            " and the optimiser (trained work no cache can hold), and reading the features back"
        )


if __name__ == "__main__":
    main()
