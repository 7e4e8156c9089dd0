"""Is the line still the line its model was chosen on? The statistics a watch of the line's frames rests on.

**Alarms, as an SPC p-chart.** At the deployed threshold the evaluation predicts a share of frames raising an
alarm, from its test-set rates and the line's defect rate p:

    p0 = (1 − p)·FPR + p·(1 − FNR)

A window of n frames with x alarms is in control while x/n lies within p0 ± 3·sqrt(p0·(1 − p0)/n) (Shewhart's
3σ limits; the lower one clipped at 0).

**A frame statistic, as an EWMA chart** (mean grey level, clipped-pixel share): z_i = λ·x_i + (1 − λ)·z_{i−1},
z_0 = μ0, against μ0 ± L·σ0·sqrt(λ/(2 − λ)·(1 − (1 − λ)^{2i})), with μ0 and σ0 those of the training frames and
λ = 0.2, L = 3 (Montgomery, *Introduction to Statistical Quality Control*, section 9.2).

**Drift.** The last `DRIFT_WINDOW` frames' values (mean grey level, sharpness, score) against the training frames', by the two-sample
Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`): drifted when its p-value is below `DRIFT_P_LIMIT`. The limit is
strict because the test runs again at every frame: a line's frames spread a little wider than the training frames
(its exposure swings), and a watch that cries wolf is switched off.

**Re-evaluation on the line.** A run that scored the line's frames again (`store.line.line_rescores`: the deployed
model evaluated in the augmented condition, requested from the Line monitor) raises an alarm on a frame at its own
operating point, chosen as the deployment's was: its least-cost threshold on the deployment's line (defect rate, miss
cost, escape limit) over its own test scores, or its F1-optimal threshold where the deployment has no line. Its alarm
share on those frames is set beside the deployed model's on the same frames, with both runs' image AUROC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from engine.analysis.labels import model_name
from engine.analysis.line_stops import Line, least_cost_point
from engine.frame_statistics import clipped_share, sharpness
from store import files, queries
from store.deployments import run_thresholds
from store.line import image_aurocs
from store.runs import run_image_scores

EWMA_LAMBDA = 0.2
EWMA_L = 3.0
DRIFT_WINDOW = 30
DRIFT_P_LIMIT = 1e-6


def expected_alarm_rate(false_positive_rate: float, false_negative_rate: float, defect_rate: float) -> float:
    """p0 = (1 − p)·FPR + p·(1 − FNR): the share of frames the evaluation predicts will raise an alarm."""
    return (1 - defect_rate) * false_positive_rate + defect_rate * (1 - false_negative_rate)


@dataclass(frozen=True)
class PChartLimits:
    centre: float
    lower: float
    upper: float


def p_chart_limits(expected: float, frames: int) -> PChartLimits:
    """3σ limits of the alarm share in a window of `frames` frames around the expected share."""
    if frames < 1 or not 0 <= expected <= 1:
        raise ValueError(f"a p-chart needs at least one frame and a share between 0 and 1, got {frames}, {expected}")
    sigma = np.sqrt(expected * (1 - expected) / frames)
    return PChartLimits(expected, max(0.0, expected - 3 * sigma), min(1.0, expected + 3 * sigma))


def ewma(values: Sequence[float], start: float, weight: float = EWMA_LAMBDA) -> np.ndarray:
    """z_i = λ·x_i + (1 − λ)·z_{i−1} with z_0 = `start`, one per value."""
    smoothed, level = np.empty(len(values)), start
    for index, value in enumerate(values):
        level = weight * value + (1 - weight) * level
        smoothed[index] = level
    return smoothed


def ewma_limits(
    centre: float, sigma: float, count: int, weight: float = EWMA_LAMBDA, width: float = EWMA_L
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper EWMA limits for the first `count` values: μ0 ± L·σ0·sqrt(λ/(2 − λ)·(1 − (1 − λ)^{2i}))."""
    steps = np.arange(1, count + 1)
    spread = width * sigma * np.sqrt(weight / (2 - weight) * (1 - (1 - weight) ** (2 * steps)))
    return centre - spread, centre + spread


def alarm_windows(frames: pd.DataFrame, window: int | None = None) -> pd.DataFrame:
    """The p-chart's points from scored frames (`alarm`, `written_at`, in scoring order): per `window` frames, or per
    hour the frames were written when `window` is None. Columns `start` (first frame's number, or the hour), `share`
    of frames raising an alarm and `frames` counted."""
    alarms = frames["alarm"].fillna(False).astype(bool).to_numpy()
    if window is None:
        hours = pd.to_datetime(frames["written_at"]).dt.floor("h").to_numpy()
        grouped = pd.DataFrame({"start": hours, "alarm": alarms}).dropna().groupby("start", sort=True)["alarm"]
    else:
        if window < 1:
            raise ValueError(f"a p-chart window needs at least one frame, got {window}")
        numbers = np.arange(len(alarms))
        grouped = pd.DataFrame({"start": numbers - numbers % window + 1, "alarm": alarms}).groupby("start")["alarm"]
    return grouped.agg(share="mean", frames="size").reset_index()


