"""The decision a manager signs, computed once: Model selection and Line stops show it, the decision report prints it.

A `Question` holds everything chosen: the parts, the accuracy criterion weighed against inference time (and which
time: the eager runs' or a runtime's after `gluelab deploy`), acceptability limits, weights or the knee, the
flagged runs put back, the condition and source of the figures, and the line (defect rate, cost of a miss,
maximum escape rate, threshold policy, shift). `decide` turns the store's figures for it (`Figures`, read by
`load_figures` or by the dashboard's cached queries) into a `Decision`:

1. candidates with their worst figure across the parts (`selection.worst_case_across_parts`); those lacking a
   figure are left out with the reason;
2. candidates with a flagged run (under-trained, timed under load: `engine.analysis.flags`) left out unless put
   back, each with its reason;
3. candidates that meet the line's maximum escape rate on some part only by flagging every good part
   (`line_stops.least_cost_points`, `escape_limit_met`) left out: no quality manager signs a model that
   lets more defects pass, or stops the line for every part. Published candidates have no per-image scores to
   check, and stay;
4. one front, knee or preferred point and recommendation per machine the times were measured on
   (`selection.select_per_hardware`, `recommendation.recommend`), candidates outside a limit left out;
5. per part, every local candidate on the line (`line_stops.line_figures`) under the question's policy.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.analysis import candidates as store_candidates
from engine.analysis.deployment import EAGER, deployed_time_rows
from engine.analysis.flags import RUN_FLAGS, RunFlag, flag_reasons, flags_spoiling
from engine.analysis.line_stops import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_MAX_ESCAPE_RATE,
    DEFAULT_MISS_COST,
    Line,
    Policy,
    Shift,
    least_cost_points,
    line_figures,
    rates_per_candidate,
)
from engine.analysis.recommendation import INFERENCE, Recommendation, recommend
from engine.analysis.results_table import LOCAL_SOURCE
from engine.analysis.selection import (
    HARDWARE_COLUMN,
    Constraint,
    Criterion,
    SelectionResult,
    leave_out,
    select_per_hardware,
    worst_case_across_parts,
)
from store import queries
from store.metrics import METRIC_LABELS

KEY = ("candidate", "source", "model", HARDWARE_COLUMN)
SOURCES: dict[str, str | None] = {"local": LOCAL_SOURCE, "published": store_candidates.PUBLISHED_SOURCE_LABEL}
BOTH_SOURCES = "both"


@dataclass(frozen=True)
class Question:
    """What a decision answers. `limits` bound criteria means (a floor on accuracy, a ceiling on time);
    `accuracy_weight` None chooses the knee, else the front point closest to that weight of accuracy (the rest on
    speed); `included` names the flags (`RunFlag.name`) whose candidates are put back; `source` None: both."""

    parts: tuple[str, ...]
    accuracy: str = "image_auroc"
    condition: str = "baseline"
    source: str | None = None
    limits: tuple[Constraint, ...] = ()
    accuracy_weight: float | None = None
    included: frozenset[str] = frozenset()
    time: str = EAGER
    line: Line = field(default_factory=Line)
    policy: Policy = "cost"
    shift: Shift = field(default_factory=Shift)

    @property
    def criterion(self) -> Criterion:
        return Criterion(self.accuracy, "max")

    @property
    def criteria(self) -> tuple[Criterion, Criterion]:
        return INFERENCE, self.criterion

    @property
    def weights(self) -> dict[str, float] | None:
        weight = self.accuracy_weight
        return None if weight is None else {INFERENCE.metric: 1 - weight, self.accuracy: weight}

    @property
    def several_parts(self) -> bool:
        return len(self.parts) > 1

    def command(self, store: Path | str, out: str = "decision_report.html") -> str:
        """The `gluelab report` command line that asks this question of `store` (absolute) and writes `out`."""
        words = ["gluelab", "report", "--parts", *self.parts, "--criteria", self.accuracy]
        for limit in self.limits:
            bound = limit.floor if limit.floor is not None else limit.ceiling
            words += ["--floor", f"{limit.metric}={bound:g}"]
        if self.accuracy_weight is not None:
            words += ["--weights", f"{self.accuracy}={self.accuracy_weight:g}"]
        words += ["--include", *sorted(self.included)] if self.included else []
        words += ["--time", self.time] if self.time != EAGER else []
        words += ["--condition", self.condition, "--source", source_name(self.source)]
        words += [
            "--defect-rate", f"{self.line.defect_rate:g}", "--miss-cost", f"{self.line.miss_cost:g}",
            "--max-escape-rate", f"{self.line.max_escape_rate:g}", "--policy", self.policy,
        ]  # fmt: skip
        words += ["--parts-per-shift", str(self.shift.parts)] if self.shift.parts else []
        words += ["--minutes-per-stop", f"{self.shift.minutes_per_stop:g}"] if self.shift.minutes_per_stop else []
        return shlex.join([*words, "--out", out, "--store", str(Path(store).absolute())])


def source_name(source: str | None) -> str:
    """The `--source` word of a question's source."""
    return next((name for name, value in SOURCES.items() if value == source), BOTH_SOURCES)


