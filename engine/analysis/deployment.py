"""Deployed latency beside the eager one: per run for the Runtime page, per candidate for Model selection.

A deployment (`gluelab deploy`) times a run's exported model in a runtime and, in the same session, the eager
model again; its speed-up is the ratio of those two, both measured under the same conditions. Where a run was
deployed in one runtime from several formats (OpenVINO reads the ONNX file and its own IR), the fastest counts:
it is the latency that deployment would get.
"""

from __future__ import annotations

import pandas as pd

from engine.analysis.recommendation import INFERENCE, hardware_label
from engine.analysis.results_table import LOCAL_SOURCE
from engine.analysis.selection import HARDWARE_COLUMN
from store.deployments import RUNTIME_NAMES
from store.runs import HARDWARE_COLUMNS

EAGER = "eager"  # the time criterion of the runs themselves: PyTorch, as the evaluation timed them
RUN_COLUMNS = ["part", "condition", "model", "backbone", "preset", "seed"]


def time_criteria() -> dict[str, str]:
    """The time criteria Model selection offers, in words: the eager latency first (its default), then each runtime."""
    return {EAGER: "Eager (PyTorch, as evaluated)"} | {
        runtime: f"Deployed in {name}" for runtime, name in RUNTIME_NAMES.items()
    }


def fastest_per_runtime(deployed: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, runtime): the format with the lowest latency."""
    if deployed.empty:
        return deployed
    best = deployed.sort_values("latency_ms").drop_duplicates(["run_id", "runtime"])
    return best.sort_values(["run_id", "runtime"]).reset_index(drop=True)


def latency_per_run(runs: pd.DataFrame, deployed: pd.DataFrame) -> pd.DataFrame:
    """`runs` (one row per run, with `run_id` and its eager `inference_ms`) with, per runtime, the deployed latency
    (`<runtime>_ms`), throughput (`<runtime>_fps`) and speed-up over the eager model timed in the same session
    (`<runtime>_speedup`); NaN where the run was not deployed in that runtime."""
    table = runs.copy()
    best = fastest_per_runtime(deployed)
    for runtime in RUNTIME_NAMES:
        chosen = best[best["runtime"] == runtime]
        figures = pd.DataFrame(
            {
                "run_id": chosen["run_id"].astype(object),
                f"{runtime}_ms": chosen["latency_ms"].astype(float),
                f"{runtime}_fps": chosen["throughput_fps"].astype(float),
                f"{runtime}_speedup": (chosen["eager_latency_ms"] / chosen["latency_ms"]).astype(float),
            }
        )
        table = table.merge(figures, how="left", on="run_id")
    return table


def deployed_time_rows(rows: pd.DataFrame, deployed: pd.DataFrame, runtime: str) -> pd.DataFrame:
    """Selection rows (long: candidate, part, condition, model, backbone, preset, source, hardware, metric, mean,
    std, n_seeds) with the inference time of every candidate replaced by its deployed latency in `runtime`.

    The deployed latency is the mean (and std) over the candidate's deployed seeds, per machine the deployment
    ran on. Candidates without a deployment in `runtime`, the study's published ones included, keep their
    accuracy rows but lose their time, so the selection leaves them out for lacking it.
    """
    if runtime == EAGER:
        return rows
    if runtime not in RUNTIME_NAMES:
        raise ValueError(f"unknown time criterion {runtime!r}; choose from {', '.join(time_criteria())}")
    kept = rows[rows["metric"] != INFERENCE.metric]
    best = fastest_per_runtime(deployed)
    best = best[best["runtime"] == runtime]
    if best.empty:
        return kept.reset_index(drop=True)
    machines = [hardware_label(*machine) for machine in best[list(HARDWARE_COLUMNS)].itertuples(index=False)]
    best = best.assign(**{HARDWARE_COLUMN: machines})
    keys = ["candidate", "part", "condition", "model", "backbone", "preset", HARDWARE_COLUMN]
    timed = (
        best.groupby(keys, dropna=False)["latency_ms"]
        .agg(mean="mean", std="std", n_seeds="count")
        .reset_index()
        .assign(metric=INFERENCE.metric, source=LOCAL_SOURCE)
    )
    shown = rows.loc[rows["source"] == LOCAL_SOURCE, ["candidate", "part", "condition"]].drop_duplicates()
    timed = timed.merge(shown, how="inner", on=["candidate", "part", "condition"])
    return pd.concat([kept, timed[[column for column in rows.columns if column in timed]]], ignore_index=True)
