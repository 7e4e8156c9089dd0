"""Choose a model from the trade-off between accuracy and inference time (study section 5.1, Figs. 13-14)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.selection import (
    Constraint,
    Criterion,
    SelectionResult,
    mean_column,
    select,
    std_column,
    worst_case_across_parts,
)

KEY = ("candidate", "source", "model")
TIME = Criterion("inference_ms", "min")


def trade_off_chart(result: SelectionResult, x: Criterion, y: Criterion, log_x: bool) -> go.Figure:
    """Feasible candidates with seed error bars, the Pareto front as a line, knee and preferred points marked."""
    feasible = result.feasible
    figure = go.Figure()

    def add(points: pd.DataFrame, **style) -> None:
        figure.add_scatter(
            x=points[mean_column(x.metric)], y=points[mean_column(y.metric)], text=points["candidate"], **style
        )

    hover = "%{text}<br>%{x:.4g}, %{y:.3f}<extra></extra>"
    for column, name, symbol, size in (
        ("on_front", "Pareto front", "circle", 12),
        ("near_front", "within one std of the front", "circle-open", 10),
    ):
        members = feasible[feasible[column]]
        add(
            members,
            mode="markers",
            name=name,
            marker={"symbol": symbol, "size": size},
            error_x={"array": members[std_column(x.metric)].fillna(0)},
            error_y={"array": members[std_column(y.metric)].fillna(0)},
            hovertemplate=hover,
        )
    rest = feasible[~feasible["on_front"] & ~feasible["near_front"]]
    add(rest, mode="markers", name="dominated", marker={"color": "#bbbbbb"}, hovertemplate=hover)
    add(
        result.front.sort_values(mean_column(x.metric)),
        mode="lines",
        name="front",
        line={"dash": "dot"},
        hoverinfo="skip",
    )
    for column, name, symbol in (("knee", "knee", "star"), ("preferred", "preferred by weights", "diamond-open")):
        add(
            feasible[feasible[column]],
            mode="markers+text",
            name=name,
            textposition="top center",
            marker={"symbol": symbol, "size": 20, "line": {"width": 2}},
            hoverinfo="skip",
        )
    figure.update_layout(
        xaxis={"title": widgets.METRIC_LABELS[x.metric], "type": "log" if log_x else "linear"},
        yaxis={"title": widgets.METRIC_LABELS[y.metric]},
        height=520,
        margin={"t": 40},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure


def false_alarm_sentence(ctx: widgets.StoreContext, part: str, condition: str, candidate: str) -> str:
    """', 4 false alarms per 1000 good parts vs 61 for the legacy system' from local runs, or ''."""
    runs = cached_queries.operating_points(ctx.store, ctx.stamp, (part,))
    runs = runs[runs["condition"] == condition]
    rates = (1000 * runs["false_alarms_f1"] / runs["n_good"]).groupby(runs["candidate"]).mean()
    if candidate not in rates:
        return ""
    sentence = f", {rates[candidate]:.0f} false alarms per 1000 good parts"
    legacy = runs.loc[runs["model"] == "legacy", "candidate"]
    if not legacy.empty and candidate != legacy.iloc[0]:
        sentence += f" vs {rates[legacy.iloc[0]]:.0f} for the legacy system"
    return sentence


def figure_text(row: pd.Series, criterion: Criterion) -> str:
    mean, std = row[mean_column(criterion.metric)], row.get(std_column(criterion.metric))
    spread = f" ± {std:.2f}" if pd.notna(std) else ""
    if criterion.metric == "inference_ms":
        return f"{mean:.0f}{spread} ms"
    return f"{widgets.METRIC_LABELS[criterion.metric].split(' (')[0]} {mean:.2f}{spread}"


st.title("Model selection")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx)
    all_parts = sorted(cached_queries.parts(ctx.store, ctx.stamp), key=widgets.part_order)
    parts = st.multiselect(
        "Parts to choose for (several parts: each candidate counts with its worst figure across them)",
        all_parts,
        default=[filters.part] if filters.part in all_parts else all_parts[:1],
        key="selection_parts",
    )
    left, middle, right = st.columns(3)
    accuracy = Criterion(
        left.selectbox(
            "Accuracy criterion",
            widgets.ACCURACY_METRICS,
            format_func=widgets.METRIC_LABELS.get,
            key="selection_metric",
        ),
        "max",
    )
    log_x = middle.toggle("Logarithmic time axis", value=True, key="selection_log")
    use_weights = right.toggle("Weigh the criteria instead of the knee", key="selection_use_weights")
    rows = (
        cached_queries.selection_rows(ctx.store, ctx.stamp, parts, filters.condition, filters.source) if parts else None
    )
    if rows is None or rows.empty:
        widgets.empty_state("No figures for the chosen parts, condition and source.", ctx)
    else:
        with st.expander("Acceptability limits and weights", expanded=True):
            limit_left, limit_right, weight_column = st.columns(3)
            floor = limit_left.slider(
                f"Minimum {widgets.METRIC_LABELS[accuracy.metric]}", 0.0, 1.0, 0.0, 0.01, key="selection_floor"
            )
            slowest = (
                float(np.ceil(rows.loc[rows["metric"] == "inference_ms", "mean"].max()))
                if (rows["metric"] == "inference_ms").any()
                else 1000.0
            )
            ceiling = limit_right.slider("Maximum inference (ms/image)", 1.0, slowest, slowest, key="selection_ceiling")
            accuracy_weight = weight_column.slider(
                "Weight of accuracy (the rest goes to speed)",
                0.0,
                1.0,
                0.5,
                0.05,
                key="selection_weight",
                disabled=not use_weights,
            )
        criteria = (TIME, accuracy)
        constraints = [Constraint(accuracy.metric, floor=floor)] if floor > 0 else []
        constraints += [Constraint("inference_ms", ceiling=ceiling)] if ceiling < slowest else []
        candidates, missing_parts = worst_case_across_parts(rows, parts, criteria, KEY)
        result = select(
            candidates
            if not candidates.empty
            else pd.DataFrame(columns=[*KEY, mean_column(TIME.metric), mean_column(accuracy.metric)]),
            criteria,
            constraints,
            {TIME.metric: 1 - accuracy_weight, accuracy.metric: accuracy_weight} if use_weights else None,
        )
        excluded = pd.concat([missing_parts, result.excluded[[*KEY, "reason"]]], ignore_index=True)
        if result.feasible.empty:
            st.warning("No candidate meets every limit. Loosen the limits or choose other parts.")
        else:
            chosen = result.feasible[result.feasible["preferred" if use_weights else "knee"]]
            pick = chosen.sort_values(mean_column(accuracy.metric), ascending=False).iloc[0]
            where = ", ".join(parts)
            alarms = (
                false_alarm_sentence(ctx, parts[0], filters.condition, pick["candidate"]) if len(parts) == 1 else ""
            )
            why = (
                f"closest to your weights ({accuracy_weight:.0%} accuracy, {1 - accuracy_weight:.0%} speed) among the front, by pymoo pseudo-weights"
                if use_weights
                else f"the knee of the accuracy/time front: {result.knee_method}"
            )
            limits = "; ".join(
                c.metric + (f" ≥ {c.floor:g}" if c.floor is not None else f" ≤ {c.ceiling:g}") for c in constraints
            )
            with st.container(border=True):
                st.markdown(
                    f"#### {where}: {pick['candidate']}\n"
                    f"{figure_text(pick, accuracy)}, {figure_text(pick, TIME)}{alarms}.\n\n"
                    f"Why: {why}. {len(result.front)} of {len(result.feasible)} acceptable candidates are on the front"
                    + (f" after the limits {limits}" if limits else "")
                    + (" (worst figure across the chosen parts)" if len(parts) > 1 else "")
                    + "."
                )
                others = result.feasible[result.feasible["near_front"]]["candidate"].tolist()
                if others:
                    st.caption("Within one standard deviation of the front, so not clearly worse: " + ", ".join(others))
            st.plotly_chart(trade_off_chart(result, TIME, accuracy, log_x), key="selection_chart")
            st.caption(
                f"Knee method: {result.knee_method}. Error bars: ± one standard deviation over seeds (published single values have none)."
            )
            shown = [
                c
                for c in [
                    "candidate",
                    mean_column(TIME.metric),
                    mean_column(accuracy.metric),
                    std_column(accuracy.metric),
                    "on_front",
                    "near_front",
                    "knee",
                    "preferred",
                ]
                if c in result.feasible
            ]
            st.dataframe(result.feasible[shown].sort_values(mean_column(TIME.metric)), hide_index=True)
        if not excluded.empty:
            st.markdown("**Left out**")
            st.dataframe(excluded, hide_index=True)

        st.subheader("Image against pixel accuracy")
        pixel_criteria = (Criterion("image_auroc", "max"), Criterion("pixel_auroc", "max"))
        pixel_candidates, pixel_missing = worst_case_across_parts(rows, parts, pixel_criteria, KEY)
        if pixel_candidates.empty:
            st.info("No candidate has both image and pixel AUROC for the chosen parts.")
        else:
            pixel_result = select(pixel_candidates, pixel_criteria)
            st.plotly_chart(trade_off_chart(pixel_result, *pixel_criteria, log_x=False), key="pixel_chart")
            no_pixel = pd.concat([pixel_missing, pixel_result.excluded[[*KEY, "reason"]]], ignore_index=True)
            if not no_pixel.empty:
                st.caption(
                    "Without pixel figures (image-level models, or no masks): " + ", ".join(no_pixel["candidate"])
                )
