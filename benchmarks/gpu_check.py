"""Every registered model on a CUDA GPU: does it run, what does it score and how fast, and does it agree with the CPU.

Generates part1 and part16 (200 images each) into a temporary store, evaluates every model at the `cpu` preset on
`cuda` (one job per model and part, seed 0, baseline, no feature cache), and prints per job: status, image and
pixel AUROC, batch-1 ms, throughput (images/s, with the batch it was timed at), training time, epochs and why
training stopped. Then, for the frozen-feature models (no training loop), the same jobs on the CPU and the
CPU-versus-GPU agreement (image AUROC within 0.01). Gradient-trained models stop at `--budget-seconds` of training
(default 15) so the whole check finishes within about 10 minutes on a modern datacentre GPU; their CPU runs would
reach other epochs within a budget, so they are compared by `agreement` only where both converged. Needs no
internet. Without CUDA it says so in one line and exits with status 2.

.venv/bin/python -m benchmarks.gpu_check [--parts part1 part16] [--models ...] [--budget-seconds 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

FROZEN_TOLERANCE = 0.01  # image AUROC, CPU against GPU, for models without a training loop
SEED_SPREAD = 0.05  # image AUROC within which two converged runs of a gradient-trained model count as agreeing


def agreement(on_cpu, on_gpu) -> tuple[bool | None, str]:
    """Whether the CPU and the GPU run of one job agree (None: they cannot be compared), and why, in words."""
    cpu, gpu = on_cpu.metrics["image_auroc"], on_gpu.metrics["image_auroc"]
    figures = f"image AUROC {cpu:.3f} on the CPU, {gpu:.3f} on the GPU"
    if on_cpu.training is None and on_gpu.training is None:
        agrees = abs(cpu - gpu) <= FROZEN_TOLERANCE
        return agrees, f"{figures}: {'within' if agrees else 'more than'} {FROZEN_TOLERANCE} (frozen features)"
    trained = [run.training for run in (on_cpu, on_gpu)]
    if all(t is not None and t.stop_reason == "converged" for t in trained):
        agrees = abs(cpu - gpu) <= SEED_SPREAD
        return agrees, f"{figures}, both converged: {'within' if agrees else 'more than'} the seed spread {SEED_SPREAD}"
    words = [
        f"the {where} run stopped ({t.stop_reason}) after {t.epochs} epochs" if t is not None else f"the {where} run"
        for where, t in zip(("CPU", "GPU"), trained, strict=True)
    ]
    return None, f"{figures}; not comparable: {' and '.join(words)}, so they trained for different epochs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["part1", "part16"])
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--budget-seconds", type=float, default=15.0, help="training budget of gradient-trained models")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA device on this machine; run it on a GPU workstation")
        return 2

    from engine.cli import main as gluelab
    from engine.evaluation.evaluate import evaluate_job
    from engine.ingest.part_data import load_part
    from engine.jobs import Job
    from engine.models.catalogue import MODELS

    models = args.models or list(MODELS)
    started = time.perf_counter()
    rows, outcomes = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "gluelab.duckdb"
        generate = ["generate", "--parts", *args.parts, "--images", str(args.images), "--out", f"{scratch}/data"]
        if gluelab([*generate, "--store", str(store)]) != 0:
            raise SystemExit("gpu_check: generating the parts failed")
        print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}; parts {', '.join(args.parts)}", flush=True)
        for part in args.parts:
            data = load_part(part, store)
            for model in models:
                entry = MODELS[model]
                missing = entry.missing(entry.default_backbone)
                row = {"model": model, "part": part}
                if missing:
                    rows.append({**row, "status": "not runnable: " + missing.split(".")[0]})
                    continue
                settings = dict(entry.presets["cpu"])
                if "budget_minutes" in settings:
                    settings["budget_minutes"] = args.budget_seconds / 60
                job = Job(part, model, entry.default_backbone, "cpu", 0, "baseline")
                try:
                    outcome = evaluate_job(job, data, Path(scratch) / "gpu", settings=settings, device="cuda")
                except Exception as error:  # noqa: BLE001 - the check reports every failure and goes on
                    rows.append({**row, "status": f"failed: {type(error).__name__}: {str(error).splitlines()[0]}"})
                    continue
                outcomes[(model, part)] = (outcome, settings, job, data)
                rows.append({**row, **_figures(outcome)})
                print(_line(rows[-1]), flush=True)
        print(f"\n{'model':<22}{'part':<8}{'status':<14}{'image':>7}{'pixel':>7}{'b1 ms':>8}{'img/s':>8}{'batch':>6}"
              f"{'train s':>9}{'epochs':>7}  stop")  # fmt: skip
        for row in rows:
            print(_line(row))
        print("\nCPU against GPU, frozen-feature models (same job, seed 0):")
        for (model, part), (outcome, settings, job, data) in outcomes.items():
            if outcome.training is not None:
                continue
            on_cpu = evaluate_job(job, data, Path(scratch) / "cpu", settings=settings, device="cpu")
            agrees, words = agreement(on_cpu, outcome)
            print(f"  {model:<22}{part:<8}{'agrees' if agrees else 'DIFFERS'}: {words}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


def _figures(outcome) -> dict:
    training = outcome.training
    return {
        "status": "finished" if outcome.device.startswith("cuda") else f"on {outcome.device}",
        "image": outcome.metrics.get("image_auroc"),
        "pixel": outcome.metrics.get("pixel_auroc"),
        "ms": outcome.inference_ms,
        "fps": outcome.throughput_fps,
        "batch": outcome.environment.get("timing", {}).get("throughput_batch"),
        "train": outcome.train_seconds,
        "epochs": None if training is None else training.epochs,
        "stop": "one pass" if training is None else training.stop_reason,
    }


def _line(row: dict) -> str:
    def number(value, digits: str) -> str:
        return "" if value is None else format(value, digits)

    if "ms" not in row:
        return f"{row['model']:<22}{row['part']:<8}{row['status']}"
    return (
        f"{row['model']:<22}{row['part']:<8}{row['status']:<14}{number(row['image'], '.3f'):>7}"
        f"{number(row['pixel'], '.3f'):>7}{row['ms']:>8.2f}{row['fps']:>8.1f}{number(row['batch'], 'd'):>6}"
        f"{row['train']:>9.1f}{number(row['epochs'], 'd'):>7}  {row['stop']}"
    )


if __name__ == "__main__":
    sys.exit(main())
