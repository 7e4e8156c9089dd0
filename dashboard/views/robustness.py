"""Baseline against augmented training per model and metric, sorted by the drop (study Fig. 12)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import cached_queries, widgets
from store.metrics import metric as registered_metric
from store.runs import CONDITIONS

BASELINE, AUGMENTED = CONDITIONS

st.title("Robustness")
st.caption(
    "`augmented` trains with the study's lighting, blur and noise augmentations (Defocus, RandomBrightnessContrast, "
    "ISONoise, each with p = 0.5); test images are the same in both conditions."
)
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, condition=False)
    part = cached_queries.part_results(ctx.store, ctx.stamp, filters.part)
    if filters.source is not None:
        part = part[part["source"] == filters.source]
    offered: list[str] = [m for m in widgets.ACCURACY_METRICS if m in set(part["metric"])]
    metric = str(
        st.selectbox(
            "Metric",
            offered or [widgets.ACCURACY_METRICS[0]],
            format_func=widgets.METRIC_LABELS.__getitem__,
            key="robustness_metric",
        )
    )
    entry = registered_metric(metric)
    paired = (
        part[part["metric"] == metric]
        .pivot_table(index=["candidate", "source"], columns="condition", values="mean", aggfunc="first")
        .reindex(columns=[BASELINE, AUGMENTED])
        .dropna()
        .reset_index()
    )
    if paired.empty:
        widgets.empty_state(
            f"No candidate on {filters.part} has {widgets.METRIC_LABELS[metric]} in both conditions yet. "
            "Run `gluelab evaluate ... --conditions baseline augmented` to compare them.",
            ctx,
        )
    else:
        paired["drop"] = paired[BASELINE] - paired[AUGMENTED]
        paired = paired.sort_values("drop", ascending=False)
        figure = go.Figure()
        for condition, colour in ((BASELINE, "#0b6e99"), (AUGMENTED, "#e07b00")):
            figure.add_bar(
                y=paired["candidate"], x=paired[condition], name=condition, orientation="h", marker_color=colour
            )
        figure.update_layout(
            barmode="group",
            xaxis_title=widgets.METRIC_LABELS[metric],
            height=160 + 40 * len(paired),
            yaxis={"categoryorder": "array", "categoryarray": paired["candidate"].tolist()[::-1]},
        )
        st.plotly_chart(figure)
        st.dataframe(
            paired,
            hide_index=True,
            column_config={
                **widgets.key_columns(paired),
                **{
                    column: st.column_config.NumberColumn(
                        f"{title} ({widgets.METRIC_LABELS[metric]})", format=f"%.{entry.digits}f"
                    )
                    for column, title in ((BASELINE, "Baseline"), (AUGMENTED, "Augmented"), ("drop", "Drop"))
                },
            },
        )
        worst = paired.iloc[0]
        st.markdown(
            f"Largest drop: **{worst['candidate']}** loses {worst['drop']:.{entry.digits}f} {widgets.METRIC_LABELS[metric]} "
            f"when trained with augmentations ({entry.format(worst[BASELINE])} → {entry.format(worst[AUGMENTED])})."
        )
