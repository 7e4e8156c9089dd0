"""Per model, on the device at hand: batch-1 images/s against the throughput a run records, and their ratio.

Generates part1 (200 images) with the synthetic plant, fits each model as an evaluation does (seed 0, `cpu` preset;
gradient-trained models stop at `--budget-seconds` of training: their speed does not depend on how well they
trained), then times, one after the other:
- batch 1: 1000 / the median batch-1 latency the run records (`time_inference`);
- recorded: the run's throughput, timed at the batch that serves the device best (after one warm-up batch of each
  size; the batch is printed), and its ratio to the batch-1 rate (at least 1 by construction, unless the machine's
  speed changed between the two);
- before: throughput as runs timed it before the batch was chosen, batch 32 on the first 64 test images with no
  warm-up at that size (the model's first batch-32 pass), with its ratio to the batch-1 rate;
- page faults per image at batch 1 and at batch 32 (minor faults: memory the kernel maps in afresh).
Run it on a quiet machine: it prints the load the recorded timing saw.

.venv/bin/python -m benchmarks.throughput_batches [--models padim patchcore dfm stfpm] [--device auto]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

MODELS = ["padim", "patchcore", "dfm", "stfpm"]


def faults_per_image(detector, images: list, batch: int, device: str) -> float:
    from engine.devices import synchronize

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    detector.predict(images, batch_size=batch)
    synchronize(device)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--budget-seconds", type=float, default=30.0, help="training budget of gradient-trained models")
    args = parser.parse_args()

    import torch

    from engine.cli import main as gluelab
    from engine.devices import device_name, resolve_device, synchronize
    from engine.evaluation.evaluate import THROUGHPUT_IMAGES, build_job_model, time_inference
    from engine.ingest.part_data import load_part
    from engine.jobs import Job
    from engine.models.catalogue import get_model

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "gluelab.duckdb"
        generate = [
            "generate",
            "--parts",
            "part1",
            "--images",
            "200",
            "--out",
            f"{scratch}/data",
            "--store",
            str(store),
        ]
        if gluelab(generate) != 0:
            raise SystemExit("generating the part failed")
        data = load_part("part1", store)
        timed = data.test[:THROUGHPUT_IMAGES]
        print(f"{device} ({device_name(device)}), {torch.get_num_threads()} torch threads; part1, {len(timed)} images")
        print(
            f"{'model':<11}{'batch-1/s':>10}{'recorded/s':>11}{'batch':>6}{'ratio':>7}"
            f"{'before/s':>10}{'ratio':>7}{'faults b1':>11}{'faults b32':>11}  load while timed"
        )
        for model in args.models:
            settings = dict(get_model(model).presets["cpu"])
            if "budget_minutes" in settings:
                settings["budget_minutes"] = args.budget_seconds / 60
            detector, augment = build_job_model(
                Job("part1", model, "tf_efficientnet_lite0", "cpu", 0, "baseline"), settings
            )
            device = detector.to(device)
            detector.fit(data.train, augment)
            for image in timed[:3]:  # as before: batch-1 passes first (the latency's warm-up), then batch 32
                detector.predict([image], batch_size=1)
            synchronize(device)
            start = time.perf_counter()
            detector.predict(timed, batch_size=32)  # as before: the first batch-32 pass, no warm-up at that size
            synchronize(device)
            before = len(timed) / (time.perf_counter() - start)
            timing, _ = time_inference(detector, data.test, device)
            batch1 = 1000 / timing.inference_ms
            faults_1 = faults_per_image(detector, timed[:16], 1, device)
            faults_32 = faults_per_image(detector, timed, 32, device)
            load = timing.load.get("reason") or ("timed under load" if timing.load.get("contended") else "quiet")
            print(
                f"{model:<11}{batch1:>10.1f}{timing.throughput_fps:>11.1f}{timing.load['throughput_batch']:>6}"
                f"{timing.throughput_fps / batch1:>7.2f}{before:>10.1f}{before / batch1:>7.2f}"
                f"{faults_1:>11.0f}{faults_32:>11.0f}  {load}",
                flush=True,
            )


if __name__ == "__main__":
    main()
