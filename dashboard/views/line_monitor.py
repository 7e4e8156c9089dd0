"""Is the chosen model still seeing the line it was chosen on? One deployment's frames, as `gluelab inspect` scored
them: the verdict in words, the alarms as a p-chart around the rate the evaluation predicted, each frame's grey level,
clipped share and sharpness as EWMA charts against the training frames, the drift test, and the latest alarms.

The statistics live in `engine.analysis.line_watch`; everyone may read this page, and only engineers may queue the
re-evaluation it suggests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import cached_queries, roles, widgets
from engine.analysis.charts import ewma_chart, p_chart
from engine.analysis.labels import model_name
from engine.analysis.line_watch import (
    DRIFT_P_LIMIT,
    DRIFT_WINDOW,
    LineComparison,
    Verdict,
    alarm_windows,
    drift_test,
    expected_alarm_rate,
    verdict,
)
from engine.analysis.pictures import heat_overlay
from engine.jobs import GridRequest, LineFrames, load_limits, submit
from store import files
from store.runs import artifacts_dir

GALLERY = 8  # latest alarms shown
START = (
    "No deployment has scored the line yet. Deploy a finished run (`gluelab deploy RUN_ID --format onnx --out DIR`), "
    "then score the line's frames with it: `gluelab inspect DIR --images FOLDER --watch --store {store}`."
)


def choose_deployment(watched: pd.DataFrame) -> pd.Series:
    names = {
        index: f"{row.part} · {row.candidate} · seed {row.seed} · {row.format} in {row.runtime} · {row.frames} frames"
        for index, row in watched.iterrows()
    }
    chosen = st.selectbox("Deployment", list(names), format_func=names.__getitem__, key="monitor_deployment")
    return watched.loc[chosen]


def expected_alarms(line: dict) -> float | None:
    """The alarm share the evaluation predicts at the deployment's threshold on the line (None: no operating point)."""
    if not line:
        return None
    return expected_alarm_rate(line["false_positive_rate"], line["false_negative_rate"], line["defect_rate"])


def verdict_banner(judged: Verdict, deployed: dict, expected: float | None) -> None:
    (st.success if judged.in_control else st.error)(judged.text)
    if expected is None:
        st.caption(
            "This deployment has no operating point stored (it was deployed before they were): frames are judged "
            "at the run's F1-optimal threshold and the alarms have no expected rate. Deploy it again to get one."
        )
    else:
        line = deployed["line"]
        st.caption(
            f"An alarm at score ≥ {deployed['line_threshold']:.4g}: least expected cost at "
            f"{100 * line['defect_rate']:g} % defective and a miss costing {line['miss_cost']:g} line stops. The "
            f"evaluation expects alarms on {100 * expected:.1f} % of frames."
        )


def reevaluate(ctx: widgets.StoreContext, watched: pd.Series, frames: pd.DataFrame, judged: Verdict) -> None:
    """Engineers queue the model's evaluation in the augmented condition (lighting, blur, noise) on its part, its run
    then scoring the frames collected so far."""
    if judged.in_control:
        return
    roles.sign_in_box(ctx.store)
    if roles.engineer() is None:
        return
    st.caption(
        f"Trains {model_name(str(watched['model']))} again with the study's lighting, blur and noise augmentations, evaluates it on "
        f"{watched['part']}'s test images and scores the {int(frames['rejected'].isna().sum())} frames collected so "
        "far with it: its alarms are then shown beside the deployed model's."
    )
    if st.button("Re-evaluate with the augmented condition", key="monitor_reevaluate"):
        request = GridRequest(
            parts=(str(watched["part"]),),
            models=(str(watched["model"]),),
            backbones=(str(watched["backbone"]),),
            seeds=1,
            conditions=("augmented",),
            preset=str(watched["preset"]),
            line=LineFrames(
                str(watched["run_id"]), str(watched["format"]), str(watched["runtime"]), int(frames["frame_id"].max())
            ),
        )
        name = roles.engineer()
        if name is None:  # the role is checked again in the handler
            roles.refuse(ctx.store, roles.client_address(), "re-evaluation from the Line monitor")
            st.error("Refused: only engineers may queue evaluations. Logged.")
            return
        try:
            done = submit(
                request, submitted_by=name, client=roles.client_address(), store=ctx.store, limits=load_limits()
            )
        except ValueError as error:
            st.error(f"Not queued: {error}")
            return
        st.success(f"Queued as request {done.request_id}: see the Runs page.")


def alarms(frames: pd.DataFrame, expected: float | None) -> None:
    st.subheader("Alarms")
    left, right = st.columns([1, 2])
    per = left.radio("One point per", ("frames", "hour"), horizontal=True, key="monitor_per")
    if per == "hour":
        st.plotly_chart(p_chart(alarm_windows(frames), expected, "hour"))
    else:
        window = int(right.number_input("Frames per point", min_value=10, value=50, step=10, key="monitor_window"))
        st.plotly_chart(p_chart(alarm_windows(frames, window), expected, f"{window} frames"))


