"""Print how models behave on the synthetic plant beside how they behaved on the study's real parts.

Generates part1, part6 and part16, runs the frozen-feature models (PaDiM, PatchCore, DFM, DFKDE at
their `cpu` presets, packaged backbone, several seeds) and the legacy check through the engine's own
grid runner, and prints per part and model our image and pixel AUROC (mean ± std over seeds) beside
the study's range over its backbones, read from the store's published results (Tables 5, 6, D.10).
Then: part16's image-vs-pixel gap, Spearman's rank correlation between our figures and the study's
(per part and model, and per-part means), how a model's score on part16's acceptable images follows
their brightness, and the legacy check's false-alarm rates.

.venv/bin/python -m benchmarks.plant_calibration [--images 300] [--seeds 3] [--parts ...] [--models ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from benchmarks.legacy_rates import legacy_rates
from engine.cli import main as gluelab
from engine.evaluation.grid import run_grid
from engine.ingest.synthetic.render import EXTREME_STOPS
from engine.jobs import plan_grid
from engine.models.catalogue import model_name as paper_name
from store.connection import read_store
from store.published import published_results
from store.queries import scored_images
from store.runs import run_metrics

PARTS = ["part1", "part6", "part16"]
MODELS = ["padim", "patchcore", "dfm", "dfkde"]
METRICS = ["image_auroc", "pixel_auroc"]


def ours(store: Path) -> pd.DataFrame:
    """Mean and std over seeds of our image and pixel AUROC, per part and model."""
    metrics = run_metrics(store).query("metric in @METRICS")
    return metrics.groupby(["part", "model", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()


def study(store: Path) -> pd.DataFrame:
    """The study's baseline image and pixel AUROC per part and model: lowest and highest over its backbones."""
    published = published_results(store).query("condition == 'baseline' and metric in @METRICS")
    published = published.assign(model=published.model.str.lower())
    return published.groupby(["part", "model", "metric"])["mean"].agg(["min", "max"]).reset_index()


def outside_range(value: float, low: float, high: float) -> float:
    """How far `value` lies outside [low, high]; 0 inside it."""
    return float(value - high if value > high else value - low if value < low else 0.0)


def comparison(store: Path) -> pd.DataFrame:
    table = ours(store).merge(study(store), on=["part", "model", "metric"], how="left")
    table["difference"] = [
        outside_range(row.mean, row.min, row.max) if pd.notna(row.min) else np.nan for row in table.itertuples()
    ]
    return table


def brightness_correlation(store: Path, part: str) -> pd.DataFrame:
    """Per model: Spearman's rho of the score of part16's acceptable test images against their brightness.

    Against the mean grey level, and against its distance from the part's median (over- and
    under-exposed frames both lie far from it), plus how many of the ten highest-scoring acceptable
    images are exposure extremes: the first false alarms the Failure browser shows.
    """
    with read_store(store) as con:
        scores = con.execute(
            """SELECT r.model, s.score, i.mean_brightness, i.exposure_stops
               FROM image_scores s JOIN runs r USING (run_id) JOIN images i ON i.part = r.part AND i.image_path = s.image_path
               WHERE r.part = ? AND r.status = 'finished' AND s.label = 'normal' AND r.seed = 0""",
            [part],
        ).df()
    rows = []
    for model, frame in scores.groupby("model"):
        distance = (frame.mean_brightness - frame.mean_brightness.median()).abs()
        top = frame.nlargest(10, "score")
        rows.append(
            {
                "model": model,
                "rho_grey": spearmanr(frame.score, frame.mean_brightness).statistic,
                "rho_distance": spearmanr(frame.score, distance).statistic,
                "extremes_in_top10": int((top.exposure_stops.abs() >= EXTREME_STOPS).sum()),
            }
        )
    return pd.DataFrame(rows)


def failure_browser_first_ten(store: Path, part: str) -> pd.DataFrame:
    """Per model (seed 0): false alarms at the run's threshold, and how many of the first ten the Failure
    browser lists (its default order: brightest first) are exposure extremes, over- and under-exposed."""
    with read_store(store) as con:
        images = con.execute("SELECT image_path, exposure_stops FROM images WHERE part = ?", [part]).df()
        chosen = con.execute(
            "SELECT run_id, model FROM runs WHERE part = ? AND status = 'finished' AND seed = 0 ORDER BY model", [part]
        ).df()
    rows = []
    for run in chosen.itertuples():
        scored = scored_images(store, run.run_id).merge(images, on="image_path")
        alarms = scored[(scored.label == "normal") & scored.predicted_anomalous]
        first = alarms.sort_values("mean_brightness", ascending=False).head(10)
        rows.append(
            {
                "model": run.model,
                "false_alarms": len(alarms),
                "acceptable": int((scored.label == "normal").sum()),
                "over": int((first.exposure_stops >= EXTREME_STOPS).sum()),
                "under": int((first.exposure_stops <= -EXTREME_STOPS).sum()),
                "shown": len(first),
            }
        )
    return pd.DataFrame(rows)


