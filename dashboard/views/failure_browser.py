"""Why a model fails on a part: false alarms and misses at its threshold, and how scores follow brightness.

Opens on part16, whose strongly varying exposure is what makes the current camera system raise false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from store import files
from store.runs import artifacts_dir

DEFAULT_PART = "part16"
ORDERS = {
    "Brightness (brightest first)": ("mean_brightness", False),
    "Score margin (closest to the threshold first)": ("abs_margin", True),
}
SHOWN_COLUMNS = ["image_path", "label", "score", "margin", "mean_brightness", "over_exposed", "region", "defect_type"]
OUTCOME_COLOURS = {
    "good · passed": "#4c9f70",
    "good · flagged": "#d62728",
    "defective · flagged": "#1f77b4",
    "defective · passed": "#ff7f0e",
}


@dataclass(frozen=True)
class Outcomes:
    """One run's test images with their outcome at its threshold, and the two kinds of failure among them."""

    scored: pd.DataFrame
    false_alarms: pd.DataFrame  # good images flagged
    misses: pd.DataFrame  # defective images passed

    @property
    def failure_index(self) -> pd.Index:
        return self.false_alarms.index.union(self.misses.index)


def outcomes(scored: pd.DataFrame) -> Outcomes:
    kind = (scored["label"] == "anomalous").map({True: "defective", False: "good"})
    verdict = scored["predicted_anomalous"].map({True: " · flagged", False: " · passed"})
    scored = scored.assign(outcome=kind + verdict, abs_margin=scored["margin"].abs())
    return Outcomes(
        scored,
        false_alarms=scored[(scored["label"] == "normal") & scored["predicted_anomalous"]],
        misses=scored[(scored["label"] == "anomalous") & ~scored["predicted_anomalous"]],
    )


def choose_run(runs: pd.DataFrame) -> pd.Series:
    left, right = st.columns([3, 1])
    candidate = left.selectbox("Model", runs["candidate"].unique(), key="failure_model")
    seed = right.selectbox("Seed", runs.loc[runs["candidate"] == candidate, "seed"].tolist(), key="failure_seed")
    return runs[(runs["candidate"] == candidate) & (runs["seed"] == seed)].iloc[0]


def summary(run: pd.Series, found: Outcomes) -> None:
    """Failure counts, the threshold, and how strongly good images' scores follow their brightness."""
    columns = st.columns(4)
    columns[0].metric(
        "False alarms", f"{len(found.false_alarms)} / {int(run['n_good'])}", help="good test images flagged"
    )
    columns[1].metric(
        "Missed defects", f"{len(found.misses)} / {int(run['n_defective'])}", help="defective test images passed"
    )
    columns[2].metric("Threshold (F1-optimal)", f"{found.scored['threshold'].iloc[0]:.4g}")
    good = found.scored[found.scored["label"] == "normal"]
    if len(good) > 2 and good["mean_brightness"].nunique() > 1:
        rho = good["mean_brightness"].corr(good["score"], method="spearman")
        columns[3].metric("Brightness vs score (good images)", f"ρ = {rho:.2f}", help="Spearman rank correlation")


def brightness_scatter(scored: pd.DataFrame) -> list[str]:
    """Score against mean grey level, coloured by outcome; returns the image paths clicked on."""
    figure = px.scatter(
        scored,
        x="mean_brightness",
        y="score",
        color="outcome",
        custom_data=["image_path"],
        hover_data=["image_path", "region", "defect_type", "margin"],
        labels={"mean_brightness": "Mean grey level", "score": "Anomaly score"},
        color_discrete_map=OUTCOME_COLOURS,
    )
    figure.add_hline(y=scored["threshold"].iloc[0], line_dash="dash", annotation_text="threshold")
    st.caption("Click a point to open that image below.")
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="failure_scatter")
    return [point["customdata"][0] for point in event.selection.points] if event and event.selection.points else []


def image_lists(found: Outcomes) -> pd.DataFrame:
    """False alarms, misses and all test images in tabs, in the chosen order; returns all images in that order."""
    column, ascending = ORDERS[st.radio("Order images by", list(ORDERS), horizontal=True, key="failure_order")]
    ordered = found.scored.sort_values(column, ascending=ascending)
    tab_false, tab_missed, tab_all = st.tabs(
        [f"False alarms ({len(found.false_alarms)})", f"Missed defects ({len(found.misses)})", "All test images"]
    )
    tab_false.dataframe(ordered.loc[ordered.index.isin(found.false_alarms.index), SHOWN_COLUMNS], hide_index=True)
    tab_missed.dataframe(ordered.loc[ordered.index.isin(found.misses.index), SHOWN_COLUMNS], hide_index=True)
    tab_all.dataframe(ordered[SHOWN_COLUMNS], hide_index=True)
    return ordered


def open_image(
    ctx: widgets.StoreContext, part: str, run: pd.Series, found: Outcomes, ordered: pd.DataFrame, clicked: list[str]
) -> None:
    """The clicked image, else the first failure in the chosen order, with its kept heatmap when the run has one."""
    options = ordered["image_path"].tolist()
    failures = ordered.loc[ordered.index.isin(found.failure_index), "image_path"].tolist()
    default = clicked[0] if clicked else (failures[0] if failures else options[0])
    image_path = st.selectbox("Open image", options, index=options.index(default), key=f"failure_open_{default}")
    chosen = found.scored[found.scored["image_path"] == image_path].iloc[0]
    st.markdown(
        f"**{image_path}** · {chosen['outcome']} · score {chosen['score']:.4g} (margin {chosen['margin']:+.3g}) · "
        f"mean grey level {chosen['mean_brightness']:.0f}"
    )
    kept = cached_queries.run_example(ctx.store, ctx.stamp, run["run_id"], image_path)
    if not kept.empty:
        widgets.segmentation_panels([kept.iloc[0]], artifacts_dir(ctx.store))
        return
    root = cached_queries.part_root(ctx.store, ctx.stamp, part)
    try:
        image = files.read_part_image(root, image_path) if root else None
    except files.OutsideFolder as refused:
        st.warning(f"Not shown: {refused}.")
        return
    if image is not None:
        st.image(
            image, caption="Input (no heatmap kept: runs keep defective images and their 10 highest-scoring good ones)"
        )


st.title("Failure browser")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx, default_part=DEFAULT_PART, source=False)
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (filters.part,))
    runs = runs[runs["condition"] == filters.condition].sort_values(["candidate", "seed"])
    if runs.empty:
        widgets.empty_state(f"No finished local run on {filters.part} ({filters.condition}) to browse.", ctx)
    else:
        run = choose_run(runs)
        found = outcomes(cached_queries.scored_images(ctx.store, ctx.stamp, run["run_id"]))
        summary(run, found)
        clicked = brightness_scatter(found.scored)
        ordered = image_lists(found)
        open_image(ctx, filters.part, run, found, ordered, clicked)
