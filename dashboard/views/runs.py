"""Evaluation progress: runs per status, refreshed while a grid is writing, and the latest runs with their errors."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import data, widgets

REFRESH_SECONDS = 3

st.title("Runs")
st.caption(
    "Start evaluations with `gluelab evaluate --parts … --models … --store STORE`; this page follows the store "
    f"every {REFRESH_SECONDS} s while it is open."
)
ctx = widgets.store_context()


@st.fragment(run_every=REFRESH_SECONDS)
def progress(store: str) -> None:
    stamp = data.stamp(store) or ""
    status = data.run_status(store, stamp)
    if status.empty:
        st.info("No evaluation has run against this store yet.")
        return
    totals = status.groupby("status")["runs"].sum()
    columns = st.columns(4)
    for column, name in zip(columns, ("finished", "running", "failed", "cancelled")):
        column.metric(name.capitalize(), int(totals.get(name, 0)))
    figure = px.bar(
        status,
        x="part",
        y="runs",
        color="status",
        color_discrete_map={"finished": "#4c9f70", "running": "#0b6e99", "failed": "#d62728", "cancelled": "#999999"},
    )
    st.plotly_chart(figure)
    recent = data.recent_runs(store, stamp)
    only_problems = st.toggle("Only failed and cancelled runs", key="runs_problems")
    if only_problems:
        recent = recent[recent["status"].isin(["failed", "cancelled"])]
    st.dataframe(recent, hide_index=True)


if ctx is not None:
    progress(ctx.store)