def default_line(max_escape_rate: float = DEFAULT_MAX_ESCAPE_RATE) -> Line:
    return Line(DEFAULT_DEFECT_RATE, DEFAULT_MISS_COST, max_escape_rate)


@dataclass(frozen=True)
class Figures:
    """The store's figures a question is decided on: `rows` (`candidates.selection_rows`), the parts' flagged runs,
    operating points (every condition), least-cost points of the condition on the question's line, deployments."""

    rows: pd.DataFrame
    flagged: pd.DataFrame
    operating: pd.DataFrame
    least_cost: pd.DataFrame
    deployments: pd.DataFrame


def load_figures(store: Path | str, question: Question) -> Figures:
    """`Figures` for `question`, read from `store` (the dashboard reads the same through its cached queries)."""
    parts = list(question.parts)
    rows = store_candidates.selection_rows(
        lambda part: store_candidates.part_results_by_hardware(store, part), parts, question.condition, question.source
    )
    scores = queries.finished_run_scores(store, parts, question.condition)
    deployed = [store_candidates.deployments(store, part) for part in parts] if question.time != EAGER else []
    return Figures(
        rows=rows,
        flagged=store_candidates.flagged_runs(store, parts),
        operating=store_candidates.operating_points(store, parts),
        least_cost=least_cost_points(scores, question.line),
        deployments=pd.concat(deployed, ignore_index=True) if deployed else pd.DataFrame(),
    )


@dataclass(frozen=True)
class Decision:
    question: Question
    results: dict[str, SelectionResult]  # machine -> its selection, local machines first
    recommendations: dict[str, Recommendation | None]  # machine -> its recommendation (None: nothing acceptable)
    left_out: pd.DataFrame  # KEY + reason: no figure on a part, outside a limit, or the escape limit unmet
    flagged: dict[str, pd.DataFrame]  # flag name -> KEY + reason of every candidate with a run it marks
    line_stops: dict[str, pd.DataFrame]  # part -> `line_figures` of its local candidates ("" : none)
    part_runs: dict[str, pd.DataFrame]  # part -> its runs in the condition, as Line stops reads them

    @property
    def excluded_flags(self) -> tuple[RunFlag, ...]:
        return tuple(flag for flag in RUN_FLAGS if flag.name not in self.question.included)


def compared_rows(rows: pd.DataFrame, deployments: pd.DataFrame, time: str) -> pd.DataFrame:
    """Selection rows with the question's time criterion: the eager runs' or a runtime's deployed latency."""
    return rows if time == EAGER else deployed_time_rows(rows, deployments, time)


def flagged_candidates(flagged: pd.DataFrame, condition: str, several_parts: bool) -> dict[str, pd.DataFrame]:
    """Per flag, the candidates with a run in `condition` it marks, each with its reason."""
    runs = flagged[flagged["condition"] == condition]
    return {flag.name: flag_reasons(runs, KEY, several_parts, flag) for flag in RUN_FLAGS}


def without_flagged(
    candidates: pd.DataFrame, reasons: Mapping[str, pd.DataFrame], included: frozenset[str], flags: tuple[RunFlag, ...]
) -> pd.DataFrame:
    """`candidates` less those with a run marked by one of `flags` that is not `included`."""
    for flag in flags:
        if flag.name not in included:
            candidates, _ = leave_out(candidates, reasons[flag.name], KEY)
    return candidates


def condition_runs(figures: Figures, question: Question, part: str | None = None) -> pd.DataFrame:
    """The operating points of the question's condition (on one part, or all), joined with their least-cost points
    under the `cost` policy, as Line stops reads them."""
    runs = figures.operating[figures.operating["condition"] == question.condition]
    if part is not None:
        runs = runs[runs["part"] == part]
    return runs.merge(figures.least_cost, on="run_id", how="inner") if question.policy == "cost" else runs


