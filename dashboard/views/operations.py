"""What a model would mean on the line: false alarms and missed defects per 1000 parts against the legacy check.

A false alarm stops the line for nothing; the minutes avoided per shift compare each model's false alarms
with the legacy system's on the same part, at the threshold policy chosen here. The arithmetic lives in
`engine.analysis.line_stops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.line_stops import Policy, against_legacy, legacy_rate, rates_per_candidate

POLICIES: dict[str, Policy] = {
    "F1-optimal threshold": "f1",
    "Zero escapes on the test set": "zero_escape",
}

COLUMN_LABELS = {
    "false_alarms_per_1000": "False alarms per 1000 good parts",
    "missed_per_1000": "Missed defects per 1000 defective parts",
    "vs_legacy_per_1000": "Fewer false alarms than legacy, per 1000",
    "stop_minutes_per_shift": "Line-stop minutes per shift",
    "minutes_avoided_per_shift": "Minutes avoided per shift vs legacy",
    "good_test_images": "Good test images",
}


@dataclass(frozen=True)
class Shift:
    parts: int | None
    minutes_per_stop: float | None

    @property
    def complete(self) -> bool:
        return bool(self.parts) and self.minutes_per_stop is not None


def local_runs(ctx: widgets.StoreContext, filters: widgets.Filters) -> pd.DataFrame:
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    return runs[runs["condition"] == filters.condition]


def policy_choice() -> Policy:
    return POLICIES[st.radio("Threshold policy", list(POLICIES), horizontal=True, key="ops_policy")]


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


def comparison_with_legacy(rates: pd.DataFrame, part: str, shift: Shift) -> pd.DataFrame:
    """The rates with the legacy comparison and shift minutes when possible, and a sentence on the best candidate."""
    reference = legacy_rate(rates)
    if reference is None:
        st.warning(
            f"No `legacy` run on {part}: run `gluelab evaluate --parts {part} --models legacy` to compare against it."
        )
        return rates
    if not shift.complete:
        st.info("Enter parts per shift and minutes lost per stop to turn rates into line-stop minutes per shift.")
        return against_legacy(rates)
    table = against_legacy(rates, shift.parts, shift.minutes_per_stop)
    best = table.iloc[0]
    st.success(
        f"{best['candidate']}: {best['false_alarms_per_1000']:.0f} false alarms per 1000 good parts vs "
        f"{reference:.0f} for the legacy system, about {best['minutes_avoided_per_shift']:.0f} line-stop minutes "
        f"avoided per shift of {shift.parts} parts."
    )
    return table


def rates_chart(table: pd.DataFrame) -> None:
    figure = px.bar(
        table.melt(
            id_vars="candidate",
            value_vars=["false_alarms_per_1000", "missed_per_1000"],
            var_name="kind",
            value_name="per_1000",
        ),
        x="candidate",
        y="per_1000",
        color="kind",
        barmode="group",
        labels={"per_1000": "per 1000 parts", "candidate": "", "kind": ""},
    )
    figure.for_each_trace(lambda trace: trace.update(name=COLUMN_LABELS[trace.name]))
    st.plotly_chart(figure)


def rates_table(table: pd.DataFrame) -> None:
    st.dataframe(
        table.drop(columns=["model"]),
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(label, format="%d" if column == "good_test_images" else "%.1f")
            for column, label in COLUMN_LABELS.items()
        },
    )
    st.caption(
        "Rates are measured on this part's test set (false alarms over its good images, misses over its defective ones), "
        "averaged over seeds. Line-stop minutes count false alarms only and treat every part as good; a defective part "
        "should stop the line under any model. Zero escapes sets each run's threshold at its lowest-scoring defective image, "
        "so no defect is missed on the test set."
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
        policy = policy_choice()
        table = comparison_with_legacy(rates_per_candidate(runs, policy), filters.part, shift_inputs())
        rates_chart(table)
        rates_table(table)
