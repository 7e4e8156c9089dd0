"""Training time, inference time and throughput per model and backbone (study Table 4, Fig. 10).

Candidates with a run timed under load are left out of the charts and the table by default, each listed with its
reason (`engine.analysis.flags`), until the switch puts them back; the table of local runs shows every run's load.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import cached_queries, widgets
from engine.analysis.deployment import latency_per_run
from engine.analysis.flags import RunFlag, flag_reasons, flags_spoiling
from engine.analysis.recommendation import UNRECORDED_HARDWARE
from engine.analysis.results_table import RUNTIME_METRICS
from engine.analysis.selection import leave_out
from engine.analysis.throughput import candidate_notes, run_notes
from store.deployments import RUNTIME_NAMES
from store.metrics import metric as registered_metric

KEY = ("candidate", "source")


def without_flagged(table: pd.DataFrame, ctx: widgets.StoreContext, filters: widgets.Filters) -> pd.DataFrame:
    """The runtime table less candidates with a run whose times a flag spoils, unless switched back on; each one left
    out is listed with its reason."""
    runs = cached_queries.flagged_runs(ctx.store, ctx.stamp, (filters.part,))
    runs = runs[runs["condition"] == filters.condition]
    for flag in flags_spoiling("time"):
        reasons = flag_reasons(runs, KEY, several_parts=False, flag=flag)
        included = st.toggle(flag.switch, key=f"runtime_{flag.name}")
        if not included:
            table, _ = leave_out(table, reasons, KEY)
        flagged_list(flag, reasons, excluded=not included)
    return table


def flagged_list(flag: RunFlag, reasons: pd.DataFrame, excluded: bool) -> None:
    if reasons.empty:
        return
    heading = f"Left out as {flag.label}" if excluded else f"{flag.label.capitalize()}, yet included below"
    st.markdown(f"**{heading}**\n" + "\n".join(f"- {row.candidate}: {row.reason}" for row in reasons.itertuples()))


def throughput_section(table: pd.DataFrame, runs: pd.DataFrame) -> None:
    """Each candidate whose throughput is below what batch 1 delivers (1000 / latency), with the reason."""
    notes = candidate_notes(table, runs)
    if not notes.empty:  # candidates sharing a reason (the study's own figures, mostly) on one line
        grouped = notes.groupby("note", sort=False)["candidate"].agg(", ".join)
        st.markdown(
            "**Throughput below the batch-1 rate**\n"
            + "\n".join(f"- {candidates}: {note}" for note, candidates in grouped.items())
        )


CHART_TITLES = {
    "inference_ms": "Inference: time to score one image (batch 1)",
    "train_min": "Training: time to fit on the part's training images",
}


def machine_of_candidates(rows: pd.DataFrame) -> dict[str, str]:
    """Each candidate of `rows` (`part_results_by_hardware`) -> the machine its times were measured on; a candidate
    timed on several machines (seeds run on different computers) says so instead of naming one."""
    machines = rows.dropna(subset=["hardware"]).groupby("candidate")["hardware"].unique()
    return {candidate: names[0] if len(names) == 1 else "several machines" for candidate, names in machines.items()}


def time_bars(table: pd.DataFrame, metric: str, machines: dict[str, str], log_scale: bool) -> go.Figure:
    """One bar per candidate (mean ± std over seeds), coloured by the machine its times were measured on: a time
    means something only beside times from the same machine."""
    bars = table.dropna(subset=[f"{metric}_mean"]).sort_values(f"{metric}_mean")
    bars = bars.assign(machine=bars["candidate"].map(machines).fillna(UNRECORDED_HARDWARE))
    figure = px.bar(
        bars,
        x=f"{metric}_mean",
        y="candidate",
        color="machine",
        orientation="h",
        error_x=f"{metric}_std" if f"{metric}_std" in bars else None,
        log_x=log_scale,
        labels={f"{metric}_mean": widgets.METRIC_LABELS[metric], "candidate": "Model", "machine": "Timed on"},
        title=CHART_TITLES[metric],
    )
    return figure.update_layout(
        height=160 + 28 * len(bars),
        yaxis={"categoryorder": "array", "categoryarray": bars["candidate"].tolist()[::-1]},
        legend={"orientation": "h", "yanchor": "top", "y": -90 / (60 + 28 * len(bars))},  # below the axis title
    )


def deployed_section(runs: pd.DataFrame, deployed: pd.DataFrame, log_scale: bool) -> None:
    """Each run's eager latency beside its exported model's in ONNX Runtime and OpenVINO (`gluelab deploy`)."""
    st.subheader("Eager and deployed latency per run")
    table = latency_per_run(runs, deployed)
    latency = ["inference_ms", *(f"{runtime}_ms" for runtime in RUNTIME_NAMES)]
    if deployed.empty:
        st.caption(
            "No run has been deployed yet: `gluelab deploy RUN_ID --format onnx --out DIR` exports a run's model "
            "with anomalib, checks it scores as the eager model does and times it in ONNX Runtime and OpenVINO."
        )
    else:
        bars = table.melt(id_vars=["candidate", "seed"], value_vars=latency, var_name="runtime", value_name="ms")
        bars = bars.dropna(subset=["ms"]).assign(
            run=lambda frame: frame["candidate"] + " seed " + frame["seed"].astype(str),
            runtime=lambda frame: frame["runtime"].map(LATENCY_LABELS),
        )
        figure = px.bar(bars, x="ms", y="run", color="runtime", barmode="group", orientation="h", log_x=log_scale)
        figure.update_layout(height=160 + 30 * bars["run"].nunique(), xaxis_title="Batch-1 latency (ms/image)")
        st.plotly_chart(figure)
        st.caption(
            "Deployed: the run's model refitted from its config and seed, exported with anomalib (its resize and "
            "normalisation inside the graph), checked to give the run's scores, and timed like the eager model "
            "(median batch-1 latency after warm-up). Faster: the eager latency timed in the same session divided by "
            "the deployed one."
        )
    st.dataframe(
        table[["candidate", "seed", "run_id", *latency, *(f"{runtime}_speedup" for runtime in RUNTIME_NAMES)]],
        hide_index=True,
        column_config={
            **widgets.key_columns(table),
            "run_id": st.column_config.Column("Run id"),
            **{column: st.column_config.NumberColumn(LATENCY_LABELS[column], format="%.2f") for column in latency},
            **{
                f"{runtime}_speedup": st.column_config.NumberColumn(f"{name}: faster than eager", format="%.2fx")
                for runtime, name in RUNTIME_NAMES.items()
            },
        },
    )


LATENCY_LABELS = {"inference_ms": "Eager (ms/image)"} | {
    f"{runtime}_ms": f"{name} (ms/image)" for runtime, name in RUNTIME_NAMES.items()
}

st.title("Runtime")
ctx = widgets.store_context()
if ctx is not None:
    filters = widgets.sidebar_filters(ctx)
    chosen = widgets.filtered(cached_queries.part_results(ctx.store, ctx.stamp, filters.part), filters)
    chosen = chosen[chosen["metric"].isin(list(RUNTIME_METRICS))]
    if chosen.empty:
        widgets.empty_state(f"No runtime figures for {filters.part} ({filters.condition}) in the chosen source.", ctx)
    else:
        log_scale = st.toggle("Logarithmic time axis", value=True, key="runtime_log")
        table = without_flagged(widgets.wide_table(chosen, RUNTIME_METRICS), ctx, filters)
        machines = machine_of_candidates(cached_queries.part_results_by_hardware(ctx.store, ctx.stamp, filters.part))
        left, right = st.columns(2)
        for column, metric in ((left, "inference_ms"), (right, "train_min")):
            if f"{metric}_mean" in table:
                column.plotly_chart(time_bars(table, metric, machines, log_scale))
        widgets.readable_table(table).show()

        runs = cached_queries.runtime(ctx.store, ctx.stamp, filters.part)
        runs = runs[runs["condition"] == filters.condition]
        runs = runs.assign(throughput_note=run_notes(runs))
        throughput_section(table, runs)
        if not runs.empty and filters.source != cached_queries.PUBLISHED_SOURCE_LABEL:
            st.subheader("Local runs and the hardware they used")
            st.caption(
                "Inference is the median batch-1 latency after warm-up; throughput is timed at the batch size that "
                "scores the most images per second on the run's device (after one warm-up batch of that size), named "
                "in *Throughput batch*; 1 when no larger batch beats one image at a time. "
                "The study timed its runs on its own hardware, so compare local and published times as orders of magnitude. "
                "*Timed under load*: other work competed for the cores while the run was timed (blank: the run recorded "
                "no load); `gluelab evaluate --retime RUN_ID` times it again."
            )
            st.dataframe(
                runs[
                    [
                        "candidate",
                        "seed",
                        "train_seconds",
                        "inference_ms",
                        "throughput_fps",
                        "throughput_batch",
                        "throughput_note",
                        "timing_contended",
                        "timing_note",
                        "peak_memory_mb",
                        "processor",
                        "cpu_count",
                        "torch_threads",
                        "gpu",
                        "run_id",
                    ]
                ],
                hide_index=True,
                column_config={
                    **widgets.key_columns(runs),
                    "train_seconds": st.column_config.NumberColumn("Training (s)", format="%.1f"),
                    **{
                        name: st.column_config.NumberColumn(
                            widgets.METRIC_LABELS[name], format=f"%.{registered_metric(name).digits}f"
                        )
                        for name in ("inference_ms", "throughput_fps")
                    },
                    "throughput_batch": st.column_config.NumberColumn("Throughput batch"),
                    "throughput_note": st.column_config.TextColumn("Throughput below batch 1, because"),
                    "timing_contended": st.column_config.CheckboxColumn("Timed under load"),
                    "timing_note": st.column_config.TextColumn("Load while timed"),
                    "peak_memory_mb": st.column_config.NumberColumn("Peak memory (MB)", format="%.0f"),
                    "processor": st.column_config.Column("Processor"),
                    "cpu_count": st.column_config.NumberColumn("CPU cores"),
                    "torch_threads": st.column_config.NumberColumn("Torch threads"),
                    "gpu": st.column_config.Column("GPU"),
                },
            )
            deployed_section(runs, cached_queries.deployments(ctx.store, ctx.stamp, filters.part), log_scale)
