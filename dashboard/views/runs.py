"""Evaluations of this store: engineers submit them, everyone follows the queue of requests the store's worker
runs, the runs per status, the latest runs with their errors and how they trained, where their time went, and a
finished run's loss curve."""

from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, request_queue, roles, widgets
from engine.analysis import training
from engine.analysis.charts import stage_chart
from engine.analysis.labels import model_choices
from engine.analysis.results_table import LOCAL_SOURCE
from store.requests import running_worker
from store.runs import CONDITIONS, PRESETS
from store.stages import STAGES

REFRESH_SECONDS = 3
STAGE_RUNS = 12  # latest finished runs whose time is split by stage
RUN_COLUMNS = {
    "input_size": st.column_config.TextColumn(
        "Input size", help="Width x height every image was resized to before the model read it"
    ),
    "train_size": st.column_config.TextColumn(
        "Training images",
        help="How many of the part's training images the run fitted on: all, or a learning curve's point",
    ),
    "epochs": st.column_config.NumberColumn("Epochs", format="%d"),
    "stop_reason": st.column_config.TextColumn("Stop reason"),
    "under_trained": st.column_config.CheckboxColumn("Under-trained"),
    "timing_contended": st.column_config.CheckboxColumn("Timed under load"),
}

st.title("Runs")
st.caption(f"Evaluations of this store, followed every {REFRESH_SECONDS} s while the page is open.")
ctx = widgets.store_context()


def submit_section(ctx: widgets.StoreContext) -> None:
    """Engineers pick parts, models, seeds and conditions and queue the grid; viewers see how to sign in."""
    st.subheader("Submit an evaluation")
    request_queue.show_outcome(request_queue.SUBMIT_OUTCOME)
    roles.sign_in_box(ctx.store)
    if roles.engineer() is None:
        return
    parts = cached_queries.local_parts(ctx.store, ctx.stamp)
    if not parts:
        st.info(f"Register images first: `gluelab generate --parts part1 --store {ctx.store}` or `gluelab import`.")
        return
    keys = request_queue.FORM_KEYS
    with st.form("submit_evaluation"):
        st.multiselect("Parts", parts, default=parts[:1], key=keys["parts"])
        names = model_choices()
        st.multiselect("Models", list(names), default=["legacy"], format_func=names.__getitem__, key=keys["models"])
        left, middle, right = st.columns(3)
        left.number_input("Seeds", min_value=1, value=1, step=1, key=keys["seeds"])
        middle.multiselect("Conditions", list(CONDITIONS), default=[CONDITIONS[0]], key=keys["conditions"])
        right.radio("Preset", list(PRESETS), horizontal=True, key=keys["preset"])
        st.text_input(
            "Training images",
            value="all",
            key=keys["train_sizes"],
            help="all, or several sizes for a learning curve, e.g. 10 25 50 100 all: each run fits on that many of "
            "the part's training images, drawn by its seed and nested; Part drill-down then shows how many a part needs",
        )
        st.checkbox("Pixel metrics required (every part needs defect masks)", key=keys["pixel_metrics"])
        st.form_submit_button(
            "Submit", key="submit_request", on_click=request_queue.submit_from_form, args=(ctx.store,)
        )


