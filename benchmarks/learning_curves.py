"""Print learning curves: image and pixel AUROC against training images for PaDiM, PatchCore and DFM on generated
part1 and part16, the sentence Part drill-down prints, and what the sweep costs against one full-size grid.

Each part is generated as `make demo` generates it (200 images, 120 for training); the sweep evaluates every model at
each training size with `--seeds` seeds, sharing the feature cache as `gluelab evaluate --train-sizes` does; then the
same models and seeds on all the training images alone, in a fresh store (an empty cache), are timed for comparison.
Run it on a quiet machine.

.venv/bin/python -m benchmarks.learning_curves [--images 200] [--sizes 10 25 50 100 all] [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from engine.analysis import learning_curves
from engine.analysis.candidates import with_candidates
from engine.analysis.results_table import LOCAL_SOURCE
from engine.cli import main as gluelab
from engine.cli.arguments import train_size
from store.queries import learning_curve_runs

MODELS = ["padim", "patchcore", "dfm"]
PARTS = ["part1", "part16"]


def store_with_parts(root: Path, images: int) -> Path:
    store = root / "gluelab.duckdb"
    command = [
        "generate",
        "--parts",
        *PARTS,
        "--images",
        str(images),
        "--out",
        str(root / "data"),
        "--store",
        str(store),
    ]
    if gluelab(command) != 0:
        raise SystemExit("generating the parts failed")
    return store


def evaluate(store: Path, seeds: int, sizes: list[str]) -> float:
    command = ["evaluate", "--parts", *PARTS, "--models", *MODELS, "--seeds", str(seeds), "--store", str(store)]
    start = time.perf_counter()
    if gluelab([*command, "--train-sizes", *sizes]) != 0:
        raise SystemExit("the grid failed")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--sizes", nargs="+", default=["10", "25", "50", "100", "all"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    for size in args.sizes:
        train_size(size)  # refused here, not after the parts are generated
    with tempfile.TemporaryDirectory() as scratch:
        sweep_store = store_with_parts(Path(scratch) / "sweep", args.images)
        sweep = evaluate(sweep_store, args.seeds, args.sizes)
        full_store = store_with_parts(Path(scratch) / "full", args.images)
        full = evaluate(full_store, args.seeds, ["all"])
        for part in PARTS:
            runs = with_candidates(learning_curve_runs(sweep_store, part, "baseline"), LOCAL_SOURCE)
            table = learning_curves.curves(runs)
            print(f"\n{part}: image and pixel AUROC (mean ± std over {args.seeds} seeds) by training images")
            print(f"{'candidate':<36}{'images':>7}{'image AUROC':>18}{'pixel AUROC':>18}")
            for row in table.itertuples():
                print(
                    f"{row.candidate:<36}{row.n_train:>7}{row.image_auroc_mean:>11.3f} ± {row.image_auroc_std:.3f}"
                    f"{row.pixel_auroc_mean:>11.3f} ± {row.pixel_auroc_std:.3f}"
                )
            for sentence in learning_curves.sentences(table):
                print(f"  {sentence}.")
        print(
            f"\nsweep of {len(args.sizes)} sizes: {sweep:.0f} s; the same models and seeds on all the images alone: "
            f"{full:.0f} s ({sweep / full:.2f}x)"
        )


if __name__ == "__main__":
    main()