def frame_statistics(frames: pd.DataFrame, reference: dict[str, list[float]]) -> None:
    st.subheader("What the camera sees")
    charts = (
        ("mean_brightness", "Mean grey level", "grey level (0-255)"),
        ("clipped_share", "Clipped pixels", "share of pixels at full scale"),
        ("sharpness", "Sharpness", "Laplacian variance / mean²"),
    )
    for column, (statistic, title, label) in zip(st.columns(len(charts)), charts, strict=True):
        column.plotly_chart(ewma_chart(frames[statistic], reference[statistic], title, label))


def drift(frames: pd.DataFrame, reference: dict[str, list[float]]) -> None:
    st.subheader("Drift test")
    if len(frames) < DRIFT_WINDOW:
        st.info(f"The drift test needs {DRIFT_WINDOW} frames; {len(frames)} are scored.")
        return
    rows = []
    for column, name in (("mean_brightness", "mean grey level"), ("sharpness", "sharpness"), ("score", "score")):
        test = drift_test(frames[column].iloc[-DRIFT_WINDOW:].tolist(), reference[column])
        rows.append(
            {
                "statistic": name,
                "last frames": round(test.recent_mean, 1),
                "training frames": round(test.reference_mean, 1),
                "Kolmogorov–Smirnov p": f"{test.p_value:.2g}",
                "drifted": "yes" if test.drifted else "no",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        f"The last {DRIFT_WINDOW} frames against the training frames (scores: against the run's scores of its "
        f"acceptable test images); drifted when p < {DRIFT_P_LIMIT:g} (strict, because the test runs again at every "
        "frame)."
    )


def on_the_line_again(comparisons: list[LineComparison]) -> None:
    if not comparisons:
        return
    st.subheader("Re-evaluated on these frames")
    for compared in comparisons:
        better = compared.alarms < compared.deployed_alarms
        (st.success if better else st.warning)(compared.text + ".")
    st.caption(
        "Each run's alarms are counted at its own operating point, chosen as the deployment's was (least expected cost "
        "on the same line, or F1-optimal where the deployment has none). Frames carry no labels: fewer alarms on a "
        "drifted line means fewer false alarms only while the line makes few defective parts."
    )


def latest_alarms(ctx: widgets.StoreContext, frames: pd.DataFrame) -> None:
    st.subheader("Latest alarms")
    raised = frames[frames["alarm"].fillna(False).astype(bool)].iloc[::-1].head(GALLERY)
    if raised.empty:
        st.info("No frame has raised an alarm.")
        return
    columns = st.columns(4)
    for index, (_, frame) in enumerate(raised.iterrows()):
        try:
            image = files.read_gray(Path(frame["file"]))
            heatmap = (
                files.read_artifact(artifacts_dir(ctx.store), frame["heatmap_path"])
                if isinstance(frame["heatmap_path"], str)
                else None
            )
        except files.OutsideFolder as refused:
            st.warning(f"Not shown: {refused}.")
            continue
        picture = image if heatmap is None or image is None else heat_overlay(image, heatmap)
        caption = f"{Path(frame['file']).name} · score {frame['score']:.4g} · grey {frame['mean_brightness']:.0f}"
        if picture is None:
            columns[index % 4].caption(f"{caption}: no longer on disk")
        else:
            columns[index % 4].image(picture, caption=caption, width="stretch")


st.title("Line monitor")
ctx = widgets.store_context()
if ctx is not None:
    watched = cached_queries.watched_deployments(ctx.store, ctx.stamp)
    if watched.empty:
        widgets.empty_state(START.format(store=ctx.store), ctx)
    else:
        chosen = choose_deployment(watched)
        key = (str(chosen["run_id"]), str(chosen["format"]), str(chosen["runtime"]))
        frames = cached_queries.line_frames(ctx.store, ctx.stamp, *key)
        deployed = cached_queries.deployment(ctx.store, ctx.stamp, *key)
        reference = cached_queries.training_reference(ctx.store, ctx.stamp, str(chosen["part"])) | {
            "score": cached_queries.acceptable_scores(ctx.store, ctx.stamp, key[0])
        }
        expected = expected_alarms(deployed["line"])
        judged = verdict(frames, reference, expected)
        verdict_banner(judged, deployed, expected)
        reevaluate(ctx, chosen, frames, judged)
        on_the_line_again(cached_queries.line_comparisons(ctx.store, ctx.stamp, *key))
        scored = frames[frames["rejected"].isna()].reset_index(drop=True)
        rejected = frames[frames["rejected"].notna()]
        if not rejected.empty:
            st.warning(
                f"{len(rejected)} frames rejected: "
                + "; ".join(f"{count} {reason}" for reason, count in rejected["rejected"].value_counts().items())
            )
        alarms(scored, expected)
        frame_statistics(scored, reference)
        drift(scored, reference)
        latest_alarms(ctx, scored)
