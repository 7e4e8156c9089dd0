"""A line to watch: `gluelab generate --stream` writes a camera's frames with a drift from a chosen frame, and the
watch's statistics (p-chart, EWMA, drift test) flag a drifted line and only a drifted one."""

from __future__ import annotations

import csv
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from engine.analysis.line_watch import (
    DRIFT_WINDOW,
    alarm_windows,
    drift_test,
    ewma,
    ewma_limits,
    expected_alarm_rate,
    first_drift,
    p_chart_limits,
    verdict,
)
from engine.cli import main as gluelab
from engine.frame_statistics import clipped_share, sharpness
from engine.ingest.synthetic.plant import MANIFEST_NAME, generate_part
from engine.ingest.synthetic.stream import MANIFEST, render_frame


@pytest.fixture(scope="module")
def training_frames(tmp_path_factory) -> dict[str, list[float]]:
    """Mean grey level and sharpness of generated part1's training frames (48 of 80 images)."""
    part = generate_part("part1", 80, seed=0, out_dir=tmp_path_factory.mktemp("plant"), workers=1)
    with open(part / MANIFEST_NAME) as manifest:
        rows = [row for row in csv.DictReader(manifest) if row["split"] == "train"]
    images = [cv2.imread(str(part / row["image_path"]), cv2.IMREAD_GRAYSCALE) for row in rows]
    return {
        "mean_brightness": [float(row["mean_brightness"]) for row in rows],
        "sharpness": [sharpness(image) for image in images],
    }


def test_a_stream_is_written_one_frame_at_a_time_with_its_drift_from_the_chosen_frame(tmp_path, capsys):
    out = tmp_path / "line"
    command = ["generate", "--stream", "--part", "part1", "--frames", "12", "--drift", "brightness"]
    assert gluelab([*command, "--drift-from", "6", "--defect-rate", "0.25", "--out", str(out)]) == 0
    assert "part1: 12 frames in" in capsys.readouterr().out
    with open(out / MANIFEST) as manifest:
        frames = list(csv.DictReader(manifest))
    assert [row["file"] for row in frames] == [f"frame_{index:06d}.png" for index in range(12)]
    assert sorted(path.name for path in out.iterdir()) == sorted([*(row["file"] for row in frames), MANIFEST])
    assert [row["drifted"] for row in frames] == ["False"] * 6 + ["True"] * 6
    assert 0 < sum(row["defective"] == "True" for row in frames) < 12  # a quarter, drawn per frame
    brightness = [cv2.imread(str(out / row["file"]), cv2.IMREAD_GRAYSCALE).mean() for row in frames]
    assert brightness == pytest.approx([float(row["mean_brightness"]) for row in frames], abs=1e-3)
    assert min(brightness[6:]) > 1.5 * max(brightness[:6])  # one stop more light, clipped at full scale


def test_a_focus_drift_blurs_the_frame_and_a_frame_is_the_same_whatever_the_stream_around_it():
    sharp, _ = render_frame("part1", 0, 5, 0.0, "focus", drift_from=6)
    blurred, frame = render_frame("part1", 0, 5, 0.0, "focus", drift_from=5)
    again, _ = render_frame("part1", 0, 5, 0.0, "none", drift_from=0)
    assert frame.drifted and np.array_equal(sharp, again)
    assert sharpness(blurred) < sharpness(sharp) / 4 and frame.sharpness == pytest.approx(sharpness(blurred), abs=1e-6)


