"""What a model's alarms mean on a line: false alarms, missed defects and line-stop minutes per shift.

A run stores a score s_i for every test image and its label (good or defective). A threshold t flags an
image when s_i >= t; on a test set of N good and P defective images

    FPR(t) = #{good i : s_i >= t} / N          good parts flagged: false alarms, each one stops the line
    FNR(t) = #{defective i : s_i < t} / P      defective parts let through: misses (escapes)

Each run gets its own threshold under one of three policies:

- `cost`, least expected cost on the line. With defect rate p (prevalence: the share of defective parts
  the line makes), C_stop the cost of a line stop and C_miss that of a missed defect, one part costs in
  expectation

      cost(t) = (1 − p)·FPR(t)·C_stop + p·FNR(t)·C_miss,

  counted here in line stops, with r = C_miss / C_stop:  cost(t) / C_stop = (1 − p)·FPR(t) + p·r·FNR(t).
  The candidate thresholds are every distinct score of the run plus +inf ("flag nothing": FPR 0, FNR 1),
  as `sklearn.metrics.roc_curve(drop_intermediate=False)` lists them with FPR and TPR = 1 − FNR. The chosen
  t minimises cost(t); of thresholds with equal cost (within a relative 1e-12, i.e. up to rounding) the
  highest wins, which stops the line least. Flagging every part costs 1 − p and flagging none costs p·r,
  so a model pays for itself only where it beats min(1 − p, p·r).
  **The quality limit comes first**: only thresholds whose FNR on the test set is at most the line's
  maximum escape rate e (the share of defective parts the plant lets pass; default 5 %) are candidates.
  Without it, a low defect rate makes "flag nothing" the cheapest threshold by the formula (a generated
  part1's PaDiM let 96 % of defects through), a choice no quality manager signs. The lowest score's
  threshold misses nothing, so some threshold always meets the limit; a model that meets it only by
  flagging every good part (FPR 1) meets it at no usable threshold, and `escape_limit_met` says so.
  e = 1 lifts the limit.
- `f1`: the run's stored threshold, the F1 optimum of its test set. That set is about half defective, so
  the threshold favours catching defects far more than a line with a low defect rate can afford.
- `zero_escape`: the run's lowest defective score, so nothing on the test set escapes.

Input to the rates is one row per finished run as the store's `operating_points` query gives it
(`n_good`, `n_defective`, `false_alarms_f1`, `missed_f1`, `false_alarms_zero_escape`), joined for the
`cost` policy with `least_cost_points` (`false_alarms_cost`, `missed_cost`). Rates are taken per run over
its own test set, then averaged over seeds. On a line of n parts per shift they become

    false alarms per shift = n·(1 − p)·FPR          misses per shift = n·p·FNR
    line-stop minutes per shift = false alarms per shift × minutes per stop
    expected cost per shift = false alarms per shift + r·misses per shift = n·cost(t) / C_stop  (in line stops)

A run's escape rate is measured on few defective images, so each candidate's comes with its 95 % interval:
Clopper–Pearson (`scipy.stats.binomtest`) on the misses and defective images pooled over its seeds.

Line-stop minutes count false alarms only: stopping for a real defect is the inspection doing its job,
and what a model's misses cost is weighed in the expected cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import sklearn
from scipy.stats import binomtest
from sklearn.metrics import roc_curve

Policy = Literal["cost", "f1", "zero_escape"]
LEGACY_MODEL = "legacy"
DEFAULT_DEFECT_RATE = 0.005  # 5 defective parts in 1000
DEFAULT_MISS_COST = 20.0  # a missed defect costs as much as 20 line stops
DEFAULT_MAX_ESCAPE_RATE = 0.05  # at most 5 in 100 defective parts may pass
ESCAPE_CONFIDENCE = 0.95
TIE_TOLERANCE = 1e-12  # relative: costs this close are equal, the higher threshold wins


@dataclass(frozen=True)
class PolicyColumns:
    false_alarms: str
    missed: str | None  # None: the policy misses nothing on the test set by construction


POLICY_COLUMNS: dict[str, PolicyColumns] = {
    "cost": PolicyColumns("false_alarms_cost", "missed_cost"),
    "f1": PolicyColumns("false_alarms_f1", "missed_f1"),
    "zero_escape": PolicyColumns("false_alarms_zero_escape", None),
}


@dataclass(frozen=True)
class Line:
    """A production line: its defect rate p, the cost of a missed defect in line stops, r = C_miss / C_stop, and
    the largest share of defective parts it lets pass, e (1: no limit)."""

    defect_rate: float = DEFAULT_DEFECT_RATE
    miss_cost: float = DEFAULT_MISS_COST
    max_escape_rate: float = DEFAULT_MAX_ESCAPE_RATE

    def __post_init__(self) -> None:
        if not 0 < self.defect_rate < 1 or self.miss_cost < 0:
            raise ValueError(
                "the defect rate must lie strictly between 0 and 1 and a miss cost at least 0 line stops, "
                f"got {self.defect_rate} and {self.miss_cost}"
            )
        if not 0 <= self.max_escape_rate <= 1:
            raise ValueError(f"the maximum escape rate must lie between 0 and 1, got {self.max_escape_rate}")

    def cost(self, fpr: np.ndarray | float, fnr: np.ndarray | float) -> np.ndarray | float:
        """Expected cost per part in line stops: (1 − p)·FPR + p·r·FNR."""
        return (1 - self.defect_rate) * fpr + self.defect_rate * self.miss_cost * fnr


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on one run's test set and what it flags there."""

    threshold: float  # inf: flag nothing
    false_alarms: int
    missed: int
    n_good: int
    n_defective: int
    cost: float  # expected cost per part, in line stops
    escape_limit_met: bool = True  # False: only a threshold flagging every good part keeps escapes within the limit

    @property
    def fpr(self) -> float:
        return self.false_alarms / self.n_good

    @property
    def fnr(self) -> float:
        return self.missed / self.n_defective


