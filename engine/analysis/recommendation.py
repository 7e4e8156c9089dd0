"""The model-selection recommendation in plain words: which candidate, for which parts, its figures and why.

A manager reads one card: the candidate chosen from a `SelectionResult` (its knee, or the front point closest
to the given weights), its accuracy and inference time with their seed spread, where that time was measured
(this machine's processor, or the study's GPU: the two are different measurements, not points on one axis),
its false alarms against the legacy check on a single part, and the rule that chose it. Across several parts
every figure is the candidate's worst, and the card names the part each worst figure comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from engine.analysis.line_stops import LEGACY_MODEL, legacy_rate
from engine.analysis.results_table import LOCAL_SOURCE
from engine.analysis.selection import Criterion, SelectionResult, mean_column, std_column

INFERENCE = Criterion("inference_ms", "min")
# Chen et al. 2025, section 4: i9-13900K CPU and RTX 4090 GPU, through anomalib's full pipeline.
STUDY_TIMING = "timed by the study on an RTX 4090 GPU"


@dataclass(frozen=True)
class Recommendation:
    parts: tuple[str, ...]
    candidate: str
    figures: str  # "Image AUROC 0.83 ± 0.02, 45 ± 3 ms per image (measured here on …), 4 false alarms …"
    why: str  # the rule that chose it and how many candidates it was chosen from
    not_clearly_worse: tuple[str, ...]  # candidates within one std of the front

    @property
    def heading(self) -> str:
        return f"{', '.join(self.parts)}: {self.candidate}"

    def markdown(self) -> str:
        return f"#### {self.heading}\n{self.figures}.\n\nWhy: {self.why}."


def recommend(
    result: SelectionResult,
    parts: Sequence[str],
    accuracy: Criterion,
    labels: Mapping[str, str],
    *,
    hardware: pd.DataFrame | None = None,
    alarm_rates: pd.DataFrame | None = None,
) -> Recommendation | None:
    """The recommendation from `result` (selected on INFERENCE and `accuracy`), or None when nothing is feasible.

    `labels` names metrics for people (`image_auroc` → 'Image AUROC (…)'; the part in brackets is dropped).
    The knee is chosen, or the preferred point when `result` was selected with weights; ties go to the most
    accurate.
    `hardware` holds local runs' `candidate`, `part`, `processor`, `torch_threads` (the store's runtime table);
    `alarm_rates` a single part's `rates_per_candidate` table at the F1-optimal threshold.
    """
    accuracy_weight = None if result.weights is None else result.weights[accuracy.metric]
    column = "knee" if accuracy_weight is None else "preferred"
    chosen = result.feasible[result.feasible[column]]
    if chosen.empty:
        return None
    pick = chosen.sort_values(mean_column(accuracy.metric), ascending=False, kind="stable").iloc[0]
    several = len(parts) > 1
    figures = ", ".join(
        [
            figure_text(pick, accuracy, labels, several),
            figure_text(pick, INFERENCE, labels, several) + f" ({timed_on(pick, hardware)})",
        ]
    )
    alarms = alarm_text(alarm_rates, pick["candidate"]) if alarm_rates is not None and not several else ""
    return Recommendation(
        parts=tuple(parts),
        candidate=str(pick["candidate"]),
        figures=figures + (f", {alarms}" if alarms else ""),
        why=why_text(result, accuracy_weight, several),
        not_clearly_worse=tuple(result.feasible.loc[result.feasible["near_front"], "candidate"]),
    )


def figure_text(row: pd.Series, criterion: Criterion, labels: Mapping[str, str], name_part: bool = False) -> str:
    """'Image AUROC 0.83 ± 0.02' or '45 ± 3 ms per image'; with `name_part`, ' on part16' (its worst part) after it."""
    mean, std = row[mean_column(criterion.metric)], row.get(std_column(criterion.metric))
    if criterion.metric == INFERENCE.metric:
        text = milliseconds(mean) + (f" ± {milliseconds(std)}" if pd.notna(std) else "") + " ms per image"
    else:
        text = f"{labels[criterion.metric].split(' (')[0]} {mean:.2f}" + (f" ± {std:.2f}" if pd.notna(std) else "")
    worst_part = row.get(f"{criterion.metric}_worst_part")
    return text + (f" on {worst_part}" if name_part and isinstance(worst_part, str) else "")


def milliseconds(value: float) -> str:
    """Three significant digits below 100 ms ('0.412', '45.3'), whole milliseconds above ('193', '1234')."""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def timed_on(row: pd.Series, hardware: pd.DataFrame | None) -> str:
    """Where the candidate's inference time comes from: the study's GPU, or the processors of the local runs."""
    if row.get("source", LOCAL_SOURCE) != LOCAL_SOURCE:
        return STUDY_TIMING
    runs = pd.DataFrame() if hardware is None else hardware[hardware["candidate"] == row["candidate"]]
    worst_part = row.get(f"{INFERENCE.metric}_worst_part")
    if isinstance(worst_part, str) and not runs.empty:
        runs = runs[runs["part"] == worst_part]
    if runs.empty:
        return "measured here"
    machines = dict.fromkeys(
        (processor if isinstance(processor, str) and processor else "an unnamed processor")
        + (f", {threads:.0f} CPU threads" if pd.notna(threads) else "")
        for processor, threads in zip(runs["processor"], runs["torch_threads"], strict=True)
    )
    return "measured here on " + " and ".join(machines)


def alarm_text(rates: pd.DataFrame, candidate: str) -> str:
    """'4 false alarms per 1000 good parts vs 61 for the legacy check', or '' when the candidate has no local runs."""
    own = rates.loc[rates["candidate"] == candidate, "false_alarms_per_1000"]
    if own.empty:
        return ""
    text = f"{own.iloc[0]:.0f} false alarms per 1000 good parts"
    legacy = legacy_rate(rates)
    is_legacy = (rates.loc[rates["candidate"] == candidate, "model"] == LEGACY_MODEL).any()
    return text + (f" vs {legacy:.0f} for the legacy check" if legacy is not None and not is_legacy else "")


def why_text(result: SelectionResult, accuracy_weight: float | None, several: bool) -> str:
    """The rule that chose the candidate, how many acceptable candidates it chose among, and under which limits."""
    if accuracy_weight is None:
        rule = f"the knee of the accuracy/time front: {result.knee_method}"
    else:
        rule = (
            f"closest to your weights ({accuracy_weight:.0%} accuracy, {1 - accuracy_weight:.0%} speed) "
            "among the front, by pymoo pseudo-weights"
        )
    limits = "; ".join(
        c.metric + (f" ≥ {c.floor:g}" if c.floor is not None else f" ≤ {c.ceiling:g}") for c in result.constraints
    )
    return (
        f"{rule}. {len(result.front)} of {len(result.feasible)} acceptable candidates are on the front"
        + (f" after the limits {limits}" if limits else "")
        + (" (worst figure across the chosen parts)" if several else "")
    )
