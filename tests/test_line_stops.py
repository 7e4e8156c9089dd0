"""Line-stop arithmetic on known operating points: rates per 1000 parts, the legacy comparison, minutes per shift."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.analysis.line_stops import against_legacy, legacy_rate, rates_per_candidate

LEGACY = "Legacy camera check (cpu)"
PADIM = "PaDiM / EfficientNet-Lite0 (cpu)"


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    """Legacy on one seed; PaDiM on two seeds whose test sets differ in size (200 and 50 good parts)."""
    columns = ["candidate", "model", "seed", "n_good", "n_defective"]
    columns += ["false_alarms_f1", "missed_f1", "false_alarms_zero_escape"]
    rows = [(LEGACY, "legacy", 0, 100, 40, 8, 4, 30), (PADIM, "padim", 0, 200, 40, 2, 2, 10)]
    return pd.DataFrame([*rows, (PADIM, "padim", 1, 50, 20, 1, 0, 5)], columns=columns)


def test_rates_are_per_run_then_averaged_over_seeds(runs):
    rates = rates_per_candidate(runs).set_index("candidate")
    assert rates.loc[PADIM, "false_alarms_per_1000"] == pytest.approx((10 + 20) / 2)  # not 3/250 pooled
    assert rates.loc[PADIM, "missed_per_1000"] == pytest.approx((50 + 0) / 2)
    assert rates.loc[LEGACY, "false_alarms_per_1000"] == pytest.approx(80)
    assert rates.loc[PADIM, "seeds"] == 2 and rates.loc[PADIM, "good_test_images"] == 200
    assert list(rates.index) == [PADIM, LEGACY]  # fewest false alarms first


def test_zero_escapes_counts_its_own_false_alarms_and_misses_nothing(runs):
    rates = rates_per_candidate(runs, "zero_escape").set_index("candidate")
    assert rates.loc[PADIM, "false_alarms_per_1000"] == pytest.approx((50 + 100) / 2)
    assert rates.loc[LEGACY, "false_alarms_per_1000"] == pytest.approx(300)
    assert rates["missed_per_1000"].eq(0).all()


def test_minutes_avoided_per_shift_follow_the_difference_to_legacy(runs):
    table = against_legacy(rates_per_candidate(runs), parts_per_shift=900, minutes_per_stop=3.0).set_index("candidate")
    assert legacy_rate(rates_per_candidate(runs)) == pytest.approx(80)
    assert table.loc[PADIM, "vs_legacy_per_1000"] == pytest.approx(65)
    assert table.loc[PADIM, "stop_minutes_per_shift"] == pytest.approx(15 / 1000 * 900 * 3)
    assert table.loc[PADIM, "minutes_avoided_per_shift"] == pytest.approx(65 / 1000 * 900 * 3)
    assert table.loc[LEGACY, "minutes_avoided_per_shift"] == 0
    assert "stop_minutes_per_shift" not in against_legacy(rates_per_candidate(runs))


def test_bad_policy_missing_legacy_and_impossible_shifts_are_refused_by_name(runs):
    with pytest.raises(ValueError, match="'f2'"):
        rates_per_candidate(runs, "f2")  # type: ignore[arg-type]
    without_legacy = rates_per_candidate(runs[runs["model"] != "legacy"])
    assert legacy_rate(without_legacy) is None
    with pytest.raises(ValueError, match="no 'legacy' candidate"):
        against_legacy(without_legacy)
    with pytest.raises(ValueError, match="got 0 and 3.0"):
        against_legacy(rates_per_candidate(runs), parts_per_shift=0, minutes_per_stop=3.0)
