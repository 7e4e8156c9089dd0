"""Charts drawn alike on the dashboard and in the decision report (Plotly figures, plain functions).

`trade_off_chart` is Model selection's accuracy/time front of one machine; `ranked_front_table` lists its front by
the numbers on the chart; `line_stops_chart` is Line stops' false alarms and misses per candidate; `p_chart` and
`ewma_chart` are the Line monitor's control charts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.analysis.line_stops import Shift
from engine.analysis.line_watch import ewma, ewma_limits, p_chart_limits
from engine.analysis.selection import (
    Criterion,
    SelectionResult,
    error_bar,
    front_ranking,
    mean_column,
)
from engine.analysis.selection import chosen as chosen_candidate
from store.metrics import METRIC_LABELS

LABEL_OFFSET = 30  # pixels between a front point and its number


def trade_off_chart(result: SelectionResult, x: Criterion, y: Criterion, log_x: bool, prefer: Criterion) -> go.Figure:
    """Feasible candidates with error bars (std over seeds; with one seed, image AUROC's interval over the test images), the Pareto front as a line, and the knee or preferred point marked
    (one: `selection.chosen`, ties to the best on `prefer`).

    Front points carry their rank in `front_ranking` (listed with names beside the chart); every name is in
    the hover, so crowded candidates leave no overlapping labels.
    """
    feasible = result.feasible
    figure = go.Figure()

    def add(points: pd.DataFrame, **style: Any) -> None:
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
            error_x=error_bar(members, x.metric),
            error_y=error_bar(members, y.metric),
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
    pick = chosen_candidate(result, prefer)
    marked = feasible["candidate"] == (None if pick is None else pick["candidate"])
    for column, name, symbol in (("knee", "knee", "star"), ("preferred", "preferred by weights", "diamond-open")):
        add(
            feasible[feasible[column] & marked],
            mode="markers",
            name=name,
            marker={"symbol": symbol, "size": 20, "line": {"width": 2}},
            hovertemplate=hover,
        )
    figure.update_layout(
        annotations=rank_labels(result, x, y, log_x),
        xaxis={"title": METRIC_LABELS[x.metric], "type": "log" if log_x else "linear"},
        yaxis={"title": METRIC_LABELS[y.metric]},
        height=520,
        margin={"t": 40, "r": 30},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure


def rank_labels(result: SelectionResult, x: Criterion, y: Criterion, log_x: bool) -> list[dict[str, Any]]:
    """Numbered tags on the front points, alternately above and below; identical points share one tag."""
    ranked = front_ranking(result)
    points = ranked.groupby([mean_column(x.metric), mean_column(y.metric)], sort=False)["rank"]
    tags = points.agg(lambda ranks: ", ".join(map(str, ranks))).reset_index()
    return [
        {
            "x": np.log10(at_x) if log_x else at_x,  # Plotly places annotations on a log axis by exponent
            "y": at_y,
            "text": text,
            "ax": 0,
            "ay": LABEL_OFFSET if index % 2 else -LABEL_OFFSET,
            "showarrow": True,
            "arrowwidth": 1,
            "arrowcolor": "#888888",
            "bgcolor": "white",
            "bordercolor": "#888888",
            "font": {"size": 13, "color": "#222222"},
        }
        for index, (at_x, at_y, text) in enumerate(tags.itertuples(index=False))
    ]


def ranked_front_table(result: SelectionResult, x: Criterion, y: Criterion, prefer: Criterion) -> pd.DataFrame:
    """The front as listed beside the chart: rank, name, both figures, and in `chosen` the one candidate the page
    points to (`selection.chosen`: the knee, or the point preferred by weights; ties to the best on `prefer`)."""
    ranked = front_ranking(result)
    pick = chosen_candidate(result, prefer)
    mark = "knee" if result.weights is None else "preferred"
    marks = np.where(ranked["candidate"] == (None if pick is None else pick["candidate"]), mark, "")
    return pd.DataFrame(
        {
            "rank": ranked["rank"],
            "chosen": marks,
            "candidate": ranked["candidate"],
            short_label(x.metric): ranked[mean_column(x.metric)],
            short_label(y.metric): ranked[mean_column(y.metric)],
        }
    )


def short_label(metric: str) -> str:
    """'Inference' for 'Inference (ms/image)': table headers beside a chart have little room."""
    return METRIC_LABELS[metric].split(" (")[0]


def line_stops_chart(table: pd.DataFrame, labels: dict[str, str], shift: Shift) -> go.Figure:
    """False alarms and missed defects per candidate (`line_stops.line_figures`), grouped bars headed by `labels`."""
    figure = px.bar(
        table.melt(
            id_vars="candidate",
            value_vars=["false_alarms_per_shift", "misses_per_shift"],
            var_name="kind",
            value_name="parts",
        ),
        x="candidate",
        y="parts",
        color="kind",
        barmode="group",
        labels={"parts": f"parts {shift.per}", "candidate": "", "kind": ""},
    )
    figure.for_each_trace(lambda trace: trace.update(name=labels[trace.name]))
    return figure


def p_chart(windows: pd.DataFrame, expected: float | None, per: str) -> go.Figure:
    """The share of frames raising an alarm per window (`line_watch.alarm_windows`: `start`, `share`, `frames`), with
    the p-chart's centre and 3σ limits around the share the evaluation `expected` (`line_watch.p_chart_limits`, each
    window's limits for its own count of frames); `per` names the window, e.g. "50 frames" or "hour"."""
    by_hour = per == "hour"
    figure = go.Figure()
    figure.add_scatter(
        x=windows["start"],
        y=windows["share"],
        customdata=windows["frames"],
        mode="lines+markers",
        name="alarm share",
        hovertemplate=f"from {'%{x|%H:%M}' if by_hour else 'frame %{x}'}: %{{y:.1%}} of %{{customdata}} frames<extra></extra>",
    )
    if expected is not None:
        limits = [p_chart_limits(expected, int(count)) for count in windows["frames"]]
        for name, values, dash in (
            ("upper limit (3σ)", [limit.upper for limit in limits], "dash"),
            ("expected", [expected] * len(limits), "dot"),
            ("lower limit (3σ)", [limit.lower for limit in limits], "dash"),
        ):
            figure.add_scatter(
                x=windows["start"], y=values, mode="lines", name=name, line={"dash": dash, "shape": "hv"}
            )
    figure.update_layout(
        title=f"Alarms per {per} (p-chart)",
        xaxis={"title": "hour the frames were written" if by_hour else "frame"},
        yaxis={"title": "share of frames raising an alarm", "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def ewma_chart(values: pd.Series, reference: list[float], title: str, label: str) -> go.Figure:
    """Each frame's value and its EWMA against the EWMA's limits around the training frames' mean (and their range)."""
    centre, sigma = float(np.mean(reference)), float(np.std(reference, ddof=1)) if len(reference) > 1 else 0.0
    frames = np.arange(1, len(values) + 1)
    smoothed = ewma(values.to_numpy(float), centre)
    lower, upper = ewma_limits(centre, sigma, len(values))
    figure = go.Figure()
    figure.add_scatter(x=frames, y=values, mode="markers", name="frame", marker={"size": 4, "color": "#9aa5b1"})
    figure.add_scatter(x=frames, y=smoothed, mode="lines", name="EWMA (λ 0.2)")
    figure.add_scatter(
        x=frames, y=upper, mode="lines", name="EWMA limits (3σ)", line={"dash": "dash", "color": "#c0392b"}
    )
    figure.add_scatter(x=frames, y=lower, mode="lines", showlegend=False, line={"dash": "dash", "color": "#c0392b"})
    figure.add_hrect(y0=min(reference), y1=max(reference), fillcolor="#2e86c1", opacity=0.08, line_width=0,
                     annotation_text="training frames' range", annotation_position="top left")  # fmt: skip
    figure.update_layout(
        title=title, xaxis={"title": "frame"}, yaxis={"title": label}, legend={"orientation": "h", "y": -0.25}
    )
    return figure


def stage_chart(stages: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Where each run's time went: one horizontal bar per run (`run`, its name), stacked by `stage` in the order of
    `labels` (stage -> words, `store.stages.STAGES`), in seconds."""
    figure = px.bar(
        stages.assign(what=stages["stage"].map(labels)),
        x="seconds",
        y="run",
        color="what",
        orientation="h",
        category_orders={"what": [labels[name] for name in labels if name in set(stages["stage"])]},
        color_discrete_sequence=px.colors.qualitative.Dark24,  # a colour per stage: the default ten repeat
        custom_data=["what"],
    )
    figure.update_traces(hovertemplate="%{customdata[0]}: %{x:.2f} s<extra></extra>")
    figure.update_layout(
        title="Where each run's time went",
        xaxis={"title": "seconds, from the run's claim to its results stored"},
        yaxis={"title": None, "autorange": "reversed"},
        legend={"title": "stage", "orientation": "h", "yanchor": "top", "y": -0.12 - 1.6 / stages["run"].nunique()},
        margin={"b": 260},
        height=360 + 28 * stages["run"].nunique(),
    )
    return figure


def learning_curve_chart(table: pd.DataFrame, marks: dict[str, int | None]) -> go.Figure:
    """Image and pixel AUROC (mean ± std over seeds) against training images, log-scaled, one line per candidate
    (`learning_curves.curves`), each candidate's smallest size reaching 95 % of its full figure (`marks`) ringed."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Image AUROC", "Pixel AUROC"), shared_xaxes=True)
    colours = px.colors.qualitative.Plotly
    for index, (candidate, curve) in enumerate(table.groupby("candidate", sort=False)):
        colour = colours[index % len(colours)]
        for column, figure_name in enumerate(("image_auroc", "pixel_auroc"), start=1):
            figure.add_scatter(
                x=curve["n_train"],
                y=curve[f"{figure_name}_mean"],
                error_y={"array": curve[f"{figure_name}_std"].fillna(0)},
                mode="lines+markers",
                name=str(candidate),
                legendgroup=str(candidate),
                showlegend=column == 1,
                line={"color": colour},
                customdata=curve["seeds"],
                hovertemplate="%{x} training images: %{y:.3f} (%{customdata} seeds)<extra>"
                + str(candidate)
                + "</extra>",
                row=1,
                col=column,
            )
        size = marks.get(str(candidate))
        if size is not None:
            point = curve[curve["n_train"] == size].iloc[0]
            figure.add_scatter(
                x=[size],
                y=[point["image_auroc_mean"]],
                mode="markers",
                marker={"size": 16, "symbol": "circle-open", "color": colour, "line": {"width": 2}},
                name=f"{candidate}: 95 % of its image AUROC",
                legendgroup=str(candidate),
                showlegend=False,
                hovertemplate=f"{candidate} reaches 95 % of its image AUROC with {size} images<extra></extra>",
                row=1,
                col=1,
            )
    figure.update_xaxes(type="log", title="training images (log scale)")
    figure.update_yaxes(title="AUROC (mean ± std over seeds)", col=1)
    figure.update_layout(title="How many training images?", legend={"orientation": "h", "y": -0.25}, height=420)
    return figure
