"""Runs whose figures cannot be taken at face value, and the one mechanism that leaves their candidates out.

A flag marks a finished run whose figures mislead: `UNDER_TRAINED` (its epoch cap or time budget stopped training
before its loss levelled off, so its accuracy understates the model) and `TIMED_UNDER_LOAD` (other work competed
for the cores while its latency and throughput were timed, so its times overstate the model's; the rule is
`engine.evaluation.timing.contention`, recorded with the run). Each flag names the figures it spoils. A chart
that shows a spoiled figure leaves out, by default, every candidate with a run so flagged, lists each with its
reason (`flag_reasons`, used with `selection.leave_out`), and has a switch to put them back.

Input rows are finished runs as `store.queries.flagged_runs` gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from engine.analysis.training import is_under_trained, run_note

Figures = Literal["accuracy", "time"]


def _given(value) -> bool:
    return value is not None and not pd.isna(value)


def is_timed_under_load(run: Mapping) -> bool:
    """Whether the run's latency and throughput were timed while other work competed for the cores."""
    flag = run.get("timing_contended")
    return bool(flag) if _given(flag) else False


def load_note(run: Mapping) -> str:
    """Why the run's timing is contended, and how to time it again: "timed under load: other processes used …"."""
    note = run.get("timing_note")
    why = str(note) if _given(note) else "other work competed for the cores"
    retime = f"; `gluelab evaluate --retime {run['run_id']}` times it again" if _given(run.get("run_id")) else ""
    return f"timed under load: {why}{retime}"


@dataclass(frozen=True)
class RunFlag:
    name: str  # the `runs` column that holds it
    label: str  # in a sentence: "left out as under-trained"
    switch: str  # the label of the switch that puts flagged candidates back
    spoils: frozenset[Figures]  # the figures it makes misleading: charts showing any of them leave the run out
    flagged: Callable[[Mapping], bool]
    note: Callable[[Mapping], str]  # the run's reason in words


UNDER_TRAINED = RunFlag(
    "under_trained", "under-trained", "Include under-trained runs", frozenset({"accuracy"}), is_under_trained, run_note
)
TIMED_UNDER_LOAD = RunFlag(
    "timing_contended",
    "timed under load",
    "Include runs timed under load",
    frozenset({"time"}),
    is_timed_under_load,
    load_note,
)
RUN_FLAGS = (UNDER_TRAINED, TIMED_UNDER_LOAD)


def flags_spoiling(*figures: Figures) -> tuple[RunFlag, ...]:
    """The flags that make any of `figures` misleading, e.g. `flags_spoiling("time")` for a runtime chart."""
    return tuple(flag for flag in RUN_FLAGS if flag.spoils & set(figures))


def flag_reasons(
    runs: pd.DataFrame, key_columns: Sequence[str], several_parts: bool, flag: RunFlag = UNDER_TRAINED
) -> pd.DataFrame:
    """Candidates (`key_columns`) with a run `flag` marks, each with a `reason` built from its runs' notes.

    `runs` holds finished runs: the key columns, part, seed, n_seeds (finished runs of the candidate on that part)
    and the columns the flag reads. Each note is prefixed by the run's seed when the candidate has several on that
    part, and by its part when `several_parts`; several notes are joined by '; '.
    """
    keys = list(key_columns)
    rows = []
    for key, candidate_runs in runs.groupby(keys, sort=False, dropna=False):
        marked = candidate_runs[[flag.flagged(run) for _, run in candidate_runs.iterrows()]]
        if marked.empty:
            continue
        notes = []
        for _, run in marked.iterrows():
            where = ([run["part"]] if several_parts else []) + ([f"seed {run['seed']}"] if run["n_seeds"] > 1 else [])
            notes.append((", ".join(where) + ": " if where else "") + flag.note(run))
        rows.append({**dict(zip(keys, key, strict=True)), "reason": "; ".join(dict.fromkeys(notes))})
    return pd.DataFrame(rows, columns=[*keys, "reason"])
