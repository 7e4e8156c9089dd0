"""Choosing models on several criteria at once, as in the study's section 5.1 (Figs 13-14).

`select` takes one row per candidate with `<metric>_mean` / `<metric>_std` columns (see `candidate_table`),
excludes candidates lacking a figure or outside an acceptability floor/ceiling (each with a reason), finds the
Pareto front of the rest with pymoo's non-dominated sorting and marks its knee.

Knee method: the study picks "knee solutions", compromises where gaining a little more on one criterion
costs disproportionately much on another. pymoo's `HighTradeoffPoints` measures exactly that: for each front
point the least sacrifice per unit of gain of moving to one of its neighbours (sacrifice and gain: the summed
amounts by which the neighbour is worse and better), flagging the points where that least cost is an outlier
(2 std above the mean, else the largest if above 1 std). It runs on the front after min-max normalisation (so milliseconds and AUROC weigh alike), needs at
least three distinct points and may find no outlier; the knee is then the front point closest (Euclidean) to
the ideal point of the normalised front, a rule that is always defined. `SelectionResult.knee_method` names
the rule used. Preferences, when given as criterion weights, go through pymoo's `PseudoWeights` instead.

A figure whose std is missing (a published single value, a single seed) counts as exact.

Like for like: an inference time is a property of a model *and the machine it ran on*. The same model runs
many times faster on the study's RTX 4090 GPU than on a 2-core CPU, so a front over times from several machines
would rank the machines, not the models. `select_per_hardware` therefore splits candidates by their `hardware`
column and runs `select` within each group: every front, knee and preference is among candidates timed on
one machine, and no candidate is ever dominated by one measured elsewhere. `leave_out` removes candidates
that must not compete (e.g. under-trained ones) before any front is drawn, keeping each one's reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pymoo.mcdm.high_tradeoff import HighTradeoffPoints
from pymoo.mcdm.pseudo_weights import PseudoWeights
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

Direction = Literal["max", "min"]

CANDIDATE_KEY = ("model", "backbone")
HARDWARE_COLUMN = "hardware"  # names the machine a candidate's times were measured on
KNEE_BY_TRADEOFF = "pymoo HighTradeoffPoints on the min-max normalised front"
KNEE_BY_IDEAL = "closest to the ideal point after min-max normalisation of the front"


@dataclass(frozen=True)
class Criterion:
    metric: str
    direction: Direction

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction of {self.metric} must be 'max' or 'min', not {self.direction!r}")


@dataclass(frozen=True)
class Constraint:
    """Acceptability bounds on a metric's mean: floor <= mean <= ceiling, either bound optional."""

    metric: str
    floor: float | None = None
    ceiling: float | None = None

    def __post_init__(self) -> None:
        if self.floor is None and self.ceiling is None:
            raise ValueError(f"constraint on {self.metric} needs a floor or a ceiling")
        if self.floor is not None and self.ceiling is not None and self.floor > self.ceiling:
            raise ValueError(f"constraint on {self.metric}: floor {self.floor} is above ceiling {self.ceiling}")

    def violation(self, value: float) -> str | None:
        if self.floor is not None and value < self.floor:
            return f"{self.metric} {value:g} is below the floor {self.floor:g}"
        if self.ceiling is not None and value > self.ceiling:
            return f"{self.metric} {value:g} is above the ceiling {self.ceiling:g}"
        return None


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """What `select` found.

    `feasible` holds the candidates with every criterion and constraint figure that pass every constraint,
    in input order, with these columns added:
      on_front        not dominated on the criteria means; identical candidates are on the front together.
      near_front      dominated, but no longer once its means move one std in its favour and every front
                      member's one std against it: the seeds cannot tell it apart from the front.
      ideal_distance  Euclidean distance to the ideal point of the min-max normalised front (NaN off the front).
      knee            the knee of the front by `knee_method`.
      preferred       the front point whose pseudo-weights are closest to the given weights (all False without).
    `excluded` holds the other candidates with a plain-words `reason`.
    `weights` are the criterion weights `preferred` was found with, scaled to sum to one (None without);
    `constraints` the acceptability limits applied.
    """

    criteria: tuple[Criterion, ...]
    feasible: pd.DataFrame
    excluded: pd.DataFrame
    knee_method: str
    weights: Mapping[str, float] | None = None
    constraints: tuple[Constraint, ...] = ()

    @property
    def front(self) -> pd.DataFrame:
        return self.feasible[self.feasible["on_front"]]


