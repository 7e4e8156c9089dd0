"""Choose a model from the trade-off between accuracy and inference time (study section 5.1, Figs. 13-14).

Times are compared like for like: one front, knee and recommendation per machine the times were measured on
(each local machine, and the study's GPU), never across. Candidates with a flagged run (under-trained, or timed
under load: `engine.analysis.flags`) are left out, each with its reason, unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.deployment import EAGER, deployed_time_rows, time_criteria
from engine.analysis.flags import RUN_FLAGS, RunFlag, flag_reasons, flags_spoiling
from engine.analysis.line_stops import rates_per_candidate
from engine.analysis.recommendation import INFERENCE, Recommendation, recommend
from engine.analysis.results_table import LOCAL_SOURCE
from engine.analysis.selection import (
    HARDWARE_COLUMN,
    Constraint,
    Criterion,
    SelectionResult,
    front_ranking,
    leave_out,
    mean_column,
    select,
    select_per_hardware,
    std_column,
    worst_case_across_parts,
)
from engine.analysis.selection import (
    chosen as chosen_candidate,
)

KEY = ("candidate", "source", "model", HARDWARE_COLUMN)
LABEL_OFFSET = 30  # pixels between a front point and its number


@dataclass(frozen=True)
class Choices:
    """What the user asked for: the accuracy criterion, the axis scale and the rule (knee or weights)."""

    accuracy: Criterion
    log_x: bool
    use_weights: bool
    included: frozenset[str]  # the flags (`RunFlag.name`) whose candidates are put back on the fronts
    time: str = EAGER  # the inference time compared: the eager runs', or a runtime's deployed latency


@dataclass(frozen=True)
class Limits:
    constraints: list[Constraint]
    accuracy_weight: float | None  # None: choose the knee


def trade_off_chart(result: SelectionResult, x: Criterion, y: Criterion, log_x: bool, prefer: Criterion) -> go.Figure:
    """Feasible candidates with seed error bars, the Pareto front as a line, and the knee or preferred point marked
    (one: `selection.chosen`, ties to the best on `prefer`).

    Front points carry their rank in `front_ranking` (listed with names beside the chart); every name is in
    the hover, so crowded candidates leave no overlapping labels.
    """
    feasible = result.feasible
    figure = go.Figure()

    def add(points: pd.DataFrame, **style: Any) -> None:
        figure.add_scatter(
            x=points[mean_column(x.metric)], y=points[mean_column(y.metric)], text=points["candidate"], **style
        )

    hover = "%{text}<br>%{x:.4g}, %{y:.3f}<extra></extra>"
    for column, name, symbol, size in (
        ("on_front", "Pareto front", "circle", 12),
        ("near_front", "within one std of the front", "circle-open", 10),
    ):
        members = feasible[feasible[column]]
        add(
            members,
            mode="markers",
            name=name,
            marker={"symbol": symbol, "size": size},
            error_x={"array": members[std_column(x.metric)].fillna(0)},
            error_y={"array": members[std_column(y.metric)].fillna(0)},
            hovertemplate=hover,
        )
    rest = feasible[~feasible["on_front"] & ~feasible["near_front"]]
    add(rest, mode="markers", name="dominated", marker={"color": "#bbbbbb"}, hovertemplate=hover)
    add(
        result.front.sort_values(mean_column(x.metric)),
        mode="lines",
        name="front",
        line={"dash": "dot"},
        hoverinfo="skip",
    )
    pick = chosen_candidate(result, prefer)
    marked = feasible["candidate"] == (None if pick is None else pick["candidate"])
    for column, name, symbol in (("knee", "knee", "star"), ("preferred", "preferred by weights", "diamond-open")):
        add(
            feasible[feasible[column] & marked],
            mode="markers",
            name=name,
            marker={"symbol": symbol, "size": 20, "line": {"width": 2}},
            hovertemplate=hover,
        )
    figure.update_layout(
        annotations=rank_labels(result, x, y, log_x),
        xaxis={"title": widgets.METRIC_LABELS[x.metric], "type": "log" if log_x else "linear"},
        yaxis={"title": widgets.METRIC_LABELS[y.metric]},
        height=520,
        margin={"t": 40, "r": 30},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure


def rank_labels(result: SelectionResult, x: Criterion, y: Criterion, log_x: bool) -> list[dict[str, Any]]:
    """Numbered tags on the front points, alternately above and below; identical points share one tag."""
    ranked = front_ranking(result)
    points = ranked.groupby([mean_column(x.metric), mean_column(y.metric)], sort=False)["rank"]
    tags = points.agg(lambda ranks: ", ".join(map(str, ranks))).reset_index()
    return [
        {
            "x": np.log10(at_x) if log_x else at_x,  # Plotly places annotations on a log axis by exponent
            "y": at_y,
            "text": text,
            "ax": 0,
            "ay": LABEL_OFFSET if index % 2 else -LABEL_OFFSET,
            "showarrow": True,
            "arrowwidth": 1,
            "arrowcolor": "#888888",
            "bgcolor": "white",
            "bordercolor": "#888888",
            "font": {"size": 13, "color": "#222222"},
        }
        for index, (at_x, at_y, text) in enumerate(tags.itertuples(index=False))
    ]


def ranked_front_table(result: SelectionResult, x: Criterion, y: Criterion, prefer: Criterion) -> pd.DataFrame:
    """The front as listed beside the chart: rank, name, both figures, and in `chosen` the one candidate the page
    points to (`selection.chosen`: the knee, or the point preferred by weights; ties to the best on `prefer`)."""
    ranked = front_ranking(result)
    pick = chosen_candidate(result, prefer)
    mark = "knee" if result.weights is None else "preferred"
    marks = np.where(ranked["candidate"] == (None if pick is None else pick["candidate"]), mark, "")
    return pd.DataFrame(
        {
            "rank": ranked["rank"],
            "chosen": marks,
            "candidate": ranked["candidate"],
            short_label(x.metric): ranked[mean_column(x.metric)],
            short_label(y.metric): ranked[mean_column(y.metric)],
        }
    )


def short_label(metric: str) -> str:
    """'Inference' for 'Inference (ms/image)': table headers beside a chart have little room."""
    return widgets.METRIC_LABELS[metric].split(" (")[0]


def chart_with_ranking(
    result: SelectionResult, x: Criterion, y: Criterion, log_x: bool, key: str, prefer: Criterion
) -> None:
    chart, ranking = st.columns(2)
    chart.plotly_chart(trade_off_chart(result, x, y, log_x, prefer), key=key)
    ranking.markdown("**The front, by number on the chart**")
    tied = result.feasible.loc[result.feasible["knee" if result.weights is None else "preferred"], "candidate"]
    if len(tied) > 1:
        ranking.caption(
            f"{', '.join(tied)} tie under the rule; the one best on {widgets.METRIC_LABELS[prefer.metric]} is marked."
        )
    ranking.dataframe(
        ranked_front_table(result, x, y, prefer),
        hide_index=True,
        key=f"{key}_ranking",
        column_config={
            "rank": st.column_config.NumberColumn("#", width=40),
            short_label(x.metric): st.column_config.NumberColumn(format="%.4g"),
            short_label(y.metric): st.column_config.NumberColumn(format="%.3f"),
            "chosen": st.column_config.TextColumn(width=70),
        },
    )


def choose_parts(ctx: widgets.StoreContext, filters: widgets.Filters) -> list[str]:
    all_parts = sorted(cached_queries.parts(ctx.store, ctx.stamp), key=widgets.part_order)
    return st.multiselect(
        "Parts to choose for (several parts: each candidate counts with its worst figure across them)",
        all_parts,
        default=[filters.part] if filters.part in all_parts else all_parts[:1],
        key="selection_parts",
    )


def choices() -> Choices:
    left, right = st.columns(2)
    metric: str = left.selectbox(
        "Accuracy criterion",
        list(widgets.ACCURACY_METRICS),
        format_func=lambda name: widgets.METRIC_LABELS[name],
        key="selection_metric",
    )
    # Two switches a row, so each label reads in full beside its switch.
    rule, scale = st.columns(2)
    use_weights = rule.toggle("Weigh the criteria instead of the knee", key="selection_use_weights")
    log_x = scale.toggle("Logarithmic time axis", value=True, key="selection_log")
    switches = st.columns(len(RUN_FLAGS))
    included = frozenset(
        flag.name
        for flag, column in zip(RUN_FLAGS, switches, strict=True)
        if column.toggle(flag.switch, key=switch_key(flag))
    )
    criteria = time_criteria()
    time: str = right.selectbox(
        "Time criterion",
        list(criteria),
        format_func=criteria.__getitem__,
        key="selection_time",
        help="Deployed: the batch-1 latency of the run's model exported with `gluelab deploy` and timed in that "
        "runtime; candidates not deployed there are left out.",
    )
    return Choices(Criterion(metric, "max"), log_x, use_weights, included, time)


def switch_key(flag: RunFlag) -> str:
    return f"selection_{flag.name}"


def limits_and_weights(rows: pd.DataFrame, chosen: Choices) -> Limits:
    """Acceptability floor on accuracy, ceiling on inference time and, when weighing, the weight of accuracy."""
    times = rows.loc[rows["metric"] == INFERENCE.metric, "mean"]
    slowest = float(np.ceil(times.max())) if not times.empty else 1000.0
    with st.expander("Acceptability limits and weights", expanded=True):
        floor_column, ceiling_column, weight_column = st.columns(3)
        floor = floor_column.slider(
            f"Minimum {widgets.METRIC_LABELS[chosen.accuracy.metric]}", 0.0, 1.0, 0.0, 0.01, key="selection_floor"
        )
        ceiling = ceiling_column.slider("Maximum inference (ms/image)", 1.0, slowest, slowest, key="selection_ceiling")
        weight = weight_column.slider(
            "Weight of accuracy (the rest goes to speed)",
            0.0,
            1.0,
            0.5,
            0.05,
            key="selection_weight",
            disabled=not chosen.use_weights,
        )
    constraints = [Constraint(chosen.accuracy.metric, floor=floor)] if floor > 0 else []
    constraints += [Constraint(INFERENCE.metric, ceiling=ceiling)] if ceiling < slowest else []
    return Limits(constraints, weight if chosen.use_weights else None)


def selections(candidates: pd.DataFrame, accuracy: Criterion, limits: Limits) -> dict[str, SelectionResult]:
    """One selection per machine the candidates were timed on: local machines first, then the study's GPU."""
    weight = limits.accuracy_weight
    weights = None if weight is None else {INFERENCE.metric: 1 - weight, accuracy.metric: weight}
    local_first = (
        candidates.sort_values("source", key=lambda source: source != LOCAL_SOURCE, kind="stable")
        if not candidates.empty
        else candidates
    )
    return select_per_hardware(local_first, (INFERENCE, accuracy), limits.constraints, weights)


