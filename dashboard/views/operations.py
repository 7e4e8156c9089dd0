"""What a model would mean on your line: false alarms, missed defects and line-stop minutes per shift against the legacy check.

You give the line's defect rate, what a missed defect costs in line stops, the largest share of defective parts
it may let pass, parts per shift and minutes per stop. Each run's threshold is then the one of least expected cost
on that line among those within the escape limit (or, as options, the test set's F1 optimum or zero escapes), and
its test-set rates become false alarms and misses per shift. The arithmetic lives in `engine.analysis.line_stops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.line_stops import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_MAX_ESCAPE_RATE,
    DEFAULT_MISS_COST,
    LEGACY_MODEL,
    Line,
    Policy,
    escape_interval,
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
        "escape_interval": "Escape rate, 95 % interval",
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


def line_figures(runs: pd.DataFrame, policy: Policy, line: Line, shift: Shift) -> pd.DataFrame:
    table = on_the_line(
        rates_per_candidate(runs, policy), line, shift.parts or PARTS_WITHOUT_SHIFT, shift.minutes_per_stop
    )
    table["escape_interval"] = [
        f"{100 * low:.0f}–{100 * high:.0f} % of {n}" if n else "no defective image"
        for low, high, n in zip(table["escape_low"], table["escape_high"], table["defective_test_images"], strict=True)
    ]
    return table


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
    on_line = f"at {100 * line.defect_rate:g} % defective and a miss costing {line.miss_cost:g} line stops"
    if "escape_limit_met" in table:  # least expected cost: only candidates meeting the escape limit may be chosen
        table = table[table["escape_limit_met"]]
        if line.max_escape_rate < 1:
            on_line += f", letting at most {100 * line.max_escape_rate:g} % of defects pass"
    if table.empty:
        st.warning(f"No model, not even the legacy check, meets the escape limit {on_line}.")
        return
    best, reference = table.iloc[0], legacy.iloc[0]
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


def escape_limit(table: pd.DataFrame, line: Line) -> None:
    """Candidates that meet the escape limit only by flagging every good part, and how sure the rates are."""
    if "escape_limit_met" in table and not table["escape_limit_met"].all():
        names = ", ".join(table.loc[~table["escape_limit_met"], "candidate"])
        st.warning(
            f"{names}: on at least one seed, letting at most {100 * line.max_escape_rate:g} % of defects pass takes a "
            "threshold that flags every good part, so no usable threshold meets the limit; left out of the choice."
        )
    fewest = int(table["defective_test_images"].min())
    bound = escape_interval(0, fewest)[1] if fewest else 1.0
    if bound > line.max_escape_rate:
        st.caption(
            f"Escape rates are measured on as few as {fewest} defective test images, so their 95 % intervals are "
            f"wide: a model that misses none of {fewest} may still let up to {100 * bound:.0f} % of defects pass, "
            f"above the {100 * line.max_escape_rate:g} % limit. Collect more defective images to show the limit holds."
        )


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
            "escape_interval": st.column_config.TextColumn(labels["escape_interval"]),
        },
    )
    st.caption(
        "False alarms are good parts flagged, n·(1 − p)·FPR; missed defects are defective parts let through, n·p·FNR; "
        "FPR and FNR are measured on this part's test set per run and averaged over seeds. Least expected cost picks "
        "each run's threshold minimising (1 − p)·FPR + p·(miss cost)·FNR among those missing at most the maximum "
        "escape rate of the test set's defects, the higher one on a tie. The escape rate's interval is "
        "Clopper–Pearson's, over the defective test images of all seeds. Line-stop minutes "
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
        escape_limit(table, line)
        silent_candidates(runs, policy)
        rates_chart(table, shift)
        rates_table(table, shift)