def escape_reasons(figures: Figures, question: Question) -> pd.DataFrame:
    """Local candidates (`candidate`, `source`, `model`) that meet the escape limit on a part only by flagging every
    good part, with the parts and seeds in `reason`."""
    runs = figures.operating[figures.operating["condition"] == question.condition]
    runs = runs.merge(figures.least_cost[["run_id", "escape_limit_met"]], on="run_id", how="inner")
    failing = runs[~runs["escape_limit_met"].astype(bool)]
    limit = f"{100 * question.line.max_escape_rate:g} %"
    rows = []
    for (candidate, model), group in failing.groupby(["candidate", "model"], sort=True):
        seeds = sorted(set(zip(group["part"], group["seed"], strict=True)))
        where = "; ".join(f"{part}, seed {seed}" for part, seed in seeds)
        reason = (
            f"lets more than {limit} of defects pass at every threshold short of flagging every good part ({where})"
        )
        rows.append({"candidate": candidate, "source": LOCAL_SOURCE, "model": model, "reason": reason})
    return pd.DataFrame(rows, columns=["candidate", "source", "model", "reason"])


def without_escapes(candidates: pd.DataFrame, reasons: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`candidates` less the local ones in `reasons` (on every machine), and those left out with their reason."""
    if candidates.empty or reasons.empty:
        return leave_out(candidates, pd.DataFrame(columns=[*KEY, "reason"]), KEY)
    machines = candidates[list(KEY)].merge(reasons, on=["candidate", "source", "model"], how="inner")
    return leave_out(candidates, machines, KEY)


def selections(candidates: pd.DataFrame, question: Question) -> dict[str, SelectionResult]:
    """One selection per machine the candidates were timed on: local machines first, then the study's GPU."""
    local_first = (
        candidates.sort_values("source", key=lambda source: source != LOCAL_SOURCE, kind="stable")
        if not candidates.empty
        else candidates
    )
    return select_per_hardware(local_first, question.criteria, list(question.limits), question.weights)


def alarm_rates(figures: Figures, question: Question) -> pd.DataFrame | None:
    """False alarms per candidate at the F1-optimal threshold, on a single part only (the recommendation's)."""
    if question.several_parts:
        return None
    runs = figures.operating[figures.operating["condition"] == question.condition]
    return rates_per_candidate(runs) if not runs.empty else None


def decide(figures: Figures, question: Question) -> Decision:
    """The decision on `question` from `figures` (see the module docstring for its steps)."""
    parts = list(question.parts)
    candidates, missing = worst_case_across_parts(
        compared_rows(figures.rows, figures.deployments, question.time), parts, question.criteria, KEY
    )
    reasons = flagged_candidates(figures.flagged, question.condition, question.several_parts)
    candidates = without_flagged(candidates, reasons, question.included, flags_spoiling("accuracy", "time"))
    candidates, escaping = without_escapes(candidates, escape_reasons(figures, question))
    results = selections(candidates, question)
    alarms = alarm_rates(figures, question)
    recommendations = {
        machine: recommend(result, parts, question.criterion, METRIC_LABELS, alarm_rates=alarms)
        for machine, result in results.items()
    }
    frames = [frame for frame in (missing, escaping, *(r.excluded for r in results.values())) if not frame.empty]
    left_out = pd.concat([frame[[*KEY, "reason"]] for frame in frames], ignore_index=True) if frames else None
    part_runs = {part: condition_runs(figures, question, part) for part in parts}
    line_stops = {
        part: line_figures(runs, question.policy, question.line, question.shift)
        for part, runs in part_runs.items()
        if not runs.empty
    }
    if left_out is None:
        left_out = pd.DataFrame(columns=[*KEY, "reason"])
    return Decision(question, results, recommendations, left_out, reasons, line_stops, part_runs)


def recommended_run(store: Path | str, part: str, condition: str = "baseline") -> str:
    """The run id of the candidate recommended for `part` among the local runs at the question's defaults (its
    lowest seed): what `gluelab deploy --recommended PART` deploys. ValueError when no local candidate is
    recommended."""
    question = Question((part,), condition=condition, source=LOCAL_SOURCE)
    made = decide(load_figures(store, question), question)
    cards = [card for card in made.recommendations.values() if card is not None]
    if not cards:
        raise ValueError(f"no local candidate is recommended for {part} in {store}: evaluate models on it first")
    runs = made.part_runs[part]
    chosen = runs[runs["candidate"] == cards[0].candidate].sort_values("seed")
    if chosen.empty:
        raise ValueError(f"{cards[0].candidate}, recommended for {part}, has no finished run to deploy")
    return str(chosen["run_id"].iloc[0])
