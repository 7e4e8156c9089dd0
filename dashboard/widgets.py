"""Pieces every page shares: the store context, sidebar filters, empty states, metric names, image panels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries
from engine.analysis import training
from engine.analysis.decision import Question
from engine.analysis.pictures import heat_overlay
from engine.analysis.results_table import LOCAL_SOURCE, wide_results
from engine.report import REPORT_FILE_NAME, build_report
from store import files
from store.metrics import ACCURACY_METRICS as ACCURACY_METRICS  # accuracy metrics: higher is better
from store.metrics import METRIC_LABELS as METRIC_LABELS  # every metric's label
from store.metrics import METRICS
from store.runs import CONDITIONS

# Headers of the columns every result table shares.
KEY_LABELS = {"candidate": "Model", "source": "Source", "preset": "Preset", "n_seeds": "Seeds", "seed": "Seed"}
SOURCES = {"Both": None, "Local runs": LOCAL_SOURCE, "Published study": cached_queries.PUBLISHED_SOURCE_LABEL}
FILL_THE_STORE = (
    "Fill it with `make demo`, or step by step: `gluelab generate --parts part1 --store STORE`, "
    "`gluelab load-published --store STORE`, `gluelab evaluate --parts part1 --models padim --store STORE`."
)


@dataclass(frozen=True)
class StoreContext:
    store: str
    stamp: str


@dataclass(frozen=True)
class Filters:
    part: str
    condition: str
    source: str | None  # None: local and published


def store_context() -> StoreContext | None:
    """The store this session reads, or None after showing how to create one."""
    store = str(cached_queries.store_path())
    stamp = cached_queries.stamp(store)
    st.sidebar.caption(f"Store: `{store}`")
    if stamp is None:
        st.info(f"There is no results store at `{store}` yet. " + FILL_THE_STORE.replace("STORE", store))
        return None
    return StoreContext(store, stamp)


def empty_state(message: str, ctx: StoreContext) -> None:
    st.info(message + " " + FILL_THE_STORE.replace("STORE", ctx.store))


def sidebar_filters(
    ctx: StoreContext,
    *,
    default_part: str | None = None,
    source: bool = True,
    condition: bool = True,
) -> Filters:
    """Part, condition and source pickers in the sidebar; parts are those with images, runs or published figures."""
    parts = sorted(cached_queries.parts(ctx.store, ctx.stamp), key=part_order)
    if not parts:
        parts = [default_part or "part1"]
    index = parts.index(default_part) if default_part in parts else 0
    part = st.sidebar.selectbox("Part", parts, index=index, key="filter_part")
    chosen_condition = (
        st.sidebar.radio("Condition", list(CONDITIONS), horizontal=True, key="filter_condition")
        if condition
        else CONDITIONS[0]
    )
    chosen_source = st.sidebar.radio("Source", list(SOURCES), key="filter_source") if source else "Both"
    return Filters(part, chosen_condition, SOURCES[chosen_source])


def part_order(part: str) -> tuple:
    """part2 before part10; other names after the numbered parts."""
    digits = part.removeprefix("part")
    return (0, int(digits), "") if digits.isdigit() else (1, 0, part)


def filtered(results: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    chosen = results[(results["part"] == filters.part) & (results["condition"] == filters.condition)]
    return chosen if filters.source is None else chosen[chosen["source"] == filters.source]


def wide_table(long: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per candidate with `<metric>_mean`, `<metric>_std` and `n_seeds` columns."""
    chosen = long[long["metric"].isin(list(metrics))]
    if chosen.empty:
        return pd.DataFrame(columns=["candidate", "source"])
    table = wide_results(chosen)
    labels = chosen.drop_duplicates(["source", "model", "backbone", "preset"])[
        ["source", "model", "backbone", "preset", "candidate"]
    ]
    table = table.merge(labels, on=["source", "model", "backbone", "preset"], how="left")
    return table[["candidate", *table.columns.drop("candidate")]].dropna(axis=1, how="all")


def key_columns(frame: pd.DataFrame) -> dict:
    """Column settings heading the shared key columns of `frame` (candidate, source, ...) in words."""
    return {column: st.column_config.Column(label) for column, label in KEY_LABELS.items() if column in frame}


@dataclass(frozen=True)
class ReadableTable:
    frame: pd.DataFrame
    column_config: dict

    def show(self) -> None:
        st.dataframe(self.frame, hide_index=True, column_config=self.column_config)