@dataclass(frozen=True)
class DriftTest:
    p_value: float
    statistic: float
    drifted: bool
    recent_mean: float
    reference_mean: float


def drift_test(recent: Sequence[float], reference: Sequence[float], limit: float = DRIFT_P_LIMIT) -> DriftTest:
    """Kolmogorov–Smirnov test of `recent` values against the `reference` (training) values."""
    if len(recent) == 0 or len(reference) == 0:
        raise ValueError("a drift test needs recent and reference values")
    result = ks_2samp(recent, reference)
    p_value = float(result.pvalue)
    return DriftTest(
        p_value, float(result.statistic), p_value < limit, float(np.mean(recent)), float(np.mean(reference))
    )


def first_drift(
    values: Sequence[float], reference: Sequence[float], window: int = DRIFT_WINDOW, limit: float = DRIFT_P_LIMIT
) -> int | None:
    """The index of the first frame whose window (it and the `window` − 1 before it) tests drifted, or None."""
    for end in range(window, len(values) + 1):
        if drift_test(values[end - window : end], reference, limit).drifted:
            return end - 1
    return None


ALARM_WINDOW = 100  # frames the p-chart's latest point counts


def training_reference(store: Path | str, part: str) -> dict[str, list[float]]:
    """Mean grey level, clipped-pixel share and sharpness of `part`'s training images: what the line looked like when the model was
    fitted. Images no longer on disk are skipped."""
    images = queries.part_images_summary(store, part)
    root = queries.part_root(store, part)
    reference: dict[str, list[float]] = {"mean_brightness": [], "clipped_share": [], "sharpness": []}
    for relative in images.loc[images["split"] == "train", "image_path"]:
        gray = files.read_part_image(root, relative) if root else None
        if gray is not None:
            reference["mean_brightness"].append(float(gray.mean()))
            reference["clipped_share"].append(clipped_share(gray))
            reference["sharpness"].append(sharpness(gray))
    if not reference["mean_brightness"]:
        raise ValueError(f"none of {part}'s training images is on disk: the line cannot be compared with them")
    return reference


@dataclass(frozen=True)
class Verdict:
    in_control: bool
    text: str  # in words, with what to do


def verdict(frames: pd.DataFrame, reference: Mapping[str, Sequence[float]], expected_alarms: float | None) -> Verdict:
    """Whether the line is still the one the model was chosen on, from the frames a deployment scored (in order:
    `mean_brightness`, `sharpness`, `score`, `alarm`, `written_at`, `file`, `rejected`), the training frames'
    `reference` values (and, under `score`, the run's scores of the acceptable test images), and the alarm share the
    evaluation expects (`expected_alarm_rate`; None: unknown)."""
    scored = frames[frames["rejected"].isna()].reset_index(drop=True)
    if len(scored) < DRIFT_WINDOW:
        return Verdict(True, f"too few frames to judge yet ({len(scored)} scored; the drift test needs {DRIFT_WINDOW})")
    problems = []
    brightness = first_drift(scored["mean_brightness"].tolist(), reference["mean_brightness"])
    if brightness is not None:
        recent = scored["mean_brightness"].iloc[-DRIFT_WINDOW:].mean()
        if recent > max(reference["mean_brightness"]):
            how = "brighter than any training frame"
        elif recent < min(reference["mean_brightness"]):
            how = "darker than any training frame"
        else:
            how = (
                "brighter than the training frames"
                if recent > np.mean(reference["mean_brightness"])
                else "darker than the training frames"
            )
        problems.append(
            f"frames are {how} since {_since(scored, 'mean_brightness', reference, brightness)}: expect false alarms "
            "like part16's; re-evaluate with the augmented condition"
        )
    focus = first_drift(scored["sharpness"].tolist(), reference["sharpness"])
    if focus is not None:
        blurred = scored["sharpness"].iloc[-DRIFT_WINDOW:].mean() < np.mean(reference["sharpness"])
        problems.append(
            f"frames are {'less sharp' if blurred else 'sharper'} than the training frames since "
            f"{_since(scored, 'sharpness', reference, focus)}: check the camera's focus and lens; expect missed defects "
            "and false alarms"
        )
    if "score" in reference and len(reference["score"]) > 0:
        scores = first_drift(scored["score"].tolist(), reference["score"])
        if scores is not None:
            higher = scored["score"].iloc[-DRIFT_WINDOW:].median() > np.median(reference["score"])
            problems.append(
                f"scores are {'higher' if higher else 'lower'} than on the evaluation's acceptable test images since "
                f"{_since(scored, 'score', reference, scores)}: the model no longer sees the line as it saw the "
                "images it was chosen on"
            )
    if expected_alarms is not None:
        latest = scored["alarm"].iloc[-ALARM_WINDOW:].astype(bool)
        limits = p_chart_limits(expected_alarms, len(latest))
        share = float(latest.mean())
        if share > limits.upper:
            problems.append(
                f"alarms on {100 * share:.1f} % of the last {len(latest)} frames, above the p-chart's upper limit "
                f"{100 * limits.upper:.1f} % (the evaluation expects {100 * expected_alarms:.1f} %): each one stops the line"
            )
    if not problems:
        return Verdict(
            True, "in control: the frames look like the training frames and the alarms are as the evaluation expects"
        )
    return Verdict(False, "out of control: " + "; ".join(problems))


