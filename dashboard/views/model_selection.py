"""Choose a model from the trade-off between accuracy and inference time (study section 5.1, Figs. 13-14).

Times are compared like for like: one front, knee and recommendation per machine the times were measured on
(each local machine, and the study's GPU), never across. Candidates with a flagged run (under-trained, or timed
under load: `engine.analysis.flags`) are left out, each with its reason, unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis import decision
from engine.analysis.charts import ranked_front_table, short_label, trade_off_chart
from engine.analysis.decision import KEY
from engine.analysis.deployment import EAGER, time_criteria
from engine.analysis.flags import RUN_FLAGS, RunFlag, flags_spoiling
from engine.analysis.line_stops import DEFAULT_MAX_ESCAPE_RATE
from engine.analysis.recommendation import INFERENCE, NO_RECOMMENDATION, Recommendation
from engine.analysis.selection import (
    HARDWARE_COLUMN,
    Constraint,
    Criterion,
    SelectionResult,
    mean_column,
    select,
    std_column,
    worst_case_across_parts,
)


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
    max_escape_rate: float = DEFAULT_MAX_ESCAPE_RATE


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
        floor_column, ceiling_column, escape_column, weight_column = st.columns(4)
        floor = floor_column.slider(
            f"Minimum {widgets.METRIC_LABELS[chosen.accuracy.metric]}", 0.0, 1.0, 0.0, 0.01, key="selection_floor"
        )
        ceiling = ceiling_column.slider("Maximum inference (ms/image)", 1.0, slowest, slowest, key="selection_ceiling")
        escapes = escape_column.number_input(
            "Maximum escape rate (%)",
            min_value=0.0,
            max_value=100.0,
            value=100 * DEFAULT_MAX_ESCAPE_RATE,
            step=1.0,
            help="The share of defective parts your quality limits let pass. A local candidate that keeps within it "
            "on a part only by flagging every good part is left out; 100 % lifts the limit.",
            key="selection_max_escape",
        )
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
    return Limits(constraints, weight if chosen.use_weights else None, escapes / 100)


def recommendation_card(card: Recommendation | None) -> None:
    if card is None:
        st.warning(NO_RECOMMENDATION)
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
    index: int, machine: str, result: SelectionResult, card: Recommendation | None, accuracy: Criterion, log_x: bool
) -> None:
    """One machine: its recommendation card, its front and its candidates, all timed on that machine."""
    st.subheader(f"Timed on {machine}")
    recommendation_card(card)
    if not result.feasible.empty:
        trade_off(result, accuracy, log_x, key=f"selection_chart_{index}")


def fronts_per_machine(made: decision.Decision, log_x: bool) -> None:
    if not made.results:
        recommendation_card(None)
        return
    if len(made.results) > 1:
        st.caption(
            "Inference times measured on different machines are not comparable, so each machine has its own "
            "front and recommendation: " + "; ".join(made.results) + "."
        )
    for index, (machine, result) in enumerate(made.results.items()):
        machine_section(index, machine, result, made.recommendations[machine], made.question.criterion, log_x)


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
    candidates = decision.without_flagged(candidates, reasons, included, flags_spoiling("accuracy"))
    if candidates.empty:
        st.info("No candidate has both image and pixel AUROC for the chosen parts.")
        return
    result = select(candidates, criteria)
    chart_with_ranking(result, *criteria, log_x=False, key="pixel_chart", prefer=criteria[0])
    no_pixel = pd.concat([missing, result.excluded[[*KEY, "reason"]]], ignore_index=True)
    if not no_pixel.empty:
        st.caption("Without pixel figures (image-level models, or no masks): " + ", ".join(no_pixel["candidate"]))


def question(filters: widgets.Filters, parts: list[str], chosen: Choices, limits: Limits) -> decision.Question:
    """The page's choices as the question the decision (and its report) answers."""
    return decision.Question(
        tuple(parts),
        accuracy=chosen.accuracy.metric,
        condition=filters.condition,
        source=filters.source,
        limits=tuple(limits.constraints),
        accuracy_weight=limits.accuracy_weight,
        included=chosen.included,
        time=chosen.time,
        line=decision.default_line(limits.max_escape_rate),
    )


def figures(ctx: widgets.StoreContext, asked: decision.Question, rows: pd.DataFrame) -> decision.Figures:
    """The store's figures for the question, from the cached queries (`decision.load_figures` reads the same)."""
    line, parts = asked.line, asked.parts
    return decision.Figures(
        rows=rows,
        flagged=cached_queries.flagged_runs(ctx.store, ctx.stamp, parts),
        operating=cached_queries.operating_points(ctx.store, ctx.stamp, parts),
        least_cost=cached_queries.least_cost_points(
            ctx.store, ctx.stamp, parts, asked.condition, line.defect_rate, line.miss_cost, line.max_escape_rate
        ),
        deployments=deployments(ctx, parts, asked.time),
    )


def deployments(ctx: widgets.StoreContext, parts: tuple[str, ...], time: str) -> pd.DataFrame:
    return cached_queries.deployments_of(ctx.store, ctx.stamp, list(parts)) if time != EAGER else pd.DataFrame()


def choose(ctx: widgets.StoreContext, filters: widgets.Filters, parts: list[str], rows: pd.DataFrame) -> None:
    chosen = choices()
    if chosen.time != EAGER:
        st.caption(
            f"Time criterion: {time_criteria()[chosen.time]}, the batch-1 latency of each candidate's model exported "
            "with `gluelab deploy`, on the machine it was deployed on (mean over its deployed seeds)."
        )
    compared = decision.compared_rows(rows, deployments(ctx, tuple(parts), chosen.time), chosen.time)
    asked = question(filters, parts, chosen, limits_and_weights(compared, chosen))
    made = decision.decide(figures(ctx, asked, rows), asked)
    fronts_per_machine(made, chosen.log_x)
    left_out(made.left_out)
    for flag in RUN_FLAGS:
        flagged_list(flag, made.flagged[flag.name], excluded=flag.name not in chosen.included)
    widgets.decision_report_button(ctx, asked, key="selection_report")
    image_against_pixel(compared, parts, made.flagged, chosen.included)


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
