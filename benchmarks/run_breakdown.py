"""Print where a run's time goes, stage by stage, for PaDiM, PatchCore, DFM and DFKDE, against the backbone's floor.

On one generated part (default: 1340 images, 760 of them for training), each model is evaluated through the engine's
own grid runner at `--preset` (or the preset after its name, `patchcore:cpu`) twice: cold (an empty feature cache,
emptied before each model, since models on the same backbone share its layers) and warm (its features cached by the
cold run, `$GLUELAB_FEATURE_CACHE_GB` permitting). Each run's stages come from the store (`store.stages`), as the
Runs page and `gluelab evaluate` show them. The floor is the work no model can skip: the model's frozen backbone once
over every training and test image, at the model's input size and the batch the evaluation scores at (8), with memory
allocated as in a job's process (`engine.heap`), timed bare in the same process run (images pre-processed
beforehand, not timed), the faster of two passes. With `--plain`, anomalib's own PaDiM `Engine.fit` + `Engine.test`
on the same folder is timed beside it (`benchmarks.padim_paper`). Run it on a quiet machine: the ratios are only
worth what the machine's quiet is.

.venv/bin/python -m benchmarks.run_breakdown [--images 1340] [--train 760] [--preset paper] [--models padim patchcore:cpu …]
    [--plain]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.padim_paper import generate, plain_anomalib
from engine.evaluation.evaluate import SCORING_BATCH, build_job_model
from engine.evaluation.grid import run_grid
from engine.heap import keep_freed_memory
from engine.ingest.part_data import load_part
from engine.jobs import plan_grid
from engine.models.feature_cache import feature_cache_dir
from store.stages import STAGES, run_stages

MODELS = ("padim", "patchcore:cpu", "dfm", "dfkde")  # model[:preset], the preset `--preset` when not given
FLOOR_BATCH = SCORING_BATCH
FLOOR_PASSES = 2  # the floor is the faster of two passes over every image: a floor the machine's noise cannot raise


def floor_seconds(store: Path, job) -> float:
    """The model's frozen backbone over every image of the part, bare, at its input size and `FLOOR_BATCH`, with
    memory allocated as in a job's process (`engine.heap`)."""
    data = load_part(job.part, store)
    detector, _ = build_job_model(job)
    modules = detector.frozen_modules()
    if not modules:
        raise SystemExit(f"{job.model} has no frozen backbone to time")
    batches = [
        torch.stack([detector.from_gray(image) for image in images[start : start + FLOOR_BATCH]])
        for images in (data.train, data.test)
        for start in range(0, len(images), FLOOR_BATCH)
    ]
    with torch.inference_mode():
        modules[0](batches[0])  # warm-up
        passes = []
        for _ in range(FLOOR_PASSES):
            start = time.perf_counter()
            for batch in batches:
                for module in modules:
                    module(batch)
            passes.append(time.perf_counter() - start)
        return min(passes)


def timed_run(store: Path, job, force: bool) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    summary = run_grid([job], store, force=force, show_progress=False)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(f"{job.label} failed; see `gluelab runs --store {store}`")
    stages = run_stages(store, [job.run_id]).set_index("stage")["seconds"].to_dict()
    return seconds, stages


def table(rows: dict[str, dict[str, float]]) -> str:
    """Stages down, runs across, in seconds."""
    names = list(rows)
    lines = [f"{'stage':<44}" + "".join(f"{name:>18}" for name in names)]
    for stage, words in STAGES.items():
        if any(stage in row for row in rows.values()):
            cells = "".join(f"{rows[name].get(stage, 0.0):>18.2f}" for name in names)
            lines.append(f"{words[:43]:<44}{cells}")
    lines.append(f"{'total of the stages':<44}" + "".join(f"{sum(rows[name].values()):>18.2f}" for name in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1340)
    parser.add_argument("--train", type=int, default=760)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--plain", action="store_true", help="also time plain anomalib's PaDiM fit + test")
    args = parser.parse_args()
    keep_freed_memory()  # the floor's passes allocate as a job's do (engine.heap)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        store = generate(root, args.images, args.train)
        print(
            f"part1: {args.images} images, {args.train} for training; `{args.preset}` preset, seed 0, load {os.getloadavg()[0]:.2f}"
        )
        summary = []
        for name in args.models:
            model, _, preset = name.partition(":")
            job = plan_grid(["part1"], [model], None, 1, ["baseline"], preset or args.preset, store)[0]
            floor = floor_seconds(store, job)
            shutil.rmtree(feature_cache_dir(store), ignore_errors=True)  # cold: not even an earlier model's features
            cold_seconds, cold = timed_run(store, job, force=False)
            warm_seconds, warm = timed_run(store, job, force=True)
            print(f"\n{model} ({job.backbone}, `{job.preset}`): backbone floor {floor:.1f} s")
            print(table({"cold": cold, "warm (cached)": warm}))
            summary.append((model, floor, cold_seconds, warm_seconds))
        print("\nmodel        floor s   cold s   cold/floor   warm s   warm/floor")
        for model, floor, cold_seconds, warm_seconds in summary:
            print(
                f"{model:<12}{floor:8.1f}{cold_seconds:9.1f}{cold_seconds / floor:12.2f}x"
                f"{warm_seconds:9.1f}{warm_seconds / floor:12.2f}x"
            )
        if args.plain:
            plain_seconds, _ = plain_anomalib(root / "data", root / "anomalib")
            print(f"plain anomalib PaDiM Engine.fit + Engine.test: {plain_seconds:.1f} s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
