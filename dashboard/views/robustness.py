"""Baseline against augmented training per model and metric, sorted by the drop (study Fig. 12)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import cached_queries, widgets

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
    metric = st.selectbox(
        "Metric",
        [m for m in widgets.ACCURACY_METRICS if m in set(part["metric"])] or ["image_auroc"],
        format_func=widgets.METRIC_LABELS.get,
        key="robustness_metric",
    )
    paired = (
        part[part["metric"] == metric]
        .pivot_table(index=["candidate", "source"], columns="condition", values="mean", aggfunc="first")
        .reindex(columns=["baseline", "augmented"])
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
        paired["drop"] = paired["baseline"] - paired["augmented"]
        paired = paired.sort_values("drop", ascending=False)
        figure = go.Figure()
        for condition, colour in (("baseline", "#0b6e99"), ("augmented", "#e07b00")):
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
            column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("baseline", "augmented", "drop")},
        )
        worst = paired.iloc[0]
        st.markdown(
            f"Largest drop: **{worst['candidate']}** loses {worst['drop']:.3f} {widgets.METRIC_LABELS[metric]} "
            f"when trained with augmentations ({worst['baseline']:.3f} → {worst['augmented']:.3f})."
        )
