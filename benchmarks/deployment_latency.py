"""Print each model's batch-1 latency eager against its exported model in ONNX Runtime and OpenVINO.

Target: an exported model at least 1.5x faster than the eager one at batch 1 on this CPU.

Generates part1 with the synthetic plant, evaluates PaDiM, PatchCore, STFPM, FastFlow and EfficientAD through
the engine's grid (`cpu` presets; the gradient-trained ones for `--epochs` epochs of at most `--steps` batches:
latency does not depend on how well a model learnt), then deploys each run with `gluelab deploy`'s code to ONNX
(timed in ONNX Runtime and in OpenVINO) and to OpenVINO IR (timed in OpenVINO). Each deployment refits the run,
checks the exported scores against the eager ones and times the eager model again in the same session, so each
ratio compares two latencies measured under the same conditions. Time it on a quiet machine: another process
on the same cores makes every figure meaningless (docs/engine.md).

.venv/bin/python benchmarks/deployment_latency.py [--images 200] [--epochs 1] [--steps 20] [--models ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from engine.cli import main as gluelab
from engine.evaluation.deploy import deploy_run
from engine.evaluation.grid import run_grid
from engine.jobs import plan_grid
from engine.models.catalogue import get_model
from engine.models.export import ExportError
from store.deployments import FORMATS

MODELS = ["padim", "patchcore", "stfpm", "fastflow", "efficient_ad"]
TARGET = 1.5  # exported at least this many times faster than eager


def short_training(models: list[str], epochs: int, steps: int) -> None:
    """Gradient-trained models' `cpu` presets cut to `epochs` epochs of at most `steps` batches, no budget."""
    for name in models:
        preset = get_model(name).presets["cpu"]
        if "epochs" in preset:
            preset.pop("budget_minutes", None)
            preset.update(epochs=epochs, batches_per_epoch=steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images of the generated part (default 200)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of the gradient-trained models")
    parser.add_argument("--steps", type=int, default=20, help="at most this many batches per epoch")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--keep", type=Path, help="keep the store and exported models in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        store = root / "gluelab.duckdb"
        generate = ["generate", "--parts", "part1", "--images", str(args.images), "--out", str(root / "data")]
        if not store.exists() and gluelab([*generate, "--store", str(store)]) != 0:
            raise SystemExit("generating the part failed")
        short_training(args.models, args.epochs, args.steps)
        jobs = plan_grid(["part1"], args.models, None, 1, ["baseline"], "cpu", store)
        summary = run_grid(jobs, store, show_progress=False)
        if summary.failed:
            raise SystemExit(f"{summary.failed} evaluation(s) failed; see the Runs page of {store}")
        print(f"part1, {args.images} images, batch-1 latency in ms (median after warm-up); x = eager / exported")
        header = f"{'model':<14}{'eager':>9}{'ORT':>9}{'x':>7}{'OV(onnx)':>10}{'x':>7}{'OV(IR)':>9}{'x':>7}  target"
        print(header)
        for job in jobs:
            figures = {}
            try:
                for fmt in FORMATS:
                    result = deploy_run(job.run_id, fmt, root / "deployed" / job.model, store)
                    figures |= {(fmt, d.runtime): d for d in result.deployments}
            except ExportError as error:  # the reason goes in the table; the other models are still measured
                print(f"{job.model:<14}not deployed: {error}", flush=True)
                continue
            eager = figures["onnx", "onnxruntime"].eager_latency_ms
            cells = []
            for key in (("onnx", "onnxruntime"), ("onnx", "openvino"), ("openvino", "openvino")):
                ms = figures[key].latency_ms
                cells.append(f"{ms:>9.2f}{figures[key].eager_latency_ms / ms:>6.2f}x")
            best = max(d.eager_latency_ms / d.latency_ms for d in figures.values())
            met = "met" if best >= TARGET else f"missed ({best:.2f}x < {TARGET}x)"
            print(f"{job.model:<14}{eager:>9.2f}{cells[0]}{cells[1]:>17}{cells[2]}  {met}", flush=True)


if __name__ == "__main__":
    main()
