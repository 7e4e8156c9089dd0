"""Timing under load: one small job timed on a quiet machine, then the same job while busy loops hold every core.

On a generated part1 (60 images by default) in a temporary folder, PaDiM at the `cpu` preset is evaluated once,
then once more (`--force`) while one busy-looping process per usable core runs beside it. Prints both batch-1
latencies, their ratio, the load each was timed under and whether each run is flagged as timed under load, and
exits 1 unless the quiet run is not flagged and the contended one is. Run it on an otherwise quiet machine: the
quiet run's verdict is that machine's (other engineers' processes make it contended, as they should).

    .venv/bin/python benchmarks/timing_under_load.py [--model padim] [--images 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.cli import main as gluelab
from engine.cores import usable_cores
from store.runs import runs


def timed_run(store: Path, model: str, *extra: str) -> dict:
    """Evaluate `model` on part1 and return its run: inference_ms and the recorded timing load."""
    if gluelab(["evaluate", "--parts", "part1", "--models", model, "--store", str(store), *extra]) != 0:
        raise SystemExit(f"the {model} run failed; see above")
    run = runs(store).query("status == 'finished' and model == @model").iloc[0]
    return {"inference_ms": float(run.inference_ms), "timing": json.loads(run.environment)["timing"]}


def describe(name: str, run: dict) -> str:
    timing = run["timing"]
    verdict = f"flagged: {timing['reason']}" if timing["contended"] else "not flagged"
    return (
        f"{name:>10}: {run['inference_ms']:8.2f} ms/image, other processes {timing['other_cpu_cores']:.2f} cores, "
        f"load average {timing['load_average']:.2f}, {timing['intra_op_threads']} torch threads — {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="padim")
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = root / "store.duckdb"
        generate = ["generate", "--parts", "part1", "--images", str(args.images), "--out", str(root / "data")]
        assert gluelab([*generate, "--store", str(store)]) == 0
        quiet = timed_run(store, args.model)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cores())]
        try:
            time.sleep(1)
            loaded = timed_run(store, args.model, "--force")
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print(
        f"\n{args.model}, batch-1 latency, {usable_cores()} usable cores, {len(hogs)} busy loops beside the second run"
    )
    print(describe("quiet", quiet))
    print(describe("contended", loaded))
    print(f"     ratio: {loaded['inference_ms'] / quiet['inference_ms']:.1f}x slower under load")
    expected = not quiet["timing"]["contended"] and loaded["timing"]["contended"]
    print("as expected: the quiet run is not flagged and the contended one is" if expected else "NOT as expected")
    return 0 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