def mean_column(metric: str) -> str:
    return f"{metric}_mean"


def std_column(metric: str) -> str:
    return f"{metric}_std"


# A metric whose runs store its 95 % interval over the test images keeps it as `<metric>_low` and `<metric>_high`
# (image AUROC: `engine.evaluation.metrics.auroc_interval`); with one seed it is the figure's error bar.
INTERVAL_ENDS = ("low", "high")


def error_bar(points: pd.DataFrame, metric: str) -> dict:
    """Plotly error bar of `metric` for `points` (candidate rows): the std over seeds, or where a candidate has one
    seed and the metric's interval was stored, that interval (asymmetric)."""
    std = points[std_column(metric)]
    low, high = (mean_column(f"{metric}_{end}") for end in INTERVAL_ENDS)
    if low not in points or high not in points:
        return {"array": std.fillna(0)}
    mean = points[mean_column(metric)]
    single = std.isna() & points[low].notna()
    return {
        "array": std.mask(single, points[high] - mean).fillna(0),
        "arrayminus": std.mask(single, mean - points[low]).fillna(0),
    }


def candidate_table(long: pd.DataFrame, key_columns: Sequence[str] = CANDIDATE_KEY) -> pd.DataFrame:
    """One row per candidate with `<metric>_mean` and `<metric>_std` columns, from long rows (keys, metric, mean, std).

    Rows are joined on `key_columns` alone, so figures from different sources meet in one row: the study's
    Table 4 (part1 runtime) and Table 5 (part1 accuracy) both name candidates by (model, backbone), with ''
    as the backbone of a model that has none (DRAEM, DSR, EfficientAD, GANomaly). A metric a candidate has
    no row for is NaN. Two rows for one candidate and metric mean another part, condition or preset is mixed
    in unkeyed, so that is a ValueError rather than a silent pick.
    """
    keys = list(key_columns)
    duplicated = long.duplicated([*keys, "metric"], keep=False)
    if duplicated.any():
        example = long.loc[duplicated, [*keys, "metric"]].iloc[0].to_dict()
        raise ValueError(
            f"several rows for {example}; filter the rows or add the column that tells them apart to the key"
        )
    metrics = list(dict.fromkeys(long["metric"]))
    wide = long.pivot(index=keys, columns="metric", values=["mean", "std"])
    wide.columns = [f"{metric}_{statistic}" for statistic, metric in wide.columns]
    columns = [column(metric) for metric in metrics for column in (mean_column, std_column)]
    return wide[columns].astype(float).reset_index()


