"""Why a throughput is below what batch 1 delivers, in words.

A run's batch-1 latency says how many images one at a time would score per second: 1000 / latency. Its throughput is
timed at the batch size that serves its device best (`engine.evaluation.evaluate.time_inference`), or at batch 1 when
no larger batch beats that rate, so it is never lower when both were timed together. Runs from before the batch was
chosen were timed at batch 32 without a warm-up at that size; on a CPU such a batch page-faults its activations in
afresh and overflows the caches, and its throughput came out at about half the batch-1 rate. The Runtime page
never shows such a figure without the reason (`run_notes`, `candidate_notes`).
"""

from __future__ import annotations

import pandas as pd

from engine.analysis.results_table import LOCAL_SOURCE

LEGACY_BATCH = 32  # what throughput was timed at before runs recorded the batch


def batch1_rate(inference_ms: float) -> float:
    """Images per second at batch 1, from a batch-1 latency in ms."""
    return 1000 / inference_ms


def below_batch1(throughput_fps: float, inference_ms: float) -> bool:
    return bool(pd.notna(throughput_fps) and pd.notna(inference_ms) and throughput_fps < batch1_rate(inference_ms))


def run_note(run: pd.Series) -> str:
    """Why `run`'s throughput (`throughput_fps`, `inference_ms`, `throughput_batch`, `run_id`, optionally
    `timing_contended`) is below its batch-1 rate; '' when it is not."""
    if not below_batch1(run["throughput_fps"], run["inference_ms"]):
        return ""
    rate = f"{batch1_rate(run['inference_ms']):.3g} images/s at batch 1"
    batch = run.get("throughput_batch")
    if pd.isna(batch):
        return (
            f"below {rate}: timed at batch {LEGACY_BATCH} with no warm-up at that size, before runs chose their batch; "
            "on a CPU a large batch page-faults its memory in afresh and overflows the caches. "
            f"`gluelab evaluate --retime {run['run_id']}` times it again at the best batch"
        )
    load = " and under load" if run.get("timing_contended") is True else ""
    return f"below {rate}: the batch-{int(batch)} and batch-1 passes were timed apart{load}, and the machine's speed changed between them"


def run_notes(runs: pd.DataFrame) -> pd.Series:
    """`run_note` of every run ('' for most)."""
    return pd.Series([run_note(run) for _, run in runs.iterrows()], index=runs.index, dtype=object)


def candidate_notes(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """(candidate, source, note) for each candidate of `table` (`throughput_fps_mean`, `inference_ms_mean`) whose mean
    throughput is below the batch-1 rate of its mean latency: its runs' notes, or why there are none."""
    rows = []
    if not {"throughput_fps_mean", "inference_ms_mean"} <= set(table):
        return pd.DataFrame(columns=["candidate", "source", "note"])
    noted = runs.assign(note=run_notes(runs)) if not runs.empty else runs.assign(note=pd.Series(dtype=object))
    for row in table.itertuples(index=False):
        if not below_batch1(row.throughput_fps_mean, row.inference_ms_mean):
            continue
        if row.source != LOCAL_SOURCE:
            note = "as the study published it: its throughput and batch-1 latency are separate measurements"
        else:
            own = (
                noted[noted["candidate"] == row.candidate]["note"] if "candidate" in noted else pd.Series(dtype=object)
            )
            reasons = sorted({note for note in own if note})
            note = (
                "; ".join(reasons)
                if reasons
                else "the mean over its seeds only: each run's own throughput is at or above its batch-1 rate"
            )
        rows.append({"candidate": row.candidate, "source": row.source, "note": note})
    return pd.DataFrame(rows, columns=["candidate", "source", "note"])
