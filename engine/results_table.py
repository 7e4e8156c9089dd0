"""Table-5-style result tables: one row per (source, model, backbone), one column per metric."""

from __future__ import annotations

import pandas as pd

METRIC_ORDER = ("image_auroc", "image_f1", "pixel_auroc", "pixel_f1", "train_min", "inference_ms", "throughput_fps")
ROW_KEYS = ["source", "part", "condition", "model", "backbone"]


def wide_results(long: pd.DataFrame) -> pd.DataFrame:
    """Long rows (..., metric, mean, std) to one row per model with `<metric>_mean` / `<metric>_std` columns."""
    present = [metric for metric in METRIC_ORDER if metric in set(long["metric"])]
    wide = long.pivot_table(index=ROW_KEYS, columns="metric", values=["mean", "std"], aggfunc="first", dropna=False)
    columns = {}
    for metric in present:
        columns[f"{metric}_mean"] = wide[("mean", metric)]
        columns[f"{metric}_std"] = wide[("std", metric)] if ("std", metric) in wide.columns else float("nan")
    return pd.DataFrame(columns).dropna(how="all").reset_index()


def readable_results(wide: pd.DataFrame) -> pd.DataFrame:
    """`mean ± std` strings for people; n/a where a model has no figure for a metric."""
    table = wide[ROW_KEYS].copy()
    for metric in METRIC_ORDER:
        if f"{metric}_mean" not in wide:
            continue
        means, stds = wide[f"{metric}_mean"], wide[f"{metric}_std"]
        digits = 2 if metric in ("train_min", "inference_ms", "throughput_fps") else 3
        table[metric] = [
            "n/a" if pd.isna(m) else f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}")
            for m, s in zip(means, stds)
        ]
    return table