def select(
    candidates: pd.DataFrame,
    criteria: Iterable[Criterion],
    constraints: Iterable[Constraint] = (),
    weights: Mapping[str, float] | None = None,
) -> SelectionResult:
    """Exclude, then find the front, its knee, the near-front candidates and, with `weights`, the preferred one.

    `weights` maps each criterion's metric to a non-negative importance; they are scaled to sum to one.
    """
    criteria, constraints = tuple(criteria), tuple(constraints)
    _check_criteria(criteria)
    reasons = _exclusion_reasons(candidates, criteria, constraints)
    kept = reasons == ""
    feasible = candidates[kept].reset_index(drop=True)
    excluded = candidates[~kept].assign(reason=reasons[~kept]).reset_index(drop=True)

    objectives = _objectives(feasible, criteria)
    spreads = np.column_stack([_stds(feasible, criterion.metric) for criterion in criteria])
    on_front = np.zeros(len(feasible), dtype=bool)
    on_front[NonDominatedSorting().do(objectives, only_non_dominated_front=True)] = True
    near_front = ~on_front & ~_dominated(objectives - spreads, by=(objectives + spreads)[on_front])

    points, point_of_member = np.unique(objectives[on_front], axis=0, return_inverse=True)
    point_of_member = point_of_member.reshape(-1)
    normalised = _min_max(points)
    knee_points, knee_method = _knee(normalised)
    vector = None if weights is None else _weight_vector(weights, criteria)
    preferred_points = [] if vector is None else _preferred(normalised, vector)

    feasible = feasible.assign(
        on_front=on_front,
        near_front=near_front,
        ideal_distance=_on_front_values(np.linalg.norm(normalised, axis=1)[point_of_member], on_front),
        knee=_on_front_values(np.isin(point_of_member, knee_points), on_front),
        preferred=_on_front_values(np.isin(point_of_member, preferred_points), on_front),
    )
    scaled = None if vector is None else {c.metric: float(w) for c, w in zip(criteria, vector, strict=True)}
    return SelectionResult(criteria, feasible, excluded, knee_method, scaled, constraints)


def hardware_groups(candidates: pd.DataFrame, column: str = HARDWARE_COLUMN) -> dict[str, pd.DataFrame]:
    """Candidates split by the machine their times were measured on, groups in order of first appearance.

    A candidate without a `column` value has no known machine and cannot be compared with anyone's time:
    ValueError, rather than a guess. No candidates, no groups.
    """
    if candidates.empty:
        return {}
    if column not in candidates:
        raise ValueError(f"candidates need a {column!r} column naming the machine their times were measured on")
    if candidates[column].isna().any():
        example = candidates.loc[candidates[column].isna()].iloc[0].drop(labels=[column]).to_dict()
        raise ValueError(f"no {column} for {example}")
    return {
        str(machine): group.reset_index(drop=True)
        for machine, group in candidates.groupby(column, sort=False, dropna=False)
    }


def select_per_hardware(
    candidates: pd.DataFrame,
    criteria: Iterable[Criterion],
    constraints: Iterable[Constraint] = (),
    weights: Mapping[str, float] | None = None,
    column: str = HARDWARE_COLUMN,
) -> dict[str, SelectionResult]:
    """`select` within each hardware group (see `hardware_groups`): one front, knee and preference per machine.

    Candidates on different machines never meet on one front, so no one is dominated by a time measured
    elsewhere. The same criteria, limits and weights apply in every group; no candidates, no groups.
    """
    criteria, constraints = tuple(criteria), tuple(constraints)
    return {
        machine: select(group, criteria, constraints, weights)
        for machine, group in hardware_groups(candidates, column).items()
    }


