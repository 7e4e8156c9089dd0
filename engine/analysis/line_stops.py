"""What a model's alarms mean on the line: false alarms and missed defects per 1000 parts, and line-stop minutes.

Input is one row per finished run with alarm counts at two threshold policies, as the store's
`operating_points` query gives them: `n_good`, `n_defective`, `false_alarms_f1`, `missed_f1` (at the run's
F1-optimal threshold) and `false_alarms_zero_escape` (at the lowest defective score, so nothing escapes).
A false alarm stops the line for nothing; a defective part should stop it under any model, so line-stop
minutes count false alarms only and treat every part of a shift as good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

Policy = Literal["f1", "zero_escape"]
LEGACY_MODEL = "legacy"


@dataclass(frozen=True)
class PolicyColumns:
    false_alarms: str
    missed: str | None  # None: the policy misses nothing on the test set by construction


POLICY_COLUMNS: dict[str, PolicyColumns] = {
    "f1": PolicyColumns("false_alarms_f1", "missed_f1"),
    "zero_escape": PolicyColumns("false_alarms_zero_escape", None),
}


def rates_per_candidate(runs: pd.DataFrame, policy: Policy = "f1") -> pd.DataFrame:
    """One row per (candidate, model): false alarms per 1000 good parts and misses per 1000 defective ones.

    Each run's rates are taken over its own test set, then averaged over seeds, so a seed with a larger
    test set does not outweigh the others. Sorted by false alarms, fewest first.
    """
    if policy not in POLICY_COLUMNS:
        raise ValueError(f"threshold policy must be one of {sorted(POLICY_COLUMNS)}, not {policy!r}")
    columns = POLICY_COLUMNS[policy]
    per_run = runs.assign(
        false_alarms_per_1000=1000 * runs[columns.false_alarms] / runs["n_good"],
        missed_per_1000=1000 * runs[columns.missed] / runs["n_defective"] if columns.missed else 0.0,
    )
    return (
        per_run.groupby(["candidate", "model"])
        .agg(
            false_alarms_per_1000=("false_alarms_per_1000", "mean"),
            missed_per_1000=("missed_per_1000", "mean"),
            seeds=("seed", "nunique"),
            good_test_images=("n_good", "max"),
        )
        .reset_index()
        .sort_values("false_alarms_per_1000", kind="stable")
        .reset_index(drop=True)
    )


def legacy_rate(rates: pd.DataFrame) -> float | None:
    """The legacy check's false alarms per 1000 good parts in a `rates_per_candidate` table, or None without one."""
    legacy = rates.loc[rates["model"] == LEGACY_MODEL, "false_alarms_per_1000"]
    return None if legacy.empty else float(legacy.iloc[0])


def against_legacy(
    rates: pd.DataFrame, parts_per_shift: int | None = None, minutes_per_stop: float | None = None
) -> pd.DataFrame:
    """`rates` with `vs_legacy_per_1000` (false alarms fewer than legacy's) and, given a shift, its minutes.

    With `parts_per_shift` and `minutes_per_stop`, adds `stop_minutes_per_shift` (the candidate's false alarms
    times the minutes each stop costs) and `minutes_avoided_per_shift` (the same for the difference to legacy).
    ValueError when `rates` holds no legacy candidate.
    """
    reference = legacy_rate(rates)
    if reference is None:
        raise ValueError(f"no {LEGACY_MODEL!r} candidate to compare against")
    table = rates.assign(vs_legacy_per_1000=reference - rates["false_alarms_per_1000"])
    if parts_per_shift is None or minutes_per_stop is None:
        return table
    if parts_per_shift < 1 or minutes_per_stop < 0:
        raise ValueError(
            f"parts per shift must be at least 1 and minutes per stop at least 0, got {parts_per_shift} and {minutes_per_stop}"
        )
    stops_per_rate = parts_per_shift / 1000 * minutes_per_stop
    return table.assign(
        stop_minutes_per_shift=table["false_alarms_per_1000"] * stops_per_rate,
        minutes_avoided_per_shift=table["vs_legacy_per_1000"] * stops_per_rate,
    )