def flagged(ctx: widgets.StoreContext, condition: str, parts: list[str]) -> dict[str, pd.DataFrame]:
    """Per flag, the candidates with a run on `parts` it marks, each with its reason."""
    runs = cached_queries.flagged_runs(ctx.store, ctx.stamp, tuple(parts))
    runs = runs[runs["condition"] == condition]
    return {flag.name: flag_reasons(runs, KEY, len(parts) > 1, flag) for flag in RUN_FLAGS}


def without_flagged(
    candidates: pd.DataFrame, reasons: dict[str, pd.DataFrame], included: frozenset[str], flags: tuple[RunFlag, ...]
) -> pd.DataFrame:
    """`candidates` less those with a run marked by one of `flags` that is not `included`."""
    for flag in flags:
        if flag.name not in included:
            candidates, _ = leave_out(candidates, reasons[flag.name], KEY)
    return candidates


def alarm_rates(ctx: widgets.StoreContext, condition: str, parts: list[str]) -> pd.DataFrame | None:
    """False alarms per candidate at the F1-optimal threshold, on a single part only."""
    if len(parts) != 1:
        return None
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (parts[0],))
    runs = runs[runs["condition"] == condition]
    return rates_per_candidate(runs) if not runs.empty else None


def recommendation_card(card: Recommendation | None) -> None:
    if card is None:
        st.warning("No candidate timed on this machine meets every limit. Loosen the limits or choose other parts.")
        return
    with st.container(border=True):
        st.markdown(card.markdown())
        if card.not_clearly_worse:
            st.caption(
                "Within one standard deviation of the front, so not clearly worse: " + ", ".join(card.not_clearly_worse)
            )