def leave_out(
    candidates: pd.DataFrame, reasons: pd.DataFrame, key_columns: Sequence[str] = CANDIDATE_KEY
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candidates without a row in `reasons` (key columns and `reason`), and the others with their reason.

    Returns (kept, left out); both keep the candidates' input order.
    """
    keys = list(key_columns)
    if reasons.empty or candidates.empty:
        return candidates.reset_index(drop=True), candidates.iloc[0:0].assign(reason=pd.Series(dtype=str))
    marked = candidates.merge(reasons[[*keys, "reason"]], on=keys, how="left", validate="many_to_one")
    gone = marked["reason"].notna().to_numpy()
    kept = candidates[~gone].reset_index(drop=True)
    return kept, marked[gone].reset_index(drop=True)


def worst_case_across_parts(
    long: pd.DataFrame,
    parts: Sequence[str],
    criteria: Iterable[Criterion],
    key_columns: Sequence[str] = CANDIDATE_KEY,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per candidate, each criterion's worst mean over `parts`: the min for 'max' criteria, the max for 'min' ones.

    The std is that of the part giving the worst mean, and `<metric>_worst_part` names that part. A candidate
    lacking a criterion figure for any of `parts` is excluded. Returns (candidates ready for `select`,
    excluded candidates with a `reason`).
    """
    criteria, parts, keys = tuple(criteria), list(dict.fromkeys(parts)), list(key_columns)
    if not parts:
        raise ValueError("choose at least one part")
    metrics = [criterion.metric for criterion in criteria]
    bounds = [f"{metric}_{end}" for metric in metrics for end in INTERVAL_ENDS]  # one seed's error bar, where stored
    per_part = candidate_table(long[long["part"].isin(parts) & long["metric"].isin(metrics + bounds)], [*keys, "part"])

    chosen, excluded = [], []
    for key, figures in per_part.groupby(keys, sort=False):
        identity = dict(zip(keys, key, strict=True))
        absent = {metric: _parts_lacking(figures, metric, parts) for metric in metrics}
        reason = "; ".join(
            f"no {metric} figure for {', '.join(lacking)}" for metric, lacking in absent.items() if lacking
        )
        if reason:
            excluded.append({**identity, "reason": reason})
            continue
        row = dict(identity)
        for criterion in criteria:
            means = _means(figures, criterion.metric)
            worst = means.idxmin() if criterion.direction == "max" else means.idxmax()
            row[mean_column(criterion.metric)] = means[worst]
            row[std_column(criterion.metric)] = figures.at[worst, std_column(criterion.metric)]
            row[f"{criterion.metric}_worst_part"] = figures.at[worst, "part"]
            for end in INTERVAL_ENDS:
                bound = mean_column(f"{criterion.metric}_{end}")
                if bound in figures:
                    row[bound] = figures.at[worst, bound]
        chosen.append(row)
    return pd.DataFrame(chosen), pd.DataFrame(excluded, columns=[*keys, "reason"])


def front_ranking(result: SelectionResult) -> pd.DataFrame:
    """The front's members in order along the first criterion, best first (ties by the next), `rank` from 1.

    Charts label front points by this rank and list the names beside them, since names crowd where
    candidates do.
    """
    columns = [mean_column(criterion.metric) for criterion in result.criteria]
    ascending = [criterion.direction == "min" for criterion in result.criteria]
    ranked = result.front.sort_values(columns, ascending=ascending, kind="stable").reset_index(drop=True)
    return ranked.assign(rank=range(1, len(ranked) + 1))


def chosen(result: SelectionResult, prefer: Criterion) -> pd.Series | None:
    """The one candidate a reader is pointed to: the knee, or the preferred point when `result` was selected with
    weights; None when there is none (nothing feasible).

    The knee rule can tie (a two-point front always does: each point is best on one criterion, equally far from
    the ideal point) and identical candidates share a point; the tie goes to the candidate best on `prefer`, then
    to the first in the table.
    """
    column = "knee" if result.weights is None else "preferred"
    marked = result.feasible[result.feasible[column].astype(bool)]
    if marked.empty:
        return None
    ordered = marked.sort_values(mean_column(prefer.metric), ascending=prefer.direction == "min", kind="stable")
    return ordered.iloc[0]


def _check_criteria(criteria: tuple[Criterion, ...]) -> None:
    metrics = [criterion.metric for criterion in criteria]
    if len(metrics) < 2:
        raise ValueError("a Pareto front needs at least two criteria")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"each metric may be one criterion only: {metrics}")


def _means(frame: pd.DataFrame, metric: str) -> pd.Series:
    column = mean_column(metric)
    return frame[column].astype(float) if column in frame else pd.Series(np.nan, index=frame.index)


def _stds(frame: pd.DataFrame, metric: str) -> np.ndarray:
    column = std_column(metric)
    stds = frame[column].astype(float) if column in frame else pd.Series(np.nan, index=frame.index)
    return stds.fillna(0.0).to_numpy()


def _parts_lacking(figures: pd.DataFrame, metric: str, parts: list[str]) -> list[str]:
    reported = set(figures.loc[_means(figures, metric).notna(), "part"])
    return [part for part in parts if part not in reported]


