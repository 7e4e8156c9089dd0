"""Table-5-style result tables: one row per (source, part, condition, model, backbone, device), one column per metric.

Local runs are aggregated over seeds (mean, sample std, number of seeds); the study's published
figures sit beside them as source `Chen et al. 2025`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.analysis.selection import candidate_table
from store.metrics import RUNTIME_METRICS as RUNTIME_METRICS  # re-exported: the runtime columns
from store.metrics import TABLE_METRICS, metric
from store.published import published_results
from store.runs import leaderboard

# A live view of the metric registry: the result tables' columns in order (RUNTIME_METRICS: the runtime ones).
METRIC_ORDER = TABLE_METRICS
ROW_KEYS = ["source", "part", "condition", "model", "backbone", "device"]  # device: '' for the study's figures
LOCAL_SOURCE = "local"


def results_long(store: Path | str, part: str | None = None) -> pd.DataFrame:
    """Local aggregates and published figures in one long frame: ROW_KEYS, preset, metric, mean, std, n_seeds."""
    local = leaderboard(store, part).assign(source=LOCAL_SOURCE)
    published = (
        published_results(store, part).drop(columns=["source_table"]).assign(preset="paper", device="", n_seeds=pd.NA)
    )
    frame = pd.concat([local, published], ignore_index=True)
    return frame[frame["metric"].isin(list(METRIC_ORDER))]


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


def readable_results(wide: pd.DataFrame, labels: bool = False) -> pd.DataFrame:
    """`mean ± std` strings for people (`mean` alone without a spread); n/a where a model has no figure.

    Decimals come from each metric's registry entry; with `labels`, columns are headed by the metric
    labels ("Image AUROC") instead of their names.
    """
    table = wide[ROW_KEYS].copy()
    table["n"] = wide["n_seeds"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    for name in METRIC_ORDER:
        if f"{name}_mean" not in wide:
            continue
        entry = metric(name)
        table[entry.label if labels else name] = [
            entry.format(m, s) for m, s in zip(wide[f"{name}_mean"], wide[f"{name}_std"], strict=True)
        ]
    return table
