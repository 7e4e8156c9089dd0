"""The model-selection recommendation in plain words: which candidate, for which parts, its figures and why.

A manager reads one card per machine: the candidate chosen from that machine's `SelectionResult` (its knee,
or the front point closest to the given weights), its accuracy and inference time with their seed spread, the
machine that time was measured on (a local processor, or the study's GPU: different measurements, never
points on one axis), its false alarms against the legacy check on a single part, and the rule that chose it.
Across several parts every figure is the candidate's worst, and the card names the part each worst figure
comes from.

Candidates whose training stopped early, or whose time was measured under load, are left out of the choice by
default (`engine.analysis.flags`); `under_trained_reasons` says why training stopped in the words of
`engine.analysis.training.run_note`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.analysis.flags import UNDER_TRAINED, flag_reasons
from engine.analysis.line_stops import LEGACY_MODEL, legacy_rate
from engine.analysis.results_table import LOCAL_SOURCE
from engine.analysis.selection import HARDWARE_COLUMN, Criterion, SelectionResult, chosen, mean_column, std_column

INFERENCE = Criterion("inference_ms", "min")
# Chen et al. 2025, section 4: i9-13900K CPU and RTX 4090 GPU, through anomalib's full pipeline.
STUDY_TIMING = "timed by the study on an RTX 4090 GPU"
STUDY_HARDWARE = "the study's RTX 4090 GPU (Chen et al. 2025)"  # the machine of every published time
UNRECORDED_HARDWARE = "a machine the runs did not record"
NO_RECOMMENDATION = "No candidate timed on this machine meets every limit. Loosen the limits or choose other parts."


def hardware_label(processor: Any, gpu: Any, cpu_count: Any) -> str:
    """A local machine in words: 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz, 2 CPUs' (', and <GPU>' when it had one).

    Runs that recorded none of the three share `UNRECORDED_HARDWARE`.
    """
    if not any(_present(value) for value in (processor, gpu, cpu_count)):
        return UNRECORDED_HARDWARE
    text = str(processor) if _present(processor) else "an unnamed processor"
    text += f", {int(cpu_count)} CPUs" if _present(cpu_count) else ""
    return text + (f", and {gpu}" if _present(gpu) else "")


def _present(value: Any) -> bool:
    return not (pd.isna(value) or value == "")


@dataclass(frozen=True)
class Recommendation:
    parts: tuple[str, ...]
    candidate: str
    hardware: str  # the machine the candidate was chosen among others timed on
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
    alarm_rates: pd.DataFrame | None = None,
) -> Recommendation | None:
    """The recommendation from `result` (selected on INFERENCE and `accuracy`), or None when nothing is feasible.

    `result` should hold candidates timed on one machine (`selection.select_per_hardware` gives one result
    per machine); the machine is read from the candidates' `hardware` column (the study's GPU for published
    figures). `labels` names metrics for people (`image_auroc` → 'Image AUROC (…)'; the part in brackets is
    dropped). The knee is chosen, or the preferred point when `result` was selected with weights; ties go to
    the most accurate. `alarm_rates` is a single part's `rates_per_candidate` table at the F1-optimal threshold.
    """
    accuracy_weight = None if result.weights is None else result.weights[accuracy.metric]
    pick = chosen(result, accuracy)
    if pick is None:
        return None
    several = len(parts) > 1
    figures = ", ".join(
        [
            figure_text(pick, accuracy, labels, several),
            figure_text(pick, INFERENCE, labels, several) + f" ({timed_on(pick)})",
        ]
    )
    alarms = alarm_text(alarm_rates, pick["candidate"]) if alarm_rates is not None and not several else ""
    machine = machine_of(pick)
    return Recommendation(
        parts=tuple(parts),
        candidate=str(pick["candidate"]),
        hardware=machine,
        figures=figures + (f", {alarms}" if alarms else ""),
        why=why_text(result, accuracy_weight, several, machine),
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


def machine_of(row: pd.Series) -> str:
    """The machine a candidate's time was measured on: its `hardware`, else the study's GPU for published figures."""
    if row.get("source", LOCAL_SOURCE) != LOCAL_SOURCE:
        return STUDY_HARDWARE
    hardware = row.get(HARDWARE_COLUMN)
    return hardware if isinstance(hardware, str) and hardware else UNRECORDED_HARDWARE


def timed_on(row: pd.Series) -> str:
    """Where the candidate's inference time comes from: the study's GPU, or the machine of the local runs."""
    if row.get("source", LOCAL_SOURCE) != LOCAL_SOURCE:
        return STUDY_TIMING
    machine = machine_of(row)
    return "measured here" if machine == UNRECORDED_HARDWARE else f"measured here on {machine}"


def alarm_text(rates: pd.DataFrame, candidate: str) -> str:
    """'4 false alarms per 1000 good parts vs 61 for the legacy check', or '' when the candidate has no local runs."""
    own = rates.loc[rates["candidate"] == candidate, "false_alarms_per_1000"]
    if own.empty:
        return ""
    text = f"{own.iloc[0]:.0f} false alarms per 1000 good parts"
    legacy = legacy_rate(rates)
    is_legacy = (rates.loc[rates["candidate"] == candidate, "model"] == LEGACY_MODEL).any()
    return text + (f" vs {legacy:.0f} for the legacy check" if legacy is not None and not is_legacy else "")


def why_text(result: SelectionResult, accuracy_weight: float | None, several: bool, machine: str | None = None) -> str:
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
        f"{rule}. {len(result.front)} of {len(result.feasible)} acceptable candidates"
        + (f" timed on {machine}" if machine else "")
        + " are on the front"
        + (f" after the limits {limits}" if limits else "")
        + (" (worst figure across the chosen parts)" if several else "")
    )


def under_trained_reasons(runs: pd.DataFrame, key_columns: Sequence[str], several_parts: bool) -> pd.DataFrame:
    """Candidates (`key_columns`) with an under-trained run, each with a `reason` naming how its training stopped.

    `flags.flag_reasons` with the `UNDER_TRAINED` flag: the reason is `training.run_note` of each under-trained run,
    e.g. "stopped by the 10-minute budget after 37 epochs, before its loss levelled off", prefixed by its seed when
    the candidate has several on that part and by its part when `several_parts`; several are joined by '; '.
    """
    return flag_reasons(runs, key_columns, several_parts, UNDER_TRAINED)