def least_cost_point(
    anomalous: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray, line: Line
) -> OperatingPoint:
    """The threshold of least expected cost on `line` among those within its escape limit, for one run's test
    images (see the module docstring).

    `anomalous[i]` is True for a defective image; both kinds must be present (ValueError otherwise).
    """
    labels = np.asarray(anomalous, dtype=bool)
    values = np.asarray(scores, dtype=float)
    n_defective = int(labels.sum())
    n_good = len(labels) - n_defective
    if n_good == 0 or n_defective == 0:
        raise ValueError(f"a threshold needs good and defective test images, got {n_good} and {n_defective}")
    if not np.isfinite(values).all():
        raise ValueError("every score must be a finite number")
    with sklearn.config_context(
        skip_parameter_validation=True, assume_finite=True
    ):  # checked here; called once per run
        fpr, tpr, thresholds = roc_curve(labels, values, drop_intermediate=False)
    within = (1 - tpr) <= line.max_escape_rate + TIE_TOLERANCE  # the last threshold, the lowest score, misses none
    costs = np.where(within, np.asarray(line.cost(fpr, 1 - tpr)), np.inf)
    lowest = costs.min()
    best = int(np.flatnonzero(costs <= lowest + TIE_TOLERANCE * lowest)[0])  # thresholds fall: the first is the highest
    threshold = float(thresholds[best])
    return OperatingPoint(
        threshold=threshold,
        false_alarms=int((values[~labels] >= threshold).sum()),
        missed=int((values[labels] < threshold).sum()),
        n_good=n_good,
        n_defective=n_defective,
        cost=float(costs[best]),
        escape_limit_met=bool((within & (fpr < 1)).any()),
    )


