"""Frames per second `gluelab inspect` scores a line at, end to end (read, pre-process, score, record in the store),
per model and runtime, and the share of that time spent outside the model.

PaDiM and PatchCore at the `cpu` preset are evaluated on a generated 200-image part1, deployed to ONNX (`gluelab
deploy`: timed in ONNX Runtime and OpenVINO), and each deployment scores the same stream of 480 x 640 frames
(`gluelab generate --stream`) into a fresh store table. Target on a 2-core machine: at least 25 frames/s in ONNX
Runtime. The machine's load while it ran is printed with the figures: run it on an otherwise quiet machine.

.venv/bin/python -m benchmarks.line_throughput [--frames 300] [--models padim patchcore]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from engine.cli import main as gluelab
from engine.evaluation.line_inspection import Inspector, frame_files, resolve_deployment
from engine.ingest.synthetic.stream import stream_frames
from store.runs import runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--models", nargs="+", default=["padim", "patchcore"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = root / "store.duckdb"
        quiet = ["--store", str(store)]
        assert gluelab(["generate", "--parts", "part1", "--images", "200", "--out", str(root / "data"), *quiet]) == 0
        assert gluelab(["evaluate", "--parts", "part1", "--models", *args.models, "--preset", "cpu", *quiet]) == 0
        stream_frames("part1", args.frames, root / "line", seed=1)
        frames = frame_files([root / "line"])
        table = runs(store)
        print(
            f"\n{len(frames)} frames of 640 x 480; load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        print(f"{'model':<11}{'runtime':<13}{'frames/s':>9}{'outside the model':>19}")
        for model in args.models:
            run_id = table.loc[(table.model == model) & (table.status == "finished"), "run_id"].iloc[0]
            assert gluelab(["deploy", run_id, "--format", "onnx", "--out", str(root / model), *quiet]) == 0
            for runtime in ("onnxruntime", "openvino"):
                inspector = Inspector(resolve_deployment(run_id, store, runtime), store)
                totals = inspector.inspect(frames)
                outside = 1 - totals.model_seconds / totals.seconds
                print(f"{model:<11}{runtime:<13}{totals.frames_per_second:>9.1f}{100 * outside:>18.0f}%")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
