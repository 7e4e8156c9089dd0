"""What a model would mean on your line: false alarms, missed defects and line-stop minutes per shift against the legacy check.

You give the line's defect rate, what a missed defect costs in line stops, parts per shift and minutes per stop.
Each run's threshold is then the one of least expected cost on that line (or, as options, the test set's F1
optimum or zero escapes), and its test-set rates become false alarms and misses per shift. The arithmetic
lives in `engine.analysis.line_stops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.line_stops import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_MISS_COST,
    LEGACY_MODEL,
    Line,
    Policy,
    flags_nothing,
    on_the_line,
    rates_per_candidate,
)

POLICIES: dict[str, Policy] = {
    "Least expected cost on your line": "cost",
    "F1-optimal threshold": "f1",
    "Zero escapes on the test set": "zero_escape",
}
PARTS_WITHOUT_SHIFT = 1000  # figures are per 1000 parts made until the line's parts per shift are given


@dataclass(frozen=True)
class Shift:
    parts: int | None
    minutes_per_stop: float | None

    @property
    def complete(self) -> bool:
        return bool(self.parts) and self.minutes_per_stop is not None

    @property
    def per(self) -> str:
        return "per shift" if self.parts else f"per {PARTS_WITHOUT_SHIFT} parts made"


def column_labels(shift: Shift) -> dict[str, str]:
    return {
        "false_alarms_per_shift": f"False alarms {shift.per}",
        "misses_per_shift": f"Missed defects {shift.per}",
        "stop_minutes_per_shift": f"Line-stop minutes {shift.per}",
        "minutes_avoided_per_shift": f"Minutes avoided {shift.per} vs legacy",
        "expected_cost_per_shift": f"Expected cost {shift.per}, in line stops",
        "cost_saved_per_shift": f"Saved {shift.per} vs legacy, in line stops",
        "false_alarms_per_1000": "Test set: false alarms per 1000 good parts",
        "missed_per_1000": "Test set: missed per 1000 defective parts",
        "good_test_images": "Good test images",
    }


def local_runs(ctx: widgets.StoreContext, filters: widgets.Filters) -> pd.DataFrame:
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    return runs[runs["condition"] == filters.condition]


def line_inputs() -> Line:
    left, right = st.columns(2)
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
    miss_cost = right.number_input(
        "Cost of a missed defect, in line stops",
        min_value=0.0,
        value=DEFAULT_MISS_COST,
        step=1.0,
        help="What a defective part that leaves the line costs (rework, recall, complaint) over what one line stop costs.",
        key="ops_miss_cost",
    )
    return Line(percent / 100, miss_cost)


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
        ctx.store, ctx.stamp, (filters.part,), filters.condition, line.defect_rate, line.miss_cost
    )
    return runs.merge(points, on="run_id", how="inner")


def line_figures(runs: pd.DataFrame, policy: Policy, line: Line, shift: Shift) -> pd.DataFrame:
    return on_the_line(
        rates_per_candidate(runs, policy), line, shift.parts or PARTS_WITHOUT_SHIFT, shift.minutes_per_stop
    )


def comparison_with_legacy(table: pd.DataFrame, part: str, line: Line, shift: Shift) -> None:
    """A sentence on the cheapest candidate against the legacy check, or what is missing for one."""
    legacy = table[table["model"] == LEGACY_MODEL]
    if legacy.empty:
        st.warning(
            f"No `legacy` run on {part}: run `gluelab evaluate --parts {part} --models legacy` to compare against it."
        )
    if not shift.complete:
        st.info(
            f"Enter parts per shift and minutes lost per stop to turn rates into line-stop minutes per shift; "
            f"until then the figures are per {PARTS_WITHOUT_SHIFT} parts made."
        )
    if legacy.empty:
        return
    best, reference = table.iloc[0], legacy.iloc[0]
    on_line = f"at {100 * line.defect_rate:g} % defective and a miss costing {line.miss_cost:g} line stops"
    if best["model"] == LEGACY_MODEL:
        st.warning(f"No model beats the legacy check {on_line}.")
        return
    sentence = (
        f"{best['candidate']} costs least {on_line}: {best['false_alarms_per_shift']:.1f} false alarms and "
        f"{best['misses_per_shift']:.2f} missed defects {shift.per}, against {reference['false_alarms_per_shift']:.1f} "
        f"and {reference['misses_per_shift']:.2f} for the legacy system"
    )
    if shift.complete:
        sentence += f", about {best['minutes_avoided_per_shift']:.0f} line-stop minutes avoided per shift of {shift.parts} parts"
    st.success(sentence + ".")


def silent_candidates(runs: pd.DataFrame, policy: Policy) -> None:
    silent = flags_nothing(runs) if policy == "cost" else []
    if silent:
        st.caption(
            f"{', '.join(silent)}: at this defect rate and miss cost, on at least one seed no threshold catches enough "
            "defects to pay for its false alarms, so the cheapest choice there is to flag nothing."
        )


def rates_chart(table: pd.DataFrame, shift: Shift) -> None:
    labels = column_labels(shift)
    figure = px.bar(
        table.melt(
            id_vars="candidate",
            value_vars=["false_alarms_per_shift", "misses_per_shift"],
            var_name="kind",
            value_name="parts",
        ),
        x="candidate",
        y="parts",
        color="kind",
        barmode="group",
        labels={"parts": f"parts {shift.per}", "candidate": "", "kind": ""},
    )
    figure.for_each_trace(lambda trace: trace.update(name=labels[trace.name]))
    st.plotly_chart(figure)


def rates_table(table: pd.DataFrame, shift: Shift) -> None:
    labels = column_labels(shift)
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
        },
    )
    st.caption(
        "False alarms are good parts flagged, n·(1 − p)·FPR; missed defects are defective parts let through, n·p·FNR; "
        "FPR and FNR are measured on this part's test set per run and averaged over seeds. Least expected cost picks "
        "each run's threshold minimising (1 − p)·FPR + p·(miss cost)·FNR, the higher one on a tie. Line-stop minutes "
        "count false alarms only. Zero escapes sets each run's threshold at its lowest-scoring defective image, so no "
        "defect is missed on the test set."
    )


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
        comparison_with_legacy(table, filters.part, line, shift)
        silent_candidates(runs, policy)
        rates_chart(table, shift)
        rates_table(table, shift)
