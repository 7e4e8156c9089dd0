"""Whether a test split tells candidates apart: error bars from seeds or, with one seed, from image AUROC's interval,
and how many more defective images two overlapping candidates need."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.analysis.adequacy import error_bars, more_defects_needed, separation_note


def test_one_seed_s_error_bar_is_its_interval_and_several_seeds_keep_their_standard_deviation():
    rows = pd.DataFrame(
        [
            ("local", "PaDiM", "image_auroc", 0.90, None, 1),
            ("local", "PaDiM", "image_auroc_low", 0.82, None, 1),
            ("local", "PaDiM", "image_auroc_high", 0.95, None, 1),
            ("local", "DFM", "image_auroc", 0.85, 0.02, 3),
            ("local", "DFM", "image_auroc_low", 0.75, 0.03, 3),
            ("local", "DFM", "image_auroc_high", 0.93, 0.01, 3),
            ("local", "DFM", "image_f1", 0.80, 0.05, 3),
        ],
        columns=["source", "candidate", "metric", "mean", "std", "n_seeds"],
    )
    bars = error_bars(rows, "image_auroc").set_index("candidate")
    assert (bars.loc["PaDiM", "minus"], bars.loc["PaDiM", "plus"]) == pytest.approx((0.08, 0.05))
    assert bars.loc["PaDiM", "bar"] == "95 % interval over the test images"
    assert (bars.loc["DFM", "minus"], bars.loc["DFM", "plus"], bars.loc["DFM", "bar"]) == (0.02, 0.02, "std over seeds")
    f1 = error_bars(rows, "image_f1").set_index("candidate")
    assert (f1.loc["DFM", "plus"], f1.loc["DFM", "minus"]) == (0.05, 0.05)


def test_overlapping_intervals_ask_for_the_defective_images_that_would_separate_them():
    # half-widths 0.08 + 0.06 around figures 0.04 apart, on 20 defective images: 20 x (0.14 / 0.04)^2 = 245, so 225 more
    assert more_defects_needed((0.90, 0.82, 0.96), (0.86, 0.80, 0.92), 20) == 225
    assert more_defects_needed((0.99, 0.97, 1.0), (0.80, 0.70, 0.88), 20) == 0  # apart already
    assert more_defects_needed((0.9, 0.8, 0.95), (0.9, 0.85, 0.97), 20) is None  # equal figures
    note = separation_note("PaDiM", "DFM", {"PaDiM": (0.90, 0.82, 0.96), "DFM": (0.86, 0.80, 0.92)}, 20)
    assert note == (
        "the image AUROC intervals of PaDiM and DFM overlap on these 20 defective test images: collect at least 225 "
        "more defective images to separate them"
    )


def test_the_trade_off_chart_s_error_bar_is_the_interval_for_one_seed_and_the_std_for_several():
    from engine.analysis.selection import error_bar

    points = pd.DataFrame(
        {
            "image_auroc_mean": [0.90, 0.85],
            "image_auroc_std": [None, 0.02],
            "image_auroc_low_mean": [0.82, 0.75],
            "image_auroc_high_mean": [0.95, 0.93],
            "inference_ms_mean": [20.0, 30.0],
            "inference_ms_std": [None, 1.5],
        }
    )
    bar = error_bar(points, "image_auroc")
    assert bar["array"].tolist() == pytest.approx([0.05, 0.02]) and bar["arrayminus"].tolist() == pytest.approx(
        [0.08, 0.02]
    )
    assert error_bar(points, "inference_ms")["array"].tolist() == [0.0, 1.5]  # no interval stored: std, 0 for one seed


def test_a_learning_curve_names_where_it_reaches_95_percent_and_says_when_it_falls():
    from engine.analysis.learning_curves import curves, sentences, smallest_reaching

    runs = pd.DataFrame(
        [
            (candidate, "padim", size, seed, auroc + 0.002 * seed, 0.98)
            for candidate, points in (
                ("Rising", [(10, 0.80), (25, 0.88), (50, 0.93), (120, 0.95)]),
                ("Falling", [(10, 0.95), (25, 0.94), (50, 0.93), (120, 0.90)]),
            )
            for size, auroc in points
            for seed in (0, 1)
        ],
        columns=["candidate", "model", "n_train", "seed", "image_auroc", "pixel_auroc"],
    )
    table = curves(runs)
    rising = table[table["candidate"] == "Rising"]
    assert smallest_reaching(rising) == 50  # 0.931 >= 0.95 x 0.951; 0.881 is not
    said = sentences(table)
    assert said[1] == "Rising reaches 95 % of its image AUROC (0.951 with 120 images) with 50 images"
    assert said[0].startswith("Falling reaches 95 % of its image AUROC (0.901 with 120 images) with 10 images; it is")
    assert "highest with 10 (0.951) and falls as images are added" in said[0]