def trade_off(result: SelectionResult, accuracy: Criterion, log_x: bool, key: str) -> None:
    chart_with_ranking(result, INFERENCE, accuracy, log_x, key=key, prefer=accuracy)
    st.caption(
        f"Knee method: {result.knee_method}. Error bars: ± one standard deviation over seeds (published single values have none)."
    )
    shown = [
        mean_column(INFERENCE.metric),
        mean_column(accuracy.metric),
        std_column(accuracy.metric),
        f"{accuracy.metric}_worst_part",
        f"{INFERENCE.metric}_worst_part",
        "on_front",
        "near_front",
        "knee",
        "preferred",
    ]
    columns = ["candidate", HARDWARE_COLUMN, *[column for column in shown if column in result.feasible]]
    st.dataframe(result.feasible[columns].sort_values(mean_column(INFERENCE.metric)), hide_index=True)


def machine_section(
    index: int, machine: str, result: SelectionResult, parts: list[str], chosen: Choices, alarms: pd.DataFrame | None
) -> None:
    """One machine: its recommendation card, its front and its candidates, all timed on that machine."""
    st.subheader(f"Timed on {machine}")
    recommendation_card(recommend(result, parts, chosen.accuracy, widgets.METRIC_LABELS, alarm_rates=alarms))
    if not result.feasible.empty:
        trade_off(result, chosen.accuracy, chosen.log_x, key=f"selection_chart_{index}")