def print_comparison(table: pd.DataFrame) -> None:
    print(f"{'part':7s} {'model':10s} {'metric':12s} {'ours':>15s} {'study':>13s} {'outside by':>10s}")
    for row in table.sort_values(["part", "model", "metric"], key=_part_order).itertuples():
        mine = f"{row.mean:.3f} ± {0 if pd.isna(row.std) else row.std:.3f}"
        theirs = "" if pd.isna(row.min) else f"{row.min:.3f}" + ("" if row.min == row.max else f"–{row.max:.3f}")
        diff = "" if pd.isna(row.difference) else f"{row.difference:+.3f}"
        print(f"{row.part:7s} {paper_name(row.model):10s} {row.metric:12s} {mine:>15s} {theirs:>13s} {diff:>10s}")


def _part_order(column: pd.Series) -> pd.Series:
    return column.map(lambda part: int(part.removeprefix("part"))) if column.name == "part" else column


def print_rank_correlation(table: pd.DataFrame) -> None:
    both = table.dropna(subset=["min"]).assign(study=lambda t: (t["min"] + t["max"]) / 2)
    for metric, frame in both.groupby("metric"):
        cells = spearmanr(frame["mean"], frame["study"]).statistic
        parts = frame.groupby("part")[["mean", "study"]].mean()
        per_part = spearmanr(parts["mean"], parts["study"]).statistic
        means = ", ".join(f"{p} {r['mean']:.3f} vs {r['study']:.3f}" for p, r in parts.iterrows())
        print(
            f"Spearman rho, {metric}: per part and model {cells:+.2f} ({len(frame)} cells); per-part means {per_part:+.2f} ({means})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images per part (the study had about 300)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=PARTS)
    parser.add_argument(
        "--models", nargs="*", default=MODELS, help="frozen-feature models (none: the legacy check only)"
    )
    parser.add_argument("--legacy-images", type=int, default=1000, help="images per part for the legacy check's rates")
    parser.add_argument("--keep", type=Path, help="keep the generated parts and store in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = args.keep or Path(folder)
        store = root / "store.duckdb"
        where = ["--out", str(root / "data"), "--store", str(store)]
        assert gluelab(["generate", "--parts", *args.parts, "--images", str(args.images), *where]) == 0
        assert gluelab(["load-published", "--store", str(store)]) == 0
        jobs = plan_grid(args.parts, [*args.models, "legacy"], None, args.seeds, ["baseline"], "cpu", store)
        summary = run_grid(jobs, store, force=True, show_progress=True)
        if summary.failed:
            raise SystemExit(f"{summary.failed} of the grid's jobs failed; see the runs table in {store}")

        table = comparison(store)
        print(f"\n{len(args.parts)} parts x {args.images} images, {args.seeds} seeds, cpu presets, default backbone")
        print_comparison(table)
        print()
        print_rank_correlation(table.query("model != 'legacy'"))
        if "part16" in args.parts:
            image = table.query("part == 'part16' and metric == 'image_auroc'").set_index("model")["mean"]
            pixel = table.query("part == 'part16' and metric == 'pixel_auroc'").set_index("model")["mean"]
            gap = ", ".join(f"{paper_name(m)} {pixel[m] - image[m]:+.3f}" for m in image.index if m in pixel)
            print(f"part16 pixel minus image AUROC: {gap}")
            if "part1" in args.parts:
                first = table.query("part == 'part1' and metric == 'image_auroc'").set_index("model")["mean"]
                drop = ", ".join(f"{paper_name(m)} {image[m] - first[m]:+.3f}" for m in image.index if m in first)
                print(f"part16 minus part1 image AUROC: {drop} (target for PaDiM and PatchCore: at most -0.25)")
            print("part16 acceptable test images, score against brightness (seed 0):")
            for row in brightness_correlation(store, "part16").itertuples():
                print(
                    f"  {paper_name(row.model):10s} rho(score, mean grey) {row.rho_grey:+.2f}; "
                    f"rho(score, distance from median grey) {row.rho_distance:+.2f}; "
                    f"exposure extremes among the 10 highest-scoring: {row.extremes_in_top10}"
                )
            print("part16 Failure browser, false alarms at each run's threshold (seed 0), first ten brightest first:")
            for row in failure_browser_first_ten(store, "part16").itertuples():
                print(
                    f"  {paper_name(row.model):10s} {row.false_alarms} of {row.acceptable} acceptable images flagged; "
                    f"of the first {row.shown}: {row.over} over-exposed, {row.under} under-exposed"
                )
        if {"part1", "part16"} <= set(args.parts):
            rates = {part: legacy_rates(part, args.legacy_images, 0) for part in ("part1", "part16")}
            ratio = rates["part16"].false_positive_rate / max(rates["part1"].false_positive_rate, 1e-9)
            print(
                f"legacy check false-positive rate ({args.legacy_images} images per part): "
                f"part1 {rates['part1'].false_positive_rate:.1%}, part16 {rates['part16'].false_positive_rate:.1%} "
                f"({ratio:.1f}x; study: about 5x)"
            )


if __name__ == "__main__":
    main()