def readable_table(table: pd.DataFrame, keep: tuple[str, ...] = ("candidate", "source", "n_seeds")) -> ReadableTable:
    """A wide table as people read it: the `keep` columns, then one `mean ± std` text column per metric.

    Each metric column keeps the metric's name (so it can be looked up) and is headed by its label;
    decimals come from the registry, and a figure without a spread (one seed, published) shows no ±.
    """
    shown = table[[column for column in keep if column in table]].copy()
    config = key_columns(shown)
    if "n_seeds" in shown:
        config["n_seeds"] = st.column_config.NumberColumn("Seeds", format="%d")
    for name, entry in METRICS.items():
        if f"{name}_mean" in table:
            stds = table[f"{name}_std"] if f"{name}_std" in table else pd.Series(None, index=table.index)
            shown[name] = [entry.format(mean, std) for mean, std in zip(table[f"{name}_mean"], stds, strict=True)]
            config[name] = st.column_config.TextColumn(entry.label)
    return ReadableTable(shown, config)


def read_gray(path: Path) -> np.ndarray | None:
    """8-bit grayscale image, or None when the file is missing or unreadable."""
    return files.read_gray(path)


def segmentation_panels(examples: list[pd.Series], artifacts_root: Path) -> None:
    """input | ground truth | heatmap overlay | predicted mask, with a heatmap and mask for each further model.

    Files are opened only inside the part's root and the store's artifact folder (`store.files`).
    """
    first = examples[0]
    root = Path(first["root"])
    try:
        image = files.read_part_image(root, first["image_path"])
        has_mask = isinstance(first["mask_path"], str)
        truth = files.read_part_image(root, first["mask_path"]) if has_mask and image is not None else None
    except files.OutsideFolder as refused:
        st.warning(f"Not shown: {refused}.")
        return
    if image is None:
        st.warning(f"{root / first['image_path']} is no longer on disk.")
        return
    panels = [("Input", image), ("Ground truth", np.zeros_like(image) if truth is None else truth)]
    for example in examples:
        try:
            heatmap = files.read_artifact(artifacts_root, example["anomaly_map_path"])
            predicted = files.read_artifact(artifacts_root, example["pred_mask_path"])
        except files.OutsideFolder as refused:
            st.warning(f"Heatmap of {example['candidate']} not shown: {refused}.")
            continue
        if heatmap is None or predicted is None:
            st.warning(f"The kept heatmap of {example['candidate']} for {example['image_path']} is no longer on disk.")
            continue
        verdict = "flagged" if example["predicted_anomalous"] else "passed"
        panels += [
            (
                f"{example['candidate']}: heatmap (score {example['score']:.3g}, {verdict})",
                heat_overlay(image, heatmap),
            ),
            (
                f"{example['candidate']}: predicted mask",
                cv2.resize(predicted, image.shape[::-1], interpolation=cv2.INTER_NEAREST),
            ),
        ]
    for column, (title, picture) in zip(st.columns(len(panels)), panels, strict=True):
        column.image(picture, caption=title, clamp=True, width="stretch")


def training_panel(run: pd.Series, losses: pd.DataFrame) -> None:
    """One run's training: a warning badge when under-trained, its stop reason in words, and its loss curve.

    The curve is the mean training loss of each epoch against the epoch, with the training minutes up to
    that epoch on hover.
    """
    badge = training.under_trained_badge(run)
    if badge is not None:
        st.warning(badge, icon=":material/warning:")
    else:
        st.info(training.run_note(run), icon=":material/model_training:")
    if losses.empty:
        return
    figure = px.line(
        training.loss_curve(losses),
        x="epoch",
        y="loss",
        markers=True,
        hover_data={"minutes": ":.2f"},
        labels={"epoch": "Epoch", "loss": "Training loss (mean over the epoch)", "minutes": "Minutes"},
        title=f"Loss per epoch: {run['candidate']}, seed {run['seed']}, {run['condition']}",
    )
    st.plotly_chart(figure)


def choose_run(runs: pd.DataFrame, label: str, key: str) -> pd.Series:
    """A select box over `runs` (with `candidate` and `part` columns), each named by candidate, seed and condition
    (and part, when they span several); under-trained runs say so. Returns the chosen run's row."""
    several_parts = runs["part"].nunique() > 1
    names = {
        run["run_id"]: (f"{run['part']} · " if several_parts else "")
        + f"{run['candidate']} · seed {run['seed']} · {run['condition']}"
        + (" · under-trained" if training.is_under_trained(run) else "")
        for _, run in runs.iterrows()
    }
    chosen = st.selectbox(label, list(names), format_func=names.__getitem__, key=key)
    return runs[runs["run_id"] == chosen].iloc[0]


def decision_report_button(ctx: StoreContext, question: Question, key: str) -> None:
    """Download decision report: the HTML file `gluelab report` writes for `question` (`engine.report`), built when
    clicked. Reading needs no role."""
    st.download_button(
        "Download decision report",
        data=lambda: build_report(ctx.store, question).encode(),
        file_name=REPORT_FILE_NAME,
        mime="text/html",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        help="One HTML file for the people who sign the model change off: the question, the recommendation, the "
        "trade-off, the line-stop consequence, examples of what the model fails on, what was left out, and how "
        "to rebuild it. It opens without a network and prints to A4.",
    )