def fronts_per_machine(
    results: dict[str, SelectionResult], parts: list[str], chosen: Choices, alarms: pd.DataFrame | None
) -> None:
    if not results:
        recommendation_card(None)
        return
    if len(results) > 1:
        st.caption(
            "Inference times measured on different machines are not comparable, so each machine has its own "
            "front and recommendation: " + "; ".join(results) + "."
        )
    for index, (machine, result) in enumerate(results.items()):
        machine_section(index, machine, result, parts, chosen, alarms)


def left_out(excluded: pd.DataFrame) -> None:
    if not excluded.empty:
        st.markdown("**Left out**")
        st.dataframe(excluded, hide_index=True)


def flagged_list(flag: RunFlag, reasons: pd.DataFrame, excluded: bool) -> None:
    """Each candidate with a run `flag` marks, with its reason, and whether it is in the fronts."""
    if reasons.empty:
        return
    if excluded:
        st.markdown(f"**Left out as {flag.label}** (switch on *{flag.switch}* to compare them anyway)")
    else:
        st.markdown(f"**{flag.label.capitalize()}, yet included in the fronts above**")
    st.markdown("\n".join(f"- {row.candidate} on {row.hardware}: {row.reason}" for row in reasons.itertuples()))


def image_against_pixel(
    rows: pd.DataFrame, parts: list[str], reasons: dict[str, pd.DataFrame], included: frozenset[str]
) -> None:
    """Accuracy against accuracy: no time, so every machine's candidates share one front (candidates whose accuracy
    is flagged left out as above; a timing flag does not touch accuracy)."""
    st.subheader("Image against pixel accuracy")
    criteria = (Criterion("image_auroc", "max"), Criterion("pixel_auroc", "max"))
    candidates, missing = worst_case_across_parts(rows, parts, criteria, KEY)
    candidates = without_flagged(candidates, reasons, included, flags_spoiling("accuracy"))
    if candidates.empty:
        st.info("No candidate has both image and pixel AUROC for the chosen parts.")
        return
    result = select(candidates, criteria)
    chart_with_ranking(result, *criteria, log_x=False, key="pixel_chart", prefer=criteria[0])
    no_pixel = pd.concat([missing, result.excluded[[*KEY, "reason"]]], ignore_index=True)
    if not no_pixel.empty:
        st.caption("Without pixel figures (image-level models, or no masks): " + ", ".join(no_pixel["candidate"]))


def choose(ctx: widgets.StoreContext, filters: widgets.Filters, parts: list[str], rows: pd.DataFrame) -> None:
    chosen = choices()
    if chosen.time != EAGER:
        rows = deployed_time_rows(rows, cached_queries.deployments_of(ctx.store, ctx.stamp, parts), chosen.time)
        st.caption(
            f"Time criterion: {time_criteria()[chosen.time]}, the batch-1 latency of each candidate's model exported "
            "with `gluelab deploy`, on the machine it was deployed on (mean over its deployed seeds)."
        )
    limits = limits_and_weights(rows, chosen)
    candidates, missing_parts = worst_case_across_parts(rows, parts, (INFERENCE, chosen.accuracy), KEY)
    reasons = flagged(ctx, filters.condition, parts)
    candidates = without_flagged(candidates, reasons, chosen.included, flags_spoiling("accuracy", "time"))
    results = selections(candidates, chosen.accuracy, limits)
    fronts_per_machine(results, parts, chosen, alarm_rates(ctx, filters.condition, parts))
    excluded = [result.excluded[[*KEY, "reason"]] for result in results.values()]
    left_out(pd.concat([missing_parts, *excluded], ignore_index=True))
    for flag in RUN_FLAGS:
        flagged_list(flag, reasons[flag.name], excluded=flag.name not in chosen.included)
    image_against_pixel(rows, parts, reasons, chosen.included)


st.title("Model selection")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx)
    parts = choose_parts(ctx, filters)
    rows = (
        cached_queries.selection_rows(ctx.store, ctx.stamp, parts, filters.condition, filters.source) if parts else None
    )
    if rows is None or rows.empty:
        widgets.empty_state("No figures for the chosen parts, condition and source.", ctx)
    else:
        choose(ctx, filters, parts, rows)