def _exclusion_reasons(
    candidates: pd.DataFrame, criteria: tuple[Criterion, ...], constraints: tuple[Constraint, ...]
) -> pd.Series:
    """'' for a candidate that stays, else every reason it goes, joined by '; '."""
    metrics = dict.fromkeys([criterion.metric for criterion in criteria] + [c.metric for c in constraints])
    means = pd.DataFrame({metric: _means(candidates, metric) for metric in metrics}, index=candidates.index)

    def reason(row: pd.Series) -> str:
        missing = [f"no {metric} figure" for metric in metrics if pd.isna(row[metric])]
        violated = [
            violation
            for constraint in constraints
            if pd.notna(row[constraint.metric]) and (violation := constraint.violation(row[constraint.metric]))
        ]
        return "; ".join(missing + violated)

    return pd.Series([reason(row) for _, row in means.iterrows()], index=candidates.index, dtype=str)


def _objectives(frame: pd.DataFrame, criteria: tuple[Criterion, ...]) -> np.ndarray:
    """Criteria means as columns to minimise, as pymoo expects: 'max' criteria are negated."""
    columns = [(-1.0 if c.direction == "max" else 1.0) * _means(frame, c.metric).to_numpy() for c in criteria]
    return np.column_stack(columns) if len(frame) else np.empty((0, len(criteria)))


def _dominated(points: np.ndarray, by: np.ndarray) -> np.ndarray:
    """For each point, whether some row of `by` is no worse everywhere and better somewhere (minimising)."""
    no_worse = np.all(by[None, :, :] <= points[:, None, :], axis=2)
    better = np.any(by[None, :, :] < points[:, None, :], axis=2)
    return np.asarray(np.any(no_worse & better, axis=1))


def _min_max(points: np.ndarray) -> np.ndarray:
    """Scale each column to [0, 1] (0 = best on the front); a column all alike is 0 throughout."""
    low = points.min(axis=0, initial=np.inf)
    span = points.max(axis=0, initial=-np.inf) - low
    return (points - low) / np.where(span > 0, span, 1.0)


def _knee(normalised: np.ndarray) -> tuple[np.ndarray, str]:
    """Indices of the knee among distinct normalised front points, and the rule that found them."""
    if len(normalised) == 0:
        return np.empty(0, dtype=int), KNEE_BY_IDEAL
    if len(normalised) >= 3:
        with warnings.catch_warnings():  # HighTradeoffPoints otherwise switches warnings off process-wide
            warnings.simplefilter("ignore")
            tradeoff = HighTradeoffPoints()(normalised)
        if tradeoff is not None:
            return np.asarray(tradeoff), KNEE_BY_TRADEOFF
    distance = np.linalg.norm(normalised, axis=1)
    return np.flatnonzero(np.isclose(distance, distance.min())), KNEE_BY_IDEAL


def _weight_vector(weights: Mapping[str, float], criteria: tuple[Criterion, ...]) -> np.ndarray:
    metrics = [criterion.metric for criterion in criteria]
    if set(weights) != set(metrics):
        raise ValueError(f"weights must name exactly the criteria {metrics}, got {sorted(weights)}")
    vector = np.array([weights[metric] for metric in metrics], dtype=float)
    if (vector < 0).any() or vector.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {dict(weights)}")
    return vector / vector.sum()


def _preferred(normalised: np.ndarray, weights: np.ndarray) -> list[int]:
    """The distinct front point whose pymoo pseudo-weights are closest (L1) to `weights`; none on an empty front."""
    if len(normalised) == 0:
        return []
    n_criteria = normalised.shape[1]
    return [int(PseudoWeights(weights, ideal=np.zeros(n_criteria), nadir=np.ones(n_criteria)).do(normalised))]


def _on_front_values(values: np.ndarray, on_front: np.ndarray) -> np.ndarray:
    """Spread per-front-member values over all feasible rows: NaN or False off the front."""
    spread = np.full(len(on_front), np.nan if values.dtype.kind == "f" else False, dtype=values.dtype)
    spread[on_front] = values
    return spread
