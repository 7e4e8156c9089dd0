"""Table-5-style result tables: one row per (source, part, condition, model, backbone), one column per metric.

Local runs are aggregated over seeds (mean, sample std, number of seeds); the study's published
figures sit beside them as source `Chen et al. 2025`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.analysis.selection import candidate_table
from store.published import published_results
from store.runs import leaderboard

METRIC_ORDER = (
    "image_auroc",
    "image_f1",
    "pixel_auroc",
    "pixel_f1",
    "aupro",
    "fpr_at_full_recall",
    "train_min",
    "inference_ms",
    "throughput_fps",
)
RUNTIME_METRICS = ("train_min", "inference_ms", "throughput_fps")
ROW_KEYS = ["source", "part", "condition", "model", "backbone"]
LOCAL_SOURCE = "local"


def results_long(store: Path | str, part: str | None = None) -> pd.DataFrame:
    """Local aggregates and published figures in one long frame: ROW_KEYS, preset, metric, mean, std, n_seeds."""
    local = leaderboard(store, part).assign(source=LOCAL_SOURCE)
    published = published_results(store, part).drop(columns=["source_table"]).assign(preset="paper", n_seeds=pd.NA)
    frame = pd.concat([local, published], ignore_index=True)
    return frame[frame["metric"].isin(METRIC_ORDER)]


def results_for_part(store: Path | str, part: str, condition: str | None = None) -> pd.DataFrame:
    """Wide table of `part` (optionally one condition); ValueError when the store has nothing for it."""
    long = results_long(store, part)
    if condition:
        long = long[long["condition"] == condition]
    if long.empty:
        raise ValueError(
            f"no results for part {part!r} in {store}; run `gluelab evaluate` or `gluelab load-published --store {store}`"
        )
    return wide_results(long)


def wide_results(long: pd.DataFrame) -> pd.DataFrame:
    """One row per ROW_KEYS + preset with `<metric>_mean`, `<metric>_std` columns (METRIC_ORDER) and `n_seeds`."""
    keys = ROW_KEYS + ["preset"]
    present = [metric for metric in METRIC_ORDER if metric in set(long["metric"])]
    wide = candidate_table(long, keys)
    seeds = long.groupby(keys)["n_seeds"].max().rename("n_seeds").reset_index()
    columns = [f"{metric}_{statistic}" for metric in present for statistic in ("mean", "std")]
    return wide[keys + columns].merge(seeds, on=keys, how="left")


def readable_results(wide: pd.DataFrame) -> pd.DataFrame:
    """`mean ± std` strings for people; n/a where a model has no figure for a metric."""
    table = wide[ROW_KEYS].copy()
    table["n"] = wide["n_seeds"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    for metric in METRIC_ORDER:
        if f"{metric}_mean" not in wide:
            continue
        digits = 2 if metric in RUNTIME_METRICS else 3
        table[metric] = [
            "n/a" if pd.isna(m) else f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}")
            for m, s in zip(wide[f"{metric}_mean"], wide[f"{metric}_std"], strict=True)
        ]
    return table
