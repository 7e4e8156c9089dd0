"""What a model would mean on the line: false alarms and missed defects per 1000 parts against the legacy check.

A false alarm stops the line for nothing; the minutes avoided per shift compare each model's false alarms
with the legacy system's on the same part, at the threshold policy chosen here.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets

POLICIES = {
    "F1-optimal threshold": ("false_alarms_f1", "missed_f1"),
    "Zero escapes on the test set": ("false_alarms_zero_escape", None),
}

COLUMN_LABELS = {
    "false_alarms_per_1000": "False alarms per 1000 good parts",
    "missed_per_1000": "Missed defects per 1000 defective parts",
    "vs_legacy_per_1000": "Fewer false alarms than legacy, per 1000",
    "stop_minutes_per_shift": "Line-stop minutes per shift",
    "minutes_avoided_per_shift": "Minutes avoided per shift vs legacy",
    "good_test_images": "Good test images",
}

st.title("Line stops")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, source=False)
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    runs = runs[runs["condition"] == filters.condition]
    if runs.empty:
        widgets.empty_state(
            f"No finished local run on {filters.part} ({filters.condition}). Operating figures need per-image scores, "
            "which the published study does not give.",
            ctx,
        )
    else:
        policy = st.radio("Threshold policy", list(POLICIES), horizontal=True, key="ops_policy")
        false_column, missed_column = POLICIES[policy]
        left, right = st.columns(2)
        parts_per_shift = left.number_input(
            "Parts per shift", min_value=1, value=None, step=50, placeholder="your line's figure", key="ops_parts"
        )
        minutes_per_stop = right.number_input(
            "Minutes lost per line stop",
            min_value=0.0,
            value=None,
            step=0.5,
            placeholder="your line's figure",
            key="ops_minutes",
        )
        per_run = runs.assign(
            false_alarms_per_1000=1000 * runs[false_column] / runs["n_good"],
            missed_per_1000=1000 * runs[missed_column] / runs["n_defective"] if missed_column else 0.0,
        )
        table = (
            per_run.groupby(["candidate", "model"])
            .agg(
                false_alarms_per_1000=("false_alarms_per_1000", "mean"),
                missed_per_1000=("missed_per_1000", "mean"),
                seeds=("seed", "nunique"),
                good_test_images=("n_good", "max"),
            )
            .reset_index()
            .sort_values("false_alarms_per_1000")
        )
        legacy = table[table["model"] == "legacy"]
        if legacy.empty:
            st.warning(
                f"No `legacy` run on {filters.part}: run `gluelab evaluate --parts {filters.part} --models legacy` to compare against it."
            )
        else:
            legacy_rate = legacy["false_alarms_per_1000"].iloc[0]
            table["vs_legacy_per_1000"] = legacy_rate - table["false_alarms_per_1000"]
            if parts_per_shift and minutes_per_stop is not None:
                table["stop_minutes_per_shift"] = (
                    table["false_alarms_per_1000"] / 1000 * parts_per_shift * minutes_per_stop
                )
                table["minutes_avoided_per_shift"] = (
                    table["vs_legacy_per_1000"] / 1000 * parts_per_shift * minutes_per_stop
                )
                best = table.iloc[0]
                st.success(
                    f"{best['candidate']}: {best['false_alarms_per_1000']:.0f} false alarms per 1000 good parts vs "
                    f"{legacy_rate:.0f} for the legacy system, about {best['minutes_avoided_per_shift']:.0f} line-stop minutes "
                    f"avoided per shift of {parts_per_shift} parts."
                )
            else:
                st.info(
                    "Enter parts per shift and minutes lost per stop to turn rates into line-stop minutes per shift."
                )
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