def test_bad_stream_arguments_are_named_and_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "line"
    for arguments, named in (
        (["--stream", "--frames", "5"], "--stream needs --part"),
        (["--stream", "--part", "part99", "--frames", "5"], "unknown synthetic part 'part99'"),
        (["--stream", "--part", "part1", "--frames", "5", "--drift", "focus", "--drift-from", "9"], "--drift-from"),
        (["--part", "part1"], "--part names the part of a --stream"),
    ):
        assert gluelab(["generate", *arguments, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert named in error, error
        assert not out.exists()


def test_the_p_chart_limits_and_the_expected_alarm_rate_equal_a_hand_computation():
    # 1 % of good parts flagged, 10 % of defects missed, 0.5 % defective: 0.995 x 0.01 + 0.005 x 0.9 = 0.01445
    assert expected_alarm_rate(0.01, 0.10, 0.005) == pytest.approx(0.01445)
    limits = p_chart_limits(0.02, 200)  # sigma = sqrt(0.02 x 0.98 / 200) = 0.0098995
    assert (limits.centre, limits.lower, limits.upper) == pytest.approx((0.02, 0.0, 0.0496985), abs=1e-6)
    wide = p_chart_limits(0.3, 50)  # sigma = sqrt(0.3 x 0.7 / 50) = 0.0648074
    assert (wide.lower, wide.upper) == pytest.approx((0.1055778, 0.4944222), abs=1e-6)
    with pytest.raises(ValueError, match="at least one frame"):
        p_chart_limits(0.1, 0)


def test_the_p_chart_counts_alarms_per_n_frames_or_per_hour_the_frames_were_written():
    written = pd.to_datetime(["2026-12-05 09:58", "2026-12-05 09:59", "2026-12-05 10:00", "2026-12-05 10:42",
                              "2026-12-05 10:59", "2026-12-05 11:01", None])  # fmt: skip
    frames = pd.DataFrame({"alarm": [True, False, False, True, True, False, True], "written_at": written})
    per_three = alarm_windows(frames, 3)
    assert per_three["start"].tolist() == [1, 4, 7]
    assert per_three["share"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert per_three["frames"].tolist() == [3, 3, 1]
    per_hour = alarm_windows(frames)  # the frame without a time is left out
    assert per_hour["start"].dt.hour.tolist() == [9, 10, 11]
    assert per_hour["share"].tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    assert per_hour["frames"].tolist() == [2, 3, 1]


def test_the_ewma_and_its_limits_equal_a_hand_computation():
    # z1 = 0.2 x 110 + 0.8 x 100 = 102; z2 = 0.2 x 90 + 0.8 x 102 = 99.6
    assert ewma([110.0, 90.0], start=100.0) == pytest.approx([102.0, 99.6])
    lower, upper = ewma_limits(100.0, 5.0, 2)  # 3 x 5 x sqrt(0.2 / 1.8 x (1 - 0.8^(2i)))
    assert upper == pytest.approx([100 + 15 * np.sqrt(0.2 / 1.8 * 0.36), 100 + 15 * np.sqrt(0.2 / 1.8 * 0.5904)])
    assert lower == pytest.approx(200 - upper)
    assert clipped_share(np.array([[255, 10], [255, 255]], np.uint8)) == 0.75


@pytest.mark.parametrize("drift, statistic", [("brightness", "mean_brightness"), ("focus", "sharpness")])
def test_a_drift_from_frame_200_of_400_is_flagged_within_50_frames_and_not_before(drift, statistic, training_frames):
    frames = [render_frame("part1", 3, k, 0.005, drift, 200)[1] for k in range(260)]
    values = [getattr(frame, statistic) for frame in frames]
    flagged = first_drift(values, training_frames[statistic])
    assert flagged is not None and 200 <= flagged < 250, flagged
    recent = drift_test(values[flagged - DRIFT_WINDOW + 1 : flagged + 1], training_frames[statistic])
    assert recent.drifted
    assert (recent.recent_mean > recent.reference_mean) == (drift == "brightness")
    other = "sharpness" if statistic == "mean_brightness" else "mean_brightness"
    assert first_drift([getattr(frame, other) for frame in frames], training_frames[other]) is None  # told apart


def test_a_line_without_drift_is_not_flagged(training_frames):
    frames = [render_frame("part1", 4, k, 0.005, "none", 0)[1] for k in range(200)]
    for statistic in ("mean_brightness", "sharpness"):
        assert first_drift([getattr(frame, statistic) for frame in frames], training_frames[statistic]) is None


def test_the_verdict_names_what_drifted_since_when_and_says_in_control_otherwise():
    rng = np.random.default_rng(0)
    reference = {
        "mean_brightness": list(rng.normal(80, 3, 60)),
        "sharpness": list(rng.normal(0.1, 0.005, 60)),
        "score": list(rng.normal(10, 1, 40)),
    }
    times = pd.date_range("2026-12-05 10:00", periods=120, freq="s")
    frames = pd.DataFrame(
        {
            "file": [f"/line/frame_{k:06d}.png" for k in range(120)],
            "written_at": times,
            "mean_brightness": rng.normal(80, 3, 120),
            "sharpness": rng.normal(0.1, 0.005, 120),
            "score": np.r_[rng.normal(10, 1, 70), rng.normal(14, 1, 50)],
            "alarm": [False] * 120,
            "rejected": [None] * 120,
        }
    )
    judged = verdict(frames, reference, expected_alarms=0.01)
    assert not judged.in_control
    since = re.search(
        r"scores are higher than on the evaluation's acceptable test images since (\S+) \((\S+)\)", judged.text
    )
    assert since is not None, judged.text
    assert "10:01:05" <= since.group(1) <= "10:01:15"  # the drift began with frame 70, written at 10:01:10
    assert "brighter" not in judged.text and "sharp" not in judged.text

    calm = frames.assign(score=rng.normal(10, 1, 120))
    assert verdict(calm, reference, expected_alarms=0.01).text.startswith("in control")
    noisy = calm.assign(alarm=[k % 4 == 0 for k in range(120)])  # 25 % of frames against an expected 1 %
    assert "above the p-chart's upper limit" in verdict(noisy, reference, expected_alarms=0.01).text
