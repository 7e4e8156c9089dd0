"""Why a model fails on a part: false alarms and misses at its threshold, and how scores follow brightness.

Opens on part16, whose strongly varying exposure is what makes the current camera system raise false alarms.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import cached_queries, files, widgets
from store.runs import artifacts_dir

DEFAULT_PART = "part16"
ORDERS = {
    "Brightness (brightest first)": ("mean_brightness", False),
    "Score margin (closest to the threshold first)": ("abs_margin", True),
}

st.title("Failure browser")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, default_part=DEFAULT_PART, source=False)
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    runs = runs[runs["condition"] == filters.condition].sort_values(["candidate", "seed"])
    if runs.empty:
        widgets.empty_state(f"No finished local run on {filters.part} ({filters.condition}) to browse.", ctx)
    else:
        left, right = st.columns([3, 1])
        candidate = left.selectbox("Model", runs["candidate"].unique(), key="failure_model")
        seeds = runs.loc[runs["candidate"] == candidate, "seed"].tolist()
        seed = right.selectbox("Seed", seeds, key="failure_seed")
        run = runs[(runs["candidate"] == candidate) & (runs["seed"] == seed)].iloc[0]
        scored = cached_queries.scored_images(ctx.store, ctx.stamp, run["run_id"]).assign(
            outcome=lambda f: (
                (f["label"] == "anomalous").map({True: "defective", False: "good"})
                + f["predicted_anomalous"].map({True: " · flagged", False: " · passed"})
            )
        )
        scored["abs_margin"] = scored["margin"].abs()
        false_alarms = scored[(scored["label"] == "normal") & scored["predicted_anomalous"]]
        misses = scored[(scored["label"] == "anomalous") & ~scored["predicted_anomalous"]]
        columns = st.columns(4)
        columns[0].metric(
            "False alarms", f"{len(false_alarms)} / {int(run['n_good'])}", help="good test images flagged"
        )
        columns[1].metric(
            "Missed defects", f"{len(misses)} / {int(run['n_defective'])}", help="defective test images passed"
        )
        columns[2].metric("Threshold (F1-optimal)", f"{scored['threshold'].iloc[0]:.4g}")
        good = scored[scored["label"] == "normal"]
        if len(good) > 2 and good["mean_brightness"].nunique() > 1:
            rho = good["mean_brightness"].corr(good["score"], method="spearman")
            columns[3].metric("Brightness vs score (good images)", f"ρ = {rho:.2f}", help="Spearman rank correlation")

        figure = px.scatter(
            scored,
            x="mean_brightness",
            y="score",
            color="outcome",
            custom_data=["image_path"],
            hover_data=["image_path", "region", "defect_type", "margin"],
            labels={"mean_brightness": "Mean grey level", "score": "Anomaly score"},
            color_discrete_map={
                "good · passed": "#4c9f70",
                "good · flagged": "#d62728",
                "defective · flagged": "#1f77b4",
                "defective · passed": "#ff7f0e",
            },
        )
        figure.add_hline(y=scored["threshold"].iloc[0], line_dash="dash", annotation_text="threshold")
        st.caption("Click a point to open that image below.")
        event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="failure_scatter")

        column, ascending = ORDERS[st.radio("Order images by", list(ORDERS), horizontal=True, key="failure_order")]
        ordered = scored.sort_values(column, ascending=ascending)
        tab_false, tab_missed, tab_all = st.tabs(
            [f"False alarms ({len(false_alarms)})", f"Missed defects ({len(misses)})", "All test images"]
        )
        shown_columns = [
            "image_path",
            "label",
            "score",
            "margin",
            "mean_brightness",
            "over_exposed",
            "region",
            "defect_type",
        ]
        tab_false.dataframe(ordered.loc[ordered.index.isin(false_alarms.index), shown_columns], hide_index=True)
        tab_missed.dataframe(ordered.loc[ordered.index.isin(misses.index), shown_columns], hide_index=True)
        tab_all.dataframe(ordered[shown_columns], hide_index=True)

        clicked = (
            [point["customdata"][0] for point in event.selection.points] if event and event.selection.points else []
        )
        options = ordered["image_path"].tolist()
        failures = ordered.loc[ordered.index.isin(false_alarms.index.union(misses.index)), "image_path"].tolist()
        default = clicked[0] if clicked else (failures[0] if failures else options[0])
        image_path = st.selectbox("Open image", options, index=options.index(default), key=f"failure_open_{default}")
        chosen = scored[scored["image_path"] == image_path].iloc[0]
        st.markdown(
            f"**{image_path}** · {chosen['outcome']} · score {chosen['score']:.4g} (margin {chosen['margin']:+.3g}) · "
            f"mean grey level {chosen['mean_brightness']:.0f}"
        )
        kept = cached_queries.run_example(ctx.store, ctx.stamp, run["run_id"], image_path)
        if kept.empty:
            root = cached_queries.part_root(ctx.store, ctx.stamp, filters.part)
            try:
                image = files.read_part_image(root, image_path) if root else None
            except files.OutsideFolder as refused:
                image = None
                st.warning(f"Not shown: {refused}.")
            if image is not None:
                st.image(
                    image,
                    caption="Input (no heatmap kept: runs keep defective images and their 10 highest-scoring good ones)",
                )
        else:
            widgets.segmentation_panels([kept.iloc[0]], artifacts_dir(ctx.store))
