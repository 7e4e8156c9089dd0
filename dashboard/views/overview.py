"""Table-5-style leaderboard per part and condition: local runs and the study's figures side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.adequacy import error_bars, separation_note
from engine.analysis.results_table import LOCAL_SOURCE, METRIC_ORDER


def separation(ctx: widgets.StoreContext, part: str, bars: pd.DataFrame, metric: str) -> None:
    """Whether the part's test split tells its two best local candidates apart on image AUROC."""
    local = bars[(bars["source"] == LOCAL_SOURCE) & bars["plus"].notna()]
    if metric != "image_auroc" or len(local) < 2:
        return
    images = cached_queries.part_images(ctx.store, ctx.stamp, part)
    defective = int(((images["split"] == "test") & (images["label"] == "anomalous")).sum())
    figures = {
        row.candidate: (row.mean, row.mean - row.minus, row.mean + row.plus) for row in local.head(2).itertuples()
    }
    first, second = list(figures)
    note = separation_note(first, second, figures, defective) if defective else None
    if note:
        st.warning(note[0].upper() + note[1:] + ".", icon=":material/straighten:")


st.title("Overview")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx)
    results = cached_queries.part_results(ctx.store, ctx.stamp, filters.part)
    status = cached_queries.run_status(ctx.store, ctx.stamp)
    counts = status.groupby("status")["runs"].sum()
    columns = st.columns(4)
    columns[0].metric("Finished runs", int(counts.get("finished", 0)))
    columns[1].metric("Running", int(counts.get("running", 0)))
    columns[2].metric("Failed or cancelled", int(counts.get("failed", 0) + counts.get("cancelled", 0)))
    columns[3].metric("Parts with images", len(cached_queries.local_parts(ctx.store, ctx.stamp)))
    st.caption(f"Store last written {ctx.stamp or 'never'} (UTC).")

    chosen = widgets.filtered(results, filters)
    if not cached_queries.parts(ctx.store, ctx.stamp):
        widgets.empty_state("The store holds no results yet.", ctx)
    elif chosen.empty:
        st.info(
            f"No results for {filters.part} ({filters.condition}) in the chosen source. Try another part, condition or source."
        )
    else:
        st.subheader(f"{filters.part} · {filters.condition}")
        table = widgets.wide_table(chosen, METRIC_ORDER).sort_values(["source", "candidate"])
        widgets.readable_table(table).show()
        st.download_button(
            "Download CSV",
            table.to_csv(index=False),
            file_name=f"gluelab_{filters.part}_{filters.condition}.csv",
            mime="text/csv",
        )
        departures = cached_queries.deviations(ctx.store, ctx.stamp, filters.part)
        if not departures.empty and filters.source != cached_queries.PUBLISHED_SOURCE_LABEL:
            with st.expander("How the local runs depart from the study's setup"):
                for row in departures.itertuples():
                    items = list(row.deviations) if isinstance(row.deviations, (list, np.ndarray)) else []
                    st.markdown(
                        f"**{row.candidate}**\n" + ("".join(f"\n- {item}" for item in items) or "\n\nnone recorded")
                    )
        offered: list[str] = [m for m in METRIC_ORDER if m in set(chosen["metric"])]
        metric = str(
            st.selectbox("Compare on", offered, format_func=widgets.METRIC_LABELS.__getitem__, key="overview_metric")
        )
        bars = error_bars(chosen, metric).sort_values("mean", ascending=False)
        figure = px.bar(
            bars,
            x="candidate",
            y="mean",
            error_y="plus",
            error_y_minus="minus",
            color="source",
            hover_data={"bar": True, "plus": False, "minus": False},
            labels={"mean": widgets.METRIC_LABELS[metric], "candidate": "", "bar": "error bar"},
        )
        st.plotly_chart(figure)
        kinds = sorted({kind for kind in bars["bar"] if kind})
        if kinds:
            st.caption(f"Error bars: {'; '.join(kinds)}.")
        separation(ctx, filters.part, bars, metric)