def drift_start(values: Sequence[float], reference: Sequence[float], flagged: int, window: int = DRIFT_WINDOW) -> int:
    """Where the drift the test flagged at frame `flagged` began, about: the flagged window's frames beyond the
    reference's 1st-99th percentile range on the side it drifted to are taken as the drifted ones, counted back from
    the flag (a step change puts nearly all of them at the window's end)."""
    recent = np.asarray(values[max(0, flagged - window + 1) : flagged + 1], dtype=float)
    low, high = np.percentile(reference, [1, 99])
    beyond = recent > high if np.median(recent) > np.median(reference) else recent < low
    return flagged - max(int(beyond.sum()), 1) + 1


def _since(scored: pd.DataFrame, column: str, reference: Mapping[str, Sequence[float]], flagged: int) -> str:
    """When the drift flagged at `flagged` began, about (`drift_start`): the time its first frame was written, and its
    file."""
    first = scored.iloc[drift_start(scored[column].tolist(), reference[column], flagged)]
    written = first.get("written_at")
    when = pd.Timestamp(written).strftime("%H:%M:%S") if written is not None and not pd.isna(written) else "frame"
    return f"{when} ({str(first['file']).rsplit('/', 1)[-1]})"


@dataclass(frozen=True)
class LineComparison:
    """A run's alarms on frames the deployment scored, beside the deployed model's on the same frames."""

    run_id: str
    model: str
    condition: str
    seed: int
    frames: int
    last_written: pd.Timestamp | None  # when the last of those frames was written
    threshold: float
    alarms: float  # share of the frames at or above `threshold`
    deployed_alarms: float  # the deployed model's share on the same frames
    image_auroc: float | None  # on the part's test images
    deployed_image_auroc: float | None

    @property
    def text(self) -> str:
        until = f" up to {self.last_written:%H:%M:%S}" if self.last_written is not None else ""
        accuracy = (
            f"; image AUROC on the part's test images {self.image_auroc:.3f} (deployed run "
            f"{self.deployed_image_auroc:.3f})"
            if self.image_auroc is not None and self.deployed_image_auroc is not None
            else ""
        )
        return (
            f"{model_name(self.model)} in the {self.condition} condition (seed {self.seed}) raises alarms on "
            f"{100 * self.alarms:.1f} % of the {self.frames} frames scored{until}; the deployed model on "
            f"{100 * self.deployed_alarms:.1f} % of them{accuracy}"
        )


def line_threshold(store: Path | str, run_id: str, deployed_line: Mapping[str, float]) -> float:
    """`run_id`'s operating point chosen as the deployment's was: least cost on its line, else F1-optimal."""
    if deployed_line.get("policy") == "cost":
        scores = run_image_scores(run_id, store)
        line = Line(deployed_line["defect_rate"], deployed_line["miss_cost"], deployed_line["max_escape_rate"])
        return least_cost_point(scores["label"] == "anomalous", scores["score"], line).threshold
    threshold = run_thresholds(run_id, store)["image_threshold"]
    if threshold is None:
        raise ValueError(f"run {run_id!r} has no image threshold in {store}")
    return threshold


def line_comparisons(
    store: Path | str, rescores: pd.DataFrame, deployed_run: str, deployed_line: Mapping[str, float]
) -> list[LineComparison]:
    """One comparison per run in `rescores` (`store.line.line_rescores` of one deployment)."""
    if rescores.empty:
        return []
    aurocs = image_aurocs(store, [deployed_run, *rescores["run_id"].unique()])

    compared = []
    for run_id, frames in rescores.groupby("run_id", sort=False):
        threshold = line_threshold(store, str(run_id), deployed_line)
        written = frames["written_at"].max()
        first = frames.iloc[0]
        compared.append(
            LineComparison(
                str(run_id),
                str(first["model"]),
                str(first["condition"]),
                int(first["seed"]),
                len(frames),
                None if pd.isna(written) else pd.Timestamp(written),
                threshold,
                float((frames["score"] >= threshold).mean()),
                float(frames["deployed_alarm"].astype(bool).mean()),
                aurocs.get(str(run_id)),
                aurocs.get(deployed_run),
            )
        )
    return compared
