"""Fault drill: kill evaluations and imports at random points and check that the store lost nothing.

On a 30-image generated part in a temporary folder:
- 20 evaluations (legacy, PaDiM, DFM; half of them `--force`) killed with SIGKILL or SIGTERM after a random delay;
- 5 pairs of overlapping grids started together;
- 10 `gluelab generate --store` runs killed with SIGKILL after a random delay.
Then one clean grid run clears what the kills left. It prints runs lost (finished before, gone or changed
after), runs duplicated (metrics or scores beyond one set per run), runs left `running`, claims left behind
and import half-states (a part registered with fewer images than it has), and exits 1 unless all are 0.

    python benchmarks/fault_drill.py [--seed 0] [--evaluations 20] [--pairs 5] [--imports 10]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS
from store import read_store, write_store
from store.runs import run_claims, runs

MODELS = ["legacy", "padim", "dfm"]
GRID = ["--models", *MODELS, "--seeds", "2"]


def gluelab(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def evaluate(store: Path, *arguments: str) -> subprocess.Popen:
    return gluelab("evaluate", "--parts", "part1", "--store", str(store), *GRID, *arguments)


def finished_results(store: Path) -> dict[str, tuple]:
    """run_id -> (finished_at, metric values) of every finished run."""
    with read_store(store) as con:
        rows = con.execute(
            """SELECT r.run_id, r.finished_at, list(m.value ORDER BY m.metric)
               FROM runs r JOIN metrics m USING (run_id) WHERE r.status = 'finished' GROUP BY ALL"""
        ).fetchall()
    return {run_id: (finished_at, tuple(values)) for run_id, finished_at, values in rows}


def duplicated_runs(store: Path) -> int:
    """Runs with more than one set of metrics or scores (or metrics without a finished run)."""
    expected = len(IMAGE_METRICS + PIXEL_METRICS)
    with read_store(store) as con:
        return con.execute(
            """SELECT count(*) FROM (
                   SELECT run_id FROM metrics GROUP BY run_id HAVING count(*) != ?
                   UNION SELECT m.run_id FROM metrics m LEFT JOIN runs r USING (run_id)
                         WHERE r.status IS DISTINCT FROM 'finished'
                   UNION SELECT run_id FROM image_scores GROUP BY run_id HAVING count(*) != 12)""",
            [expected],
        ).fetchone()[0]


def killed_evaluations(store: Path, rng: random.Random, count: int) -> int:
    """Evaluations (every other one forced) killed at random points; returns how many finished runs were lost."""
    lost = 0
    for index in range(count):
        before = finished_results(store)
        process = evaluate(store, *(["--force"] if index % 2 else []))
        time.sleep(rng.uniform(0.5, 40))
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        process.send_signal(sig)
        process.communicate(timeout=120)
        after = finished_results(store)
        lost += len(set(before) - set(after))
        print(
            f"  evaluation {index + 1:2d}: {sig.name} -> exit {process.returncode}, finished {len(after)}", flush=True
        )
    return lost


def concurrent_pairs(store: Path, count: int) -> int:
    """Pairs of overlapping grids (one of them forced every other time); returns how many processes failed."""
    failures = 0
    for index in range(count):
        pair = [evaluate(store), evaluate(store, *(["--force"] if index % 2 else []))]
        codes = [(process.wait(timeout=1200), process.stderr.read()) for process in pair]
        bad = [(code, err[-500:]) for code, err in codes if code != 0 or "Traceback" in err]
        failures += len(bad)
        print(f"  pair {index + 1}: exits {[code for code, _ in codes]}", flush=True)
        for code, err in bad:
            print(f"    exit {code}: {err}", flush=True)
    return failures


def import_state(store: Path) -> tuple:
    """Everything an import writes: the datasets rows and every image row, in order."""
    with read_store(store) as con:
        datasets = con.execute("SELECT part, n_images FROM datasets ORDER BY part").fetchall()
        images = con.execute("SELECT part, image_path FROM images ORDER BY part, image_path").fetchall()
    return tuple(datasets), tuple(images)


def killed_imports(root: Path, store: Path, rng: random.Random, count: int) -> int:
    """`gluelab import` of a 30-image part killed at random points of its run; returns import half-states.

    One import is timed first, so the kills fall across the whole run, the final write included. After each kill
    the store must hold either everything it held before or everything the import writes, nothing in between.
    """
    folder = root / "import_source"
    generate = gluelab("generate", "--parts", "part6", "--images", "30", "--out", str(folder))
    assert generate.wait() == 0, generate.stderr.read()
    command = ["import", "--layout", "mvtec", "--part", "part6", str(folder / "part6"), "--store", str(store)]
    before = import_state(store)
    start = time.monotonic()
    assert gluelab(*command).wait() == 0
    duration = time.monotonic() - start
    complete = import_state(store)
    half_states = 0
    for index in range(count):
        with write_store(store) as con:  # back to the state before the import
            con.execute("DELETE FROM images WHERE part = 'part6'")
            con.execute("DELETE FROM datasets WHERE part = 'part6'")
        process = gluelab(*command)
        delay = rng.uniform(0.3, 1.05) * duration
        time.sleep(delay)
        process.kill()
        process.wait(timeout=60)
        state = import_state(store)
        outcome = "nothing written" if state == before else "complete" if state == complete else "HALF-WRITTEN"
        half_states += outcome == "HALF-WRITTEN"
        print(f"  import {index + 1:2d}: killed after {delay:4.1f} of {duration:.1f} s: {outcome}", flush=True)
    return half_states


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluations", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--imports", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gluelab_fault_drill_") as folder:
        root = Path(folder)
        store = root / "store.duckdb"
        generate = gluelab(
            "generate", "--parts", "part1", "--images", "30", "--out", str(root / "data"), "--store", str(store)
        )
        assert generate.wait() == 0, generate.stderr.read()

        first = evaluate(store, "--seeds", "1")  # finished runs for the killed (forced) re-runs to threaten
        assert first.wait() == 0, first.stderr.read()
        print(f"{args.evaluations} evaluations killed at random points", flush=True)
        lost = killed_evaluations(store, rng, args.evaluations)
        print(f"{args.pairs} pairs of overlapping grids", flush=True)
        pair_failures = concurrent_pairs(store, args.pairs)
        print(f"{args.imports} imports killed at random points", flush=True)
        half_states = killed_imports(root, store, rng, args.imports)

        before_recovery = finished_results(store)
        recovery = evaluate(store)
        recovery_error = recovery.communicate(timeout=1200)[1]
        lost += len(set(before_recovery) - set(finished_results(store)))
        table = runs(store)
        figures = {
            "runs lost": lost,
            "runs duplicated": duplicated_runs(store),
            "runs left running": int((table.status == "running").sum()),
            "claims left behind": len(run_claims(store)),
            "runs not finished after recovery": int((table.status != "finished").sum()) + 6 - len(table),
            "grid processes failed in pairs": pair_failures,
            "recovery grid exit code": recovery.returncode,
            "import half-states": half_states,
        }
    for name, value in figures.items():
        print(f"{name}: {value}")
    if recovery.returncode:
        print(recovery_error[-2000:])
    return 1 if any(figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