@st.fragment(run_every=REFRESH_SECONDS)
def requests_section(store: str) -> None:
    """The queue: one row per request with its progress; a Cancel button per open request for engineers."""
    st.subheader("Requests")
    if running_worker(store) is None:
        command = request_queue.WORKER_COMMAND.format(store=store)
        st.warning(
            f"No worker is running for this store: queued requests wait until one starts. Start one on this "
            f"machine with `{command}`.",
            icon=":material/pause_circle:",
        )
    request_queue.show_outcome(request_queue.CANCEL_OUTCOME)
    table = cached_queries.requests(store, cached_queries.stamp(store) or "")
    if table.empty:
        st.caption("No evaluation has been requested yet.")
        return
    st.dataframe(request_queue.requests_in_words(table), hide_index=True, column_config=request_queue.REQUEST_COLUMNS)
    if roles.engineer() is None:
        return
    for row in table[table["state"].isin(["queued", "running"])].itertuples():
        state = request_queue.shown_state(row.state, row.cancel_requested_by)
        left, right = st.columns([5, 1])
        left.write(f"Request {row.request_id} ({state}): {request_queue.grid_summary(json.loads(row.grid))}")
        right.button(
            "Cancel",
            key=f"cancel_{row.request_id}",
            disabled=state == "cancelling",
            on_click=request_queue.cancel_from_button,
            args=(store, int(row.request_id)),
        )


@st.fragment(run_every=REFRESH_SECONDS)
def progress(store: str) -> None:
    """Runs per status and part, and the latest runs with their errors and how they trained."""
    st.subheader("Run status")
    stamp = cached_queries.stamp(store) or ""
    status = cached_queries.run_status(store, stamp)
    if status.empty:
        st.info("No evaluation has run against this store yet.")
        return
    totals = status.groupby("status")["runs"].sum()
    columns = st.columns(4)
    for column, name in zip(columns, ("finished", "running", "failed", "cancelled"), strict=True):
        column.metric(name.capitalize(), int(totals.get(name, 0)))
    figure = px.bar(
        status,
        x="part",
        y="runs",
        color="status",
        color_discrete_map={"finished": "#4c9f70", "running": "#0b6e99", "failed": "#d62728", "cancelled": "#999999"},
    )
    st.plotly_chart(figure)
    recent = cached_queries.recent_runs(store, stamp)
    only_problems = st.toggle("Only failed and cancelled runs", key="runs_problems")
    if only_problems:
        recent = recent[recent["status"].isin(["failed", "cancelled"])]
    shown = training.runs_in_words(recent).drop(columns=["epoch_cap", "budget_minutes"])
    st.dataframe(shown, hide_index=True, column_config=RUN_COLUMNS)
    time_by_stage(store, stamp, recent)
    run_training(store, stamp, recent)


def time_by_stage(store: str, stamp: str, recent: pd.DataFrame) -> None:
    """The latest finished runs' wall time split by stage, and which stage took the most of it."""
    finished = cached_queries.with_candidates(recent[recent["status"] == "finished"].head(STAGE_RUNS), LOCAL_SOURCE)
    timed = cached_queries.run_stages(store, stamp, tuple(finished["run_id"]))
    if timed.empty:
        return
    st.subheader("Where the time went")
    names = {
        row.run_id: f"{row.part} · {row.candidate} · seed {row.seed} · {row.condition}" for row in finished.itertuples()
    }
    timed = timed.assign(run=timed["run_id"].map(names))
    st.plotly_chart(stage_chart(timed, STAGES))
    totals = timed.groupby("stage")["seconds"].sum()
    largest = str(totals.idxmax())
    st.caption(
        f"Over these {timed['run_id'].nunique()} runs, {STAGES[largest]} took the most time: "
        f"{100 * totals[largest] / totals.sum():.0f} % of {totals.sum():.0f} s. The frozen backbone's passes are "
        "counted apart from the stage that made them (with the feature cache: its reads and writes)."
    )


def run_training(store: str, stamp: str, recent: pd.DataFrame) -> None:
    """A finished run of the table, chosen by name: its loss curve and why its training stopped."""
    finished = recent[recent["status"] == "finished"]
    if finished.empty:
        return
    st.subheader("Training of a finished run")
    run = widgets.choose_run(
        cached_queries.with_candidates(finished, LOCAL_SOURCE), "Finished run", key="runs_training"
    )
    widgets.training_panel(run, cached_queries.training_losses(store, stamp, run["run_id"]))


if ctx is not None:
    submit_section(ctx)
    requests_section(ctx.store)
    progress(ctx.store)
