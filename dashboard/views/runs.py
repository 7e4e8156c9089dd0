"""Evaluation progress: runs per status, refreshed while a grid is writing, the latest runs with their errors and
how they trained, and a finished run's loss curve."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from dashboard.background import start_evaluation
from engine.analysis import training
from engine.analysis.labels import model_choices
from engine.analysis.results_table import LOCAL_SOURCE
from store.runs import CONDITIONS, PRESETS

REFRESH_SECONDS = 3
LOG_LINES = 15
RUN_COLUMNS = {
    "epochs": st.column_config.NumberColumn("Epochs", format="%d"),
    "stop_reason": st.column_config.TextColumn("Stop reason"),
    "under_trained": st.column_config.CheckboxColumn("Under-trained"),
    "timing_contended": st.column_config.CheckboxColumn("Timed under load"),
}

st.title("Runs")
st.caption(f"Evaluations writing to this store, followed every {REFRESH_SECONDS} s while the page is open.")
ctx = widgets.store_context()


def start_form(ctx: widgets.StoreContext) -> None:
    """Pick parts, models, seeds and conditions, then run `gluelab evaluate` in the background."""
    parts = cached_queries.local_parts(ctx.store, ctx.stamp)
    with st.expander("Start an evaluation", expanded=False):
        if not parts:
            st.info(
                "Register images first: `gluelab generate --parts part1 --store STORE` or `gluelab import`.".replace(
                    "STORE", ctx.store
                )
            )
            return
        with st.form("start_evaluation"):
            chosen_parts = st.multiselect("Parts", parts, default=parts[:1], key="start_parts")
            names = model_choices()
            models = st.multiselect(
                "Models",
                list(names),
                default=["legacy", "padim"],
                format_func=names.__getitem__,
                key="start_models",
            )
            left, middle, right = st.columns(3)
            seeds = left.number_input("Seeds", min_value=1, max_value=10, value=1, key="start_seeds")
            conditions = middle.multiselect(
                "Conditions", list(CONDITIONS), default=[CONDITIONS[0]], key="start_conditions"
            )
            preset = right.radio("Preset", list(PRESETS), horizontal=True, key="start_preset")
            submitted = st.form_submit_button("Start", key="start_submit")
        if submitted:
            if not (chosen_parts and models and conditions):
                st.warning("Choose at least one part, one model and one condition.")
                return
            job = start_evaluation(ctx.store, chosen_parts, models, int(seeds), conditions, preset)
            st.session_state["started_jobs"] = [*st.session_state.get("started_jobs", []), job]
            st.success(f"Started `{' '.join(job.command)}` (process {job.pid}).")
            if job.waiting_for:
                running = "; ".join(map(str, job.waiting_for))
                st.info(
                    f"Another gluelab job is running on this machine ({running}). This evaluation waits for it and "
                    "starts when it ends: one job runs at a time, so no two share the cores and spoil each other's times."
                )


def show_logs() -> None:
    """The tail of each evaluation started from this session."""
    for job in st.session_state.get("started_jobs", []):
        text = job.log.read_text(errors="replace").replace("\r", "\n") if job.log.exists() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        st.caption(f"`{' '.join(job.command)}`, log {job.log}")
        st.code("\n".join(lines[-LOG_LINES:]) or "(starting…)", language=None)


@st.fragment(run_every=REFRESH_SECONDS)
def progress(store: str) -> None:
    stamp = cached_queries.stamp(store) or ""
    show_logs()
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
    run_training(store, stamp, recent)


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
    start_form(ctx)
    progress(ctx.store)
