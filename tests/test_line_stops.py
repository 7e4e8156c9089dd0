"""Line-stop arithmetic: least-cost thresholds worked out by hand, rates over seeds, figures per shift, and the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from engine.analysis.line_stops import (
    Line,
    escape_interval,
    flags_nothing,
    least_cost_point,
    least_cost_points,
    legacy_rate,
    on_the_line,
    rates_per_candidate,
)
from store.queries import finished_run_scores, operating_points
from tests.conftest import open_page, run_key, write_finished_run

LEGACY = "Legacy camera check (cpu)"
PADIM = "PaDiM / EfficientNet-Lite0 (cpu)"


def legacy_key(**changes) -> dict:
    return {**run_key(model="legacy", **changes), "backbone": ""}


def test_the_least_cost_threshold_of_a_hand_scored_run_and_its_misses_and_false_alarms_per_shift(tmp_path):
    """A line making 1 % defective parts (p = 0.01), where a miss costs 80 line stops (r = 80), 1200 parts a shift,
    with no limit on escapes (e = 1; `test_the_escape_limit_...` sets one).

    In line stops a part costs (1 − p)·FPR + p·r·FNR = 0.99·FP/N + 0.8·FN/P.

    PaDiM scores its N = 5 good images 0.1, 0.2, 0.3, 0.6, 0.8 and its P = 3 defective ones 0.25, 0.7, 0.9, so one
    false alarm costs 0.99/5 = 0.198 and one miss 0.8/3 = 0.2667. Every threshold, highest first:

        t      inf   0.9     0.8     0.7     0.6     0.3     0.25   0.2    0.1
        FP     0     0       1       1       2       3       3      4      5
        FN     3     2       2       1       1       1       0      0      0
        cost   0.8   0.5333  0.7313  0.4647  0.6627  0.8607  0.594  0.792  0.99

    t = 0.7 wins: FPR = 1/5, FNR = 1/3, cost 0.198 + 0.2667 = 0.4647. Per shift of 1200 parts:
    false alarms 1200·0.99·0.2 = 237.6, misses 1200·0.01·(1/3) = 4, at 2.5 minutes a stop 594 line-stop
    minutes, expected cost 237.6 + 80·4 = 557.6 line stops (1200·0.4647).

    The legacy check scores its good images 0.1, 0.5, 0.6, 0.7, 0.8 and defective ones 0.2, 0.3, 0.9:

        t      inf   0.9     0.8     0.7     0.6     0.5     0.3     0.2    0.1
        FP     0     0       1       2       3       4       4       4      5
        FN     3     2       2       2       2       2       1       0      0
        cost   0.8   0.5333  0.7313  0.9293  1.1273  1.3253  1.0587  0.792  0.99

    t = 0.9 wins: FPR 0, FNR 2/3, so 0 false alarms and 1200·0.01·(2/3) = 8 misses per shift, cost 640.
    PaDiM saves 640 − 557.6 = 82.4 line stops a shift while stopping the line 594 minutes more.
    """
    store = tmp_path / "store.duckdb"
    write_finished_run(store, "padim", run_key(), [0.1, 0.2, 0.3, 0.6, 0.8], [0.25, 0.7, 0.9], threshold=0.25)
    write_finished_run(store, "legacy", legacy_key(), [0.1, 0.5, 0.6, 0.7, 0.8], [0.2, 0.3, 0.9], threshold=0.9)
    line = Line(defect_rate=0.01, miss_cost=80, max_escape_rate=1)

    points = least_cost_points(finished_run_scores(store, ["part1"], "baseline"), line).set_index("run_id")
    assert points.loc["padim", ["cost_threshold", "false_alarms_cost", "missed_cost"]].tolist() == [0.7, 1, 1]
    assert points.loc["padim", "expected_cost"] == pytest.approx(0.198 + 0.8 / 3)
    assert points.loc["legacy", ["cost_threshold", "false_alarms_cost", "missed_cost"]].tolist() == [0.9, 0, 2]

    runs = operating_points(store, ["part1"]).merge(points.reset_index(), on="run_id")
    runs["candidate"] = runs["model"].map({"padim": PADIM, "legacy": LEGACY})
    rates = rates_per_candidate(runs, "cost").set_index("candidate")
    assert rates.loc[PADIM, "false_alarms_per_1000"] == pytest.approx(200)
    assert rates.loc[PADIM, "missed_per_1000"] == pytest.approx(1000 / 3)

    shift = on_the_line(rates.reset_index(), line, parts_per_shift=1200, minutes_per_stop=2.5).set_index("candidate")
    assert list(shift.index) == [PADIM, LEGACY]  # cheapest first
    assert shift.loc[PADIM, "false_alarms_per_shift"] == pytest.approx(237.6)
    assert shift.loc[PADIM, "misses_per_shift"] == pytest.approx(4)
    assert shift.loc[PADIM, "stop_minutes_per_shift"] == pytest.approx(594)
    assert shift.loc[PADIM, "expected_cost_per_shift"] == pytest.approx(557.6)
    assert shift.loc[LEGACY, ["false_alarms_per_shift", "misses_per_shift"]].tolist() == pytest.approx([0, 8])
    assert shift.loc[LEGACY, "expected_cost_per_shift"] == pytest.approx(640)
    assert shift.loc[PADIM, "cost_saved_per_shift"] == pytest.approx(82.4)
    assert shift.loc[PADIM, "minutes_avoided_per_shift"] == pytest.approx(-594)


def test_on_equal_cost_the_higher_threshold_wins_and_a_model_not_worth_its_stops_flags_nothing():
    """p = 0.01 and r = 99 make a part cost 0.99·(FPR + FNR). Good 0.1, 0.2, 0.55, 0.65 (one false alarm 0.2475),
    defective 0.5, 0.9 (one miss 0.495): t = 0.9 (FP 0, FN 1) and t = 0.5 (FP 2, FN 0) both cost 0.495, the least;
    0.9 wins.

    At p = 0.005 and r = 20 a part costs 0.995·FPR + 0.1·FNR. Good 0.2, 0.4, 0.6, 0.8, defective 0.3, 0.5: flagging
    nothing costs 0.1, and any threshold catching a defect flags at least two good images (0.4975): t = inf.
    Both lines set no limit on escapes (e = 1).
    """
    no_limit = Line(max_escape_rate=1)
    tied = least_cost_point(
        [False, False, False, False, True, True], [0.1, 0.2, 0.55, 0.65, 0.5, 0.9], Line(0.01, 99, max_escape_rate=1)
    )
    assert (tied.threshold, tied.false_alarms, tied.missed, tied.fpr, tied.fnr) == (0.9, 0, 1, 0.0, 0.5)
    assert tied.cost == pytest.approx(0.495)

    labels = ["normal", "anomalous", "normal", "anomalous", "normal", "normal"]
    scores = pd.DataFrame({"run_id": "r", "label": labels, "score": [0.2, 0.3, 0.4, 0.5, 0.6, 0.8]})
    silent = least_cost_point(scores["label"] == "anomalous", scores["score"], no_limit)
    assert (silent.threshold, silent.false_alarms, silent.missed) == (np.inf, 0, 2)
    assert silent.cost == pytest.approx(0.1)
    runs = least_cost_points(scores, no_limit).assign(candidate=PADIM)
    assert flags_nothing(runs) == [PADIM]


def test_the_escape_limit_keeps_only_thresholds_letting_few_enough_defects_through_then_picks_the_cheapest():
    """The hand-scored PaDiM run of the first test: good 0.1, 0.2, 0.3, 0.6, 0.8, defective 0.25, 0.7, 0.9; a part
    costs 0.99·FP/5 + 0.8·FN/3. Unlimited, t = 0.7 (FP 1, FN 1) costs least. At most 5 % escapes leaves FN = 0:
    t = 0.25 (FP 3, cost 0.594), 0.2 (0.792) or 0.1 (0.99), so t = 0.25. At most 1/3 admits FN = 1 again: 0.7.

    By default (5 %) the second test's cheapest threshold, "flag nothing", lets both defects through; what meets the
    limit is t = 0.3, flagging three of the four good parts. A model whose defects all score below its good parts
    meets the limit only by flagging every good part: at no usable threshold.
    """
    good, defective = [0.1, 0.2, 0.3, 0.6, 0.8], [0.25, 0.7, 0.9]
    labels, scores = [False] * 5 + [True] * 3, good + defective
    strict = least_cost_point(labels, scores, Line(0.01, 80, max_escape_rate=0.05))
    assert (strict.threshold, strict.false_alarms, strict.missed) == (0.25, 3, 0)
    assert strict.cost == pytest.approx(0.99 * 3 / 5) and strict.escape_limit_met
    assert least_cost_point(labels, scores, Line(0.01, 80, max_escape_rate=1 / 3)).threshold == 0.7

    limited = least_cost_point([False, True, False, True, False, False], [0.2, 0.3, 0.4, 0.5, 0.6, 0.8], Line())
    assert (limited.threshold, limited.false_alarms, limited.missed) == (0.3, 3, 0) and limited.escape_limit_met

    hopeless = least_cost_point([False, False, True, True], [0.5, 0.6, 0.1, 0.9], Line())
    assert (hopeless.threshold, hopeless.false_alarms, hopeless.missed) == (0.1, 2, 0)
    assert not hopeless.escape_limit_met
    runs = least_cost_points(pd.DataFrame({"run_id": "r", "label": ["normal"] * 2 + ["anomalous"] * 2,
                                           "score": [0.5, 0.6, 0.1, 0.9]}), Line())  # fmt: skip
    assert runs["escape_limit_met"].tolist() == [False]
    with pytest.raises(ValueError, match="maximum escape rate"):
        Line(max_escape_rate=1.5)


def test_a_candidate_s_escape_rate_comes_with_its_clopper_pearson_interval_over_the_pooled_seeds(runs):
    """PaDiM's F1 thresholds miss 2 of 40 and 0 of 20 defective parts: 2 of 60 pooled. Clopper–Pearson's bounds are
    the 2.5 % quantile of Beta(k, n − k + 1) and the 97.5 % one of Beta(k + 1, n − k)."""
    rates = rates_per_candidate(runs).set_index("candidate")
    assert rates.loc[PADIM, "defective_test_images"] == 60
    low, high = rates.loc[PADIM, ["escape_low", "escape_high"]]
    assert low == pytest.approx(beta.ppf(0.025, 2, 59)) and high == pytest.approx(beta.ppf(0.975, 3, 58))
    assert escape_interval(0, 20) == pytest.approx((0.0, 1 - 0.025 ** (1 / 20)))  # none missed: (1 − 0.025^(1/n))
    wide, narrow = escape_interval(1, 5), escape_interval(20, 100)
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])  # few defective images: a wide interval


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    """Legacy on one seed; PaDiM on two seeds whose test sets differ in size (200 and 50 good parts)."""
    columns = ["candidate", "model", "seed", "n_good", "n_defective"]
    columns += ["false_alarms_f1", "missed_f1", "false_alarms_zero_escape", "false_alarms_cost", "missed_cost"]
    rows = [(LEGACY, "legacy", 0, 100, 40, 8, 4, 30, 1, 20), (PADIM, "padim", 0, 200, 40, 2, 2, 10, 0, 8)]
    return pd.DataFrame([*rows, (PADIM, "padim", 1, 50, 20, 1, 0, 5, 0, 2)], columns=columns)


def test_rates_are_per_run_then_averaged_over_seeds(runs):
    rates = rates_per_candidate(runs).set_index("candidate")
    assert rates.loc[PADIM, "false_alarms_per_1000"] == pytest.approx((10 + 20) / 2)  # not 3/250 pooled
    assert rates.loc[PADIM, "missed_per_1000"] == pytest.approx((50 + 0) / 2)
    assert rates.loc[LEGACY, "false_alarms_per_1000"] == pytest.approx(80)
    assert rates.loc[PADIM, "seeds"] == 2 and rates.loc[PADIM, "good_test_images"] == 200
    assert list(rates.index) == [PADIM, LEGACY]  # fewest false alarms first
    at_cost = rates_per_candidate(runs, "cost").set_index("candidate")
    assert at_cost.loc[PADIM, "missed_per_1000"] == pytest.approx((200 + 100) / 2)


def test_zero_escapes_counts_its_own_false_alarms_and_misses_nothing(runs):
    rates = rates_per_candidate(runs, "zero_escape").set_index("candidate")
    assert rates.loc[PADIM, "false_alarms_per_1000"] == pytest.approx((50 + 100) / 2)
    assert rates.loc[LEGACY, "false_alarms_per_1000"] == pytest.approx(300)
    assert rates["missed_per_1000"].eq(0).all()


def test_a_shift_counts_false_alarms_among_its_good_parts_and_misses_among_its_defective_ones(runs):
    """F1 rates: PaDiM 15 false alarms per 1000 good, 25 misses per 1000 defective; legacy 80 and 100. On 900 parts
    at p = 0.005: PaDiM 900·0.995·0.015 = 13.4325 false alarms, 900·0.005·0.025 = 0.1125 misses, cost
    13.4325 + 20·0.1125 = 15.6825; legacy 71.64, 0.45 and 80.64; at 3 minutes a stop PaDiM avoids
    (71.64 − 13.4325)·3 = 174.6225 minutes."""
    table = on_the_line(rates_per_candidate(runs), Line(0.005, 20), 900, 3.0).set_index("candidate")
    assert legacy_rate(rates_per_candidate(runs)) == pytest.approx(80)
    assert table.loc[PADIM, ["false_alarms_per_shift", "misses_per_shift"]].tolist() == pytest.approx([13.4325, 0.1125])
    assert table.loc[PADIM, "expected_cost_per_shift"] == pytest.approx(15.6825)
    assert table.loc[LEGACY, "expected_cost_per_shift"] == pytest.approx(80.64)
    assert table.loc[PADIM, "stop_minutes_per_shift"] == pytest.approx(13.4325 * 3)
    assert table.loc[PADIM, "minutes_avoided_per_shift"] == pytest.approx(174.6225)
    assert table.loc[PADIM, "cost_saved_per_shift"] == pytest.approx(80.64 - 15.6825)
    assert table.loc[LEGACY, ["minutes_avoided_per_shift", "cost_saved_per_shift"]].tolist() == [0, 0]
    without_minutes = on_the_line(rates_per_candidate(runs), Line(), 900)
    assert "stop_minutes_per_shift" not in without_minutes and "minutes_avoided_per_shift" not in without_minutes


def test_bad_policy_impossible_lines_and_shifts_and_one_sided_test_sets_are_refused_by_name(runs):
    with pytest.raises(ValueError, match="'f2'"):
        rates_per_candidate(runs, "f2")  # type: ignore[arg-type]
    without_legacy = rates_per_candidate(runs[runs["model"] != "legacy"])
    assert legacy_rate(without_legacy) is None
    assert "cost_saved_per_shift" not in on_the_line(without_legacy, Line(), 900, 3.0)
    with pytest.raises(ValueError, match="got 0 and 3.0"):
        on_the_line(rates_per_candidate(runs), Line(), parts_per_shift=0, minutes_per_stop=3.0)
    with pytest.raises(ValueError, match="got 0 and 20"):
        Line(defect_rate=0, miss_cost=20)
    with pytest.raises(ValueError, match="got 3 and 0"):
        least_cost_point([False, False, False], [0.1, 0.2, 0.3], Line())
    with pytest.raises(ValueError, match="finite"):
        least_cost_point([False, True], [0.1, float("nan")], Line())
    broken = pd.DataFrame({"run_id": ["nan", "nan", "ok", "ok"], "label": ["normal", "anomalous"] * 2})
    assert least_cost_points(broken.assign(score=[0.1, float("nan"), 0.1, 0.9]), Line())["run_id"].tolist() == ["ok"]


# A demo-like part: 40 good and 40 defective test images. The learned models score the good images 0.50 … 0.89;
# k of their defects score above every good image (1.00, 1.01, …), the others among the good ones, the lowest one
# below them. With k < 20 the test set's F1 optimum flags every good image, as FastFlow, EfficientAD and STFPM do
# on the demo store; the legacy check flags 2 good images and misses 10 defects at its F1 optimum.
SEPARATED = {"fastflow": 19, "stfpm": 18, "efficient_ad": 16}
FASTFLOW = "FastFlow / EfficientNet-Lite0 (cpu)"
EFFICIENT_AD = "EfficientAD / EfficientNet-Lite0 (cpu)"


def demo_like_scores(separated: int) -> tuple[list[float], list[float]]:
    good = [round(0.50 + 0.01 * i, 2) for i in range(40)]
    among = np.linspace(0.495, 0.885, 40 - separated).round(4).tolist()
    return good, among + [round(1.00 + 0.01 * j, 2) for j in range(separated)]


def legacy_scores() -> tuple[list[float], list[float]]:
    good = [round(0.10 + 0.01 * i, 2) for i in range(38)] + [2.0, 2.1]
    return good, [round(0.105 + 0.03 * i, 3) for i in range(10)] + [round(1.00 + 0.01 * j, 2) for j in range(30)]


def f1_optimal_threshold(good: list[float], defective: list[float]) -> float:
    """The score at which flagging `score >= t` has the highest F1 on the test set (lowest such t on a tie)."""

    def f1(t: float) -> float:
        caught = sum(score >= t for score in defective)
        return 2 * caught / (caught + sum(score >= t for score in good) + len(defective))

    return max(sorted(set(good + defective)), key=f1)


@pytest.fixture(scope="module")
def demo_like_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("line_stops") / "store.duckdb"
    for model, separated in SEPARATED.items():
        good, defective = demo_like_scores(separated)
        write_finished_run(store, model, run_key(model=model), good, defective, f1_optimal_threshold(good, defective))
    good, defective = legacy_scores()
    write_finished_run(store, "legacy", legacy_key(), good, defective, f1_optimal_threshold(good, defective))
    return store


def test_the_line_stops_page_picks_thresholds_by_least_cost_where_f1_flags_every_good_part(
    demo_like_store, monkeypatch
):
    """Default line: p = 0.5 %, a miss costs 20 line stops; 1000 parts a shift, 3 minutes a stop; no escape limit
    (100 %: the next test keeps the default 5 %).

    One false alarm among 40 good images costs 0.995/40 = 0.024875 line stops a part, one miss among 40
    defective ones 0.1/40 = 0.0025, so catching a defect is worth a tenth of a false alarm. FastFlow's least-cost
    threshold is its lowest separated defect (1.00): no false alarm, 21 of 40 missed, 1000·0.005·21/40 = 2.625
    misses a shift, expected cost 20·2.625 = 52.5 line stops. STFPM: 2.75 misses, 55; EfficientAD: 3.0, 60. The
    legacy check keeps its F1 threshold (1.00: 2 false alarms, 10 misses, 0.07475 a part, cheaper than flagging
    nothing at 0.1): 1000·0.995·2/40 = 49.75 false alarms and 1.25 misses a shift, cost 49.75 + 25 = 74.75, and
    149.25 line-stop minutes. At the F1 optimum the learned models flag all 995 good parts of a shift instead.

    With a miss costing 800 line stops one miss costs 4/40 = 0.1, four false alarms' worth, and FastFlow flags
    every part (0.995 a part, against 4·21/40 = 2.1 at 1.00): 995 false alarms and no miss a shift.
    """
    app = open_page(demo_like_store, "operations.py", monkeypatch)
    app.number_input(key="ops_parts").set_value(1000)
    app.number_input(key="ops_max_escape").set_value(100.0)
    app.number_input(key="ops_minutes").set_value(3.0).run()
    table = app.dataframe[0].value.set_index("candidate")
    assert list(table.index) == [
        FASTFLOW,
        "STFPM / EfficientNet-Lite0 (cpu)",
        "EfficientAD / EfficientNet-Lite0 (cpu)",
        LEGACY,
    ]
    assert table["false_alarms_per_shift"].tolist() == pytest.approx([0, 0, 0, 49.75])
    assert table["misses_per_shift"].tolist() == pytest.approx([2.625, 2.75, 3.0, 1.25])
    assert table["expected_cost_per_shift"].tolist() == pytest.approx([52.5, 55, 60, 74.75])
    assert table["stop_minutes_per_shift"].tolist() == pytest.approx([0, 0, 0, 149.25])
    assert table.loc[FASTFLOW, "minutes_avoided_per_shift"] == pytest.approx(149.25)
    assert table.loc[FASTFLOW, "cost_saved_per_shift"] == pytest.approx(22.25)
    success = app.success[0].value
    assert success.startswith(f"{FASTFLOW} costs least at 0.5 % defective and a miss costing 20 line stops: 0.0 false")
    assert f"against {table.loc[LEGACY, 'false_alarms_per_shift']:.1f} and 1.25 for the legacy system" in success
    assert "about 149 line-stop minutes avoided per shift of 1000 parts" in success

    app.radio(key="ops_policy").set_value("F1-optimal threshold").run()
    table = app.dataframe[0].value.set_index("candidate")
    assert table.loc[FASTFLOW, "false_alarms_per_1000"] == 1000
    assert table.loc[FASTFLOW, "false_alarms_per_shift"] == pytest.approx(995)
    assert table.index[0] == LEGACY and table.loc[LEGACY, "expected_cost_per_shift"] == pytest.approx(74.75)
    assert "No model beats the legacy check" in app.warning[0].value

    app.radio(key="ops_policy").set_value("Least expected cost on your line").run()
    app.number_input(key="ops_miss_cost").set_value(800.0).run()  # a miss as dear as a recall: catch every defect
    table = app.dataframe[0].value.set_index("candidate")
    assert table.loc[FASTFLOW, ["false_alarms_per_shift", "misses_per_shift"]].tolist() == pytest.approx([995, 0])


def test_at_the_default_escape_limit_the_line_stops_page_chooses_only_thresholds_missing_at_most_5_percent(
    demo_like_store, monkeypatch
):
    """At most 5 % of the 40 defective test images may pass: 2. Each run's threshold is then its third-lowest defect.

    FastFlow: defects 0.495, 0.5145, 0.534, …: t = 0.534 flags 36 of the good 0.50 … 0.89. Per 1000 parts at
    p = 0.5 %: 1000·0.995·36/40 = 895.5 false alarms, 1000·0.005·2/40 = 0.25 misses, cost 895.5 + 20·0.25 = 900.5.
    STFPM (0.495, 0.5136, 0.5321): 36 false alarms' worth too, 900.5; EfficientAD (…, 0.5289): 37, 925.375.
    The legacy check: defects 0.105, 0.135, 0.165, …; t = 0.165 flags 0.17 … 0.47 and 2.0, 2.1 (33 good):
    820.875 false alarms, cost 825.875, the cheapest within the limit. The escape rate of 2 in 40 lies in
    [0.6 %, 16.9 %] (Clopper–Pearson), and no miss among 40 still allows 8.8 % escapes, above the 5 % limit.
    """
    app = open_page(demo_like_store, "operations.py", monkeypatch)
    assert app.number_input(key="ops_max_escape").value == 5.0
    table = app.dataframe[0].value.set_index("candidate")
    assert list(table.index) == [LEGACY, FASTFLOW, "STFPM / EfficientNet-Lite0 (cpu)", EFFICIENT_AD]
    assert table["false_alarms_per_shift"].tolist() == pytest.approx([820.875, 895.5, 895.5, 920.375])
    assert table["misses_per_shift"].tolist() == pytest.approx([0.25] * 4)
    assert table["expected_cost_per_shift"].tolist() == pytest.approx([825.875, 900.5, 900.5, 925.375])
    assert table["missed_per_1000"].tolist() == pytest.approx([50] * 4)
    assert set(table["escape_interval"]) == {"1–17 % of 40"}
    assert app.warning[0].value == (
        "No model beats the legacy check at 0.5 % defective and a miss costing 20 line stops, "
        "letting at most 5 % of defects pass."
    )
    assert any("may still let up to 9 % of defects pass, above the 5 % limit" in c.value for c in app.caption)

    app.number_input(key="ops_max_escape").set_value(0.0).run()  # not one escape: every defect must be caught
    table = app.dataframe[0].value.set_index("candidate")
    assert table["misses_per_shift"].tolist() == pytest.approx([0] * 4)


def test_a_store_without_local_scores_has_no_least_cost_points():
    empty = pd.DataFrame({"run_id": [], "label": [], "score": []})
    assert least_cost_points(empty, Line()).empty