def least_cost_points(scores: pd.DataFrame, line: Line) -> pd.DataFrame:
    """One row per run of `scores` (`run_id`, `label` 'normal'/'anomalous', `score`): its least-cost threshold.

    Columns `run_id`, `cost_threshold` (inf: flag nothing), `false_alarms_cost`, `missed_cost`, `expected_cost`
    (per part, in line stops) and `escape_limit_met`. Runs lacking good or defective test images, or with a score
    that is not a finite number, are left out.
    """
    columns = ["run_id", "cost_threshold", "false_alarms_cost", "missed_cost", "expected_cost", "escape_limit_met"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    ordered = scores.sort_values("run_id", kind="stable")
    run_ids, starts = np.unique(ordered["run_id"].to_numpy(), return_index=True)
    anomalous = (ordered["label"] == "anomalous").to_numpy()
    values = ordered["score"].to_numpy(dtype=float)
    rows = []
    for run_id, run in zip(run_ids, np.split(np.arange(len(ordered)), starts[1:]), strict=True):
        if anomalous[run].all() or not anomalous[run].any() or not np.isfinite(values[run]).all():
            continue
        point = least_cost_point(anomalous[run], values[run], line)
        rows.append((run_id, point.threshold, point.false_alarms, point.missed, point.cost, point.escape_limit_met))
    return pd.DataFrame(rows, columns=columns)


def rates_per_candidate(runs: pd.DataFrame, policy: Policy = "f1") -> pd.DataFrame:
    """One row per (candidate, model): false alarms per 1000 good parts and misses per 1000 defective ones.

    Each run's rates are taken over its own test set, then averaged over seeds, so a seed with a larger
    test set does not outweigh the others. `escape_low` and `escape_high` bound the escape rate (the share of
    defective parts let through) at 95 % confidence, from the misses and defective images of all seeds
    (`escape_interval`); `defective_test_images` counts those. For the `cost` policy (runs joined with
    `least_cost_points`), `escape_limit_met` is True when every seed met the line's escape limit at a usable
    threshold. Sorted by false alarms, fewest first.
    """
    if policy not in POLICY_COLUMNS:
        raise ValueError(f"threshold policy must be one of {sorted(POLICY_COLUMNS)}, not {policy!r}")
    columns = POLICY_COLUMNS[policy]
    missed = runs[columns.missed] if columns.missed else 0
    per_run = runs.assign(
        false_alarms_per_1000=1000 * runs[columns.false_alarms] / runs["n_good"],
        missed_per_1000=1000 * missed / runs["n_defective"],
        missed=missed,
    )
    limit = {"escape_limit_met": ("escape_limit_met", "all")} if "escape_limit_met" in runs else {}
    rates = (
        per_run.groupby(["candidate", "model"])
        .agg(
            false_alarms_per_1000=("false_alarms_per_1000", "mean"),
            missed_per_1000=("missed_per_1000", "mean"),
            seeds=("seed", "nunique"),
            good_test_images=("n_good", "max"),
            missed=("missed", "sum"),
            defective_test_images=("n_defective", "sum"),
            **limit,
        )
        .reset_index()
    )
    intervals = [escape_interval(k, n) for k, n in zip(rates["missed"], rates["defective_test_images"], strict=True)]
    rates["escape_low"], rates["escape_high"] = [low for low, _ in intervals], [high for _, high in intervals]
    return rates.drop(columns="missed").sort_values("false_alarms_per_1000", kind="stable").reset_index(drop=True)


def escape_interval(missed: int, defective: int) -> tuple[float, float]:
    """The 95 % Clopper–Pearson interval of an escape rate seen as `missed` of `defective` parts."""
    interval = binomtest(int(missed), int(defective)).proportion_ci(ESCAPE_CONFIDENCE, method="exact")
    return float(interval.low), float(interval.high)


def legacy_rate(rates: pd.DataFrame) -> float | None:
    """The legacy check's false alarms per 1000 good parts in a `rates_per_candidate` table, or None without one."""
    legacy = rates.loc[rates["model"] == LEGACY_MODEL, "false_alarms_per_1000"]
    return None if legacy.empty else float(legacy.iloc[0])


def flags_nothing(runs: pd.DataFrame) -> list[str]:
    """Candidates whose least-cost threshold is "flag nothing" on at least one seed (`cost_threshold` inf)."""
    silent = runs.loc[np.isinf(runs["cost_threshold"]), "candidate"]
    return sorted(silent.unique())


def on_the_line(
    rates: pd.DataFrame, line: Line, parts_per_shift: int, minutes_per_stop: float | None = None
) -> pd.DataFrame:
    """`rates` turned into a shift of `parts_per_shift` parts on `line`, cheapest candidate first.

    Adds `false_alarms_per_shift` = n·(1 − p)·FPR, `misses_per_shift` = n·p·FNR and `expected_cost_per_shift`
    = false alarms + r·misses (in line stops); with `minutes_per_stop`, `stop_minutes_per_shift`. With a
    legacy candidate in `rates`, also what each candidate saves against it per shift: `cost_saved_per_shift`
    (line stops) and, with minutes, `minutes_avoided_per_shift`. Sorted by expected cost, then false alarms.
    """
    if parts_per_shift < 1 or (minutes_per_stop is not None and minutes_per_stop < 0):
        raise ValueError(
            "parts per shift must be at least 1 and minutes per stop at least 0, "
            f"got {parts_per_shift} and {minutes_per_stop}"
        )
    p, n = line.defect_rate, parts_per_shift
    table = rates.assign(
        false_alarms_per_shift=n * (1 - p) * rates["false_alarms_per_1000"] / 1000,
        misses_per_shift=n * p * rates["missed_per_1000"] / 1000,
    )
    table["expected_cost_per_shift"] = table["false_alarms_per_shift"] + line.miss_cost * table["misses_per_shift"]
    if minutes_per_stop is not None:
        table["stop_minutes_per_shift"] = table["false_alarms_per_shift"] * minutes_per_stop
    legacy = table[table["model"] == LEGACY_MODEL]
    if not legacy.empty:
        table["cost_saved_per_shift"] = legacy["expected_cost_per_shift"].iloc[0] - table["expected_cost_per_shift"]
        if minutes_per_stop is not None:
            table["minutes_avoided_per_shift"] = (
                legacy["stop_minutes_per_shift"].iloc[0] - table["stop_minutes_per_shift"]
            )
    return table.sort_values(["expected_cost_per_shift", "false_alarms_per_shift"], kind="stable").reset_index(
        drop=True
    )


PARTS_WITHOUT_SHIFT = 1000  # figures are per 1000 parts made until the line's parts per shift are given


@dataclass(frozen=True)
class Shift:
    """A shift on the line: parts made (None: figures per `PARTS_WITHOUT_SHIFT` parts) and minutes lost per stop."""

    parts: int | None = None
    minutes_per_stop: float | None = None

    @property
    def complete(self) -> bool:
        return bool(self.parts) and self.minutes_per_stop is not None

    @property
    def per(self) -> str:
        return "per shift" if self.parts else f"per {PARTS_WITHOUT_SHIFT} parts made"


def line_figures(runs: pd.DataFrame, policy: Policy, line: Line, shift: Shift) -> pd.DataFrame:
    """One part's runs (`operating_points`, joined with `least_cost_points` for the `cost` policy) as `on_the_line`
    figures per candidate, with its escape rate's interval in words (`escape_interval`)."""
    table = on_the_line(
        rates_per_candidate(runs, policy), line, shift.parts or PARTS_WITHOUT_SHIFT, shift.minutes_per_stop
    )
    table["escape_interval"] = [
        f"{100 * low:.0f}–{100 * high:.0f} % of {n}" if n else "no defective image"
        for low, high, n in zip(table["escape_low"], table["escape_high"], table["defective_test_images"], strict=True)
    ]
    return table
