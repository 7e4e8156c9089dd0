"""What a model would mean on your line: false alarms, missed defects and line-stop minutes per shift against the legacy check.

You give the line's defect rate, what a missed defect costs in line stops, the largest share of defective parts
it may let pass, parts per shift and minutes per stop. Each run's threshold is then the one of least expected cost
on that line among those within the escape limit (or, as options, the test set's F1 optimum or zero escapes), and
its test-set rates become false alarms and misses per shift. The arithmetic lives in `engine.analysis.line_stops`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis import decision
from engine.analysis.charts import line_stops_chart
from engine.analysis.line_stop_notes import POLICY_NAMES, RATES_EXPLAINED, figure_labels, notes_for_part
from engine.analysis.line_stops import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_MAX_ESCAPE_RATE,
    DEFAULT_MISS_COST,
    Line,
    Policy,
    Shift,
    line_figures,
)

POLICIES: dict[str, Policy] = {name: policy for policy, name in POLICY_NAMES.items()}


def local_runs(ctx: widgets.StoreContext, filters: widgets.Filters) -> pd.DataFrame:
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    return runs[runs["condition"] == filters.condition]


def line_inputs() -> Line:
    left, middle, right = st.columns(3)
    percent = left.number_input(
        "Defect rate on the line (%)",
        min_value=0.001,
        max_value=99.0,
        value=100 * DEFAULT_DEFECT_RATE,
        step=0.1,
        format="%.3f",
        help="Share of the parts the line makes that are defective: 0.5 % is 5 in 1000.",
        key="ops_defect_rate",
    )
    miss_cost = middle.number_input(
        "Cost of a missed defect, in line stops",
        min_value=0.0,
        value=DEFAULT_MISS_COST,
        step=1.0,
        help="What a defective part that leaves the line costs (rework, recall, complaint) over what one line stop costs.",
        key="ops_miss_cost",
    )
    escapes = right.number_input(
        "Maximum escape rate (%)",
        min_value=0.0,
        max_value=100.0,
        value=100 * DEFAULT_MAX_ESCAPE_RATE,
        step=1.0,
        help="The share of defective parts your quality limits let pass. Least expected cost only chooses among "
        "thresholds that miss at most this share of the test set's defects; 100 % lifts the limit.",
        key="ops_max_escape",
    )
    return Line(percent / 100, miss_cost, escapes / 100)


def shift_inputs() -> Shift:
    left, right = st.columns(2)
    parts = left.number_input(
        "Parts per shift", min_value=1, value=None, step=50, placeholder="your line's figure", key="ops_parts"
    )
    minutes = right.number_input(
        "Minutes lost per line stop",
        min_value=0.0,
        value=None,
        step=0.5,
        placeholder="your line's figure",
        key="ops_minutes",
    )
    return Shift(None if parts is None else int(parts), minutes)


def policy_choice() -> Policy:
    return POLICIES[st.radio("Threshold policy", list(POLICIES), horizontal=True, key="ops_policy")]


def with_least_cost(
    runs: pd.DataFrame, ctx: widgets.StoreContext, filters: widgets.Filters, line: Line
) -> pd.DataFrame:
    points = cached_queries.least_cost_points(
        ctx.store, ctx.stamp, (filters.part,), filters.condition, line.defect_rate, line.miss_cost, line.max_escape_rate
    )
    return runs.merge(points, on="run_id", how="inner")


def notes(table: pd.DataFrame, runs: pd.DataFrame, part: str, line: Line, shift: Shift, policy: Policy) -> None:
    """The cheapest candidate against the legacy check, the escape limit and silent candidates, in words."""
    for note in notes_for_part(table, runs, part, line, shift, policy):
        if note.level == "caption":
            st.caption(note.text)
        else:
            {"success": st.success, "info": st.info, "warning": st.warning}[note.level](note.text)


def rates_chart(table: pd.DataFrame, shift: Shift) -> None:
    st.plotly_chart(line_stops_chart(table, figure_labels(shift), shift))


def rates_table(table: pd.DataFrame, shift: Shift) -> None:
    labels = figure_labels(shift)
    st.dataframe(
        table[["candidate", *[column for column in labels if column in table], "seeds"]],
        hide_index=True,
        column_config={
            "candidate": "Model",
            "seeds": "Seeds",
            **{
                column: st.column_config.NumberColumn(label, format="%d" if column == "good_test_images" else "%.2f")
                for column, label in labels.items()
            },
            "escape_interval": st.column_config.TextColumn(labels["escape_interval"]),
        },
    )
    st.caption(RATES_EXPLAINED)


def report_button(
    ctx: widgets.StoreContext, filters: widgets.Filters, line: Line, shift: Shift, policy: Policy
) -> None:
    """The decision report for this part and line (Model selection's choices at their defaults)."""
    question = decision.Question((filters.part,), condition=filters.condition, line=line, policy=policy, shift=shift)
    widgets.decision_report_button(ctx, question, key="ops_report")


st.title("Line stops")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, source=False)
    runs = local_runs(ctx, filters)
    if runs.empty:
        widgets.empty_state(
            f"No finished local run on {filters.part} ({filters.condition}). Operating figures need per-image scores, "
            "which the published study does not give.",
            ctx,
        )
    else:
        line, shift, policy = line_inputs(), shift_inputs(), policy_choice()
        if policy == "cost":
            runs = with_least_cost(runs, ctx, filters, line)
        table = line_figures(runs, policy, line, shift)
        notes(table, runs, filters.part, line, shift, policy)
        rates_chart(table, shift)
        rates_table(table, shift)
        report_button(ctx, filters, line, shift, policy)
