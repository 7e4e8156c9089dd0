"""Run metrics on known inputs, each expectation computed independently with scikit-learn or by hand.

The scores are raw model units (hundreds to thousands), far outside [0, 1], so a threshold left in the
rescaled units, or a metric fed squashed logits, cannot pass for the right figure.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anomalib.metrics import AUPRO
from scipy.stats import bootstrap
from sklearn.metrics import f1_score, precision_recall_curve, roc_auc_score

from engine.evaluation.metrics import (
    AUROC_RESAMPLES,
    AUROC_SEED,
    PIXEL_METRICS,
    _anomalib_pixel_metrics,
    image_metrics,
    pixel_metrics,
)
from engine.evaluation.pixel_curves import PixelOrder


def best_f1_and_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The largest F1 over every threshold and the lowest threshold reaching it, from scikit-learn's PR curve."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


@pytest.fixture
def image_case() -> tuple[np.ndarray, np.ndarray]:
    """30 good and 20 defective images with overlapping raw scores around 400 and one tie across labels."""
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(30, dtype=int), np.ones(20, dtype=int)]
    scores = 400 + 35 * rng.normal(size=50) + 40 * labels
    scores[3] = scores[35]  # a good image scoring exactly like a defective one
    return labels, scores


def test_image_auroc_equals_scikit_learns(image_case):
    labels, scores = image_case
    assert image_metrics(labels, scores)["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)


def test_image_auroc_s_interval_equals_a_bootstrap_of_scikit_learn_s_auroc_resampling_each_label_apart(image_case):
    """The reference: scipy's bootstrap with the same resamples and seed over scikit-learn's AUROC of each resample
    (one at a time); a wrong statistic, level or resampling (both labels pooled) gives other bounds."""
    labels, scores = image_case
    anomalous, normal = scores[labels == 1], scores[labels == 0]

    def auroc(defective: np.ndarray, good: np.ndarray) -> float:
        return roc_auc_score(np.r_[np.ones(len(defective)), np.zeros(len(good))], np.r_[defective, good])

    reference = bootstrap(
        (anomalous, normal),
        auroc,
        n_resamples=AUROC_RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        vectorized=False,
        random_state=np.random.default_rng(AUROC_SEED),
    ).confidence_interval
    figures = image_metrics(labels, scores)
    assert (figures["image_auroc_low"], figures["image_auroc_high"]) == pytest.approx(
        (reference.low, reference.high), abs=1e-9
    )
    assert figures["image_auroc_low"] < figures["image_auroc"] < figures["image_auroc_high"]
    assert figures["image_auroc_high"] - figures["image_auroc_low"] > 0.1  # 20 defects pin an AUROC down loosely
    separated = image_metrics(labels, 1000.0 * labels + np.arange(50))
    assert (separated["image_auroc_low"], separated["image_auroc_high"]) == (1.0, 1.0)


def test_image_f1_is_the_maximum_over_the_precision_recall_curve(image_case):
    labels, scores = image_case
    expected_f1, _ = best_f1_and_threshold(labels, scores)
    assert image_metrics(labels, scores)["image_f1"] == pytest.approx(expected_f1, abs=1e-6)


def test_image_threshold_is_in_raw_score_units_and_gives_the_reported_f1(image_case):
    """The threshold decides `predicted_anomalous` on raw scores, so it must be a raw score, not a [0, 1] one."""
    labels, scores = image_case
    metrics = image_metrics(labels, scores)
    _, expected_threshold = best_f1_and_threshold(labels, scores)
    assert metrics["image_threshold"] == pytest.approx(expected_threshold, rel=1e-9)
    assert f1_score(labels, scores >= metrics["image_threshold"]) == pytest.approx(metrics["image_f1"], abs=1e-6)


def test_fpr_at_full_recall_counts_good_images_tied_with_the_lowest_defect_as_flagged():
    # Lowest defective score 50: flagging every defect flags the good images at 50 (a tie) and 70, not 10, 30, 49.9.
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    scores = np.array([10.0, 30.0, 50.0, 70.0, 49.9, 50.0, 90.0, 60.0])
    assert image_metrics(labels, scores)["fpr_at_full_recall"] == pytest.approx(2 / 5)


def test_fpr_at_full_recall_is_zero_when_every_defect_outscores_every_good_image():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([100.0, 200.0, 300.0, 300.5, 900.0])
    metrics = image_metrics(labels, scores)
    assert metrics["fpr_at_full_recall"] == 0.0
    assert metrics["image_auroc"] == pytest.approx(1.0)
    assert metrics["image_f1"] == pytest.approx(1.0)
    assert metrics["image_threshold"] == pytest.approx(300.5)  # the lowest score that separates them


def test_image_metrics_refuse_a_test_set_with_one_label():
    with pytest.raises(ValueError, match="both normal and anomalous"):
        image_metrics(np.zeros(4, dtype=int), np.arange(4.0))


@pytest.fixture
def pixel_case() -> tuple[np.ndarray, np.ndarray]:
    """Four 16x16 float32 maps in raw units around 1000, two of them with a defect region in the mask."""
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), dtype=bool)
    masks[1, 4:9, 4:9] = True
    masks[3, 10:14, 2:7] = True
    maps = (250 + 100 * (rng.gamma(2, 3, size=masks.shape) + 4 * masks)).astype(np.float32)
    return masks, maps


def test_pixel_auroc_equals_scikit_learns_on_the_flattened_maps(pixel_case):
    masks, maps = pixel_case
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_metrics(masks, maps)["pixel_auroc"] == pytest.approx(expected, abs=1e-5)


def test_pixel_f1_and_threshold_match_the_precision_recall_curve_in_raw_units(pixel_case):
    """The predicted masks are `map >= pixel_threshold`: that must give the reported pixel F1."""
    masks, maps = pixel_case
    metrics = pixel_metrics(masks, maps)
    expected_f1, expected_threshold = best_f1_and_threshold(masks.ravel(), maps.ravel())
    assert metrics["pixel_f1"] == pytest.approx(expected_f1, abs=1e-6)
    assert metrics["pixel_threshold"] == pytest.approx(expected_threshold, rel=1e-6)
    predicted = maps.ravel() >= metrics["pixel_threshold"]
    assert f1_score(masks.ravel(), predicted) == pytest.approx(metrics["pixel_f1"], abs=1e-6)


def test_without_masks_every_pixel_metric_is_none(pixel_case):
    _, maps = pixel_case
    assert pixel_metrics(None, maps) == dict.fromkeys(PIXEL_METRICS)
    assert set(PIXEL_METRICS) == {"pixel_auroc", "pixel_f1", "pixel_threshold", "aupro"}


@pytest.fixture
def anomaly_maps() -> tuple[np.ndarray, np.ndarray]:
    """Twelve 64x64 maps as a model draws them (smooth, defects scored higher but overlapping the acceptable
    pixels), eight of them with one to three defect regions of different sizes, and a share of maps rounded to a
    coarse step so that many pixels tie, defective and acceptable alike."""
    rng = np.random.default_rng(3)
    masks = np.zeros((12, 64, 64), dtype=bool)
    for index in range(8):
        for _ in range(1 + index % 3):
            row, column, size = rng.integers(2, 50), rng.integers(2, 50), rng.integers(2, 14)
            masks[index, row : row + size, column : column + size // 2 + 1] = True
    noise = rng.gamma(2, 1, size=masks.shape)
    smooth = (noise + np.roll(noise, 1, 1) + np.roll(noise, 1, 2) + np.roll(noise, -1, 2)) / 4
    maps = (17.5 + smooth + 1.2 * masks * rng.random(masks.shape)).astype(np.float32)
    maps[::3] = np.round(maps[::3] * 4) / 4
    return masks, maps


def test_the_pixel_metrics_from_one_sort_equal_anomalib_s_auroc_f1_max_and_aupro(anomaly_maps):
    masks, maps = anomaly_maps
    ours, anomalib = pixel_metrics(masks, maps), _anomalib_pixel_metrics(masks, maps)
    for name in ("pixel_auroc", "pixel_f1", "aupro"):
        assert ours[name] == pytest.approx(anomalib[name], abs=1e-4), name
    assert 0.2 < ours["aupro"] < 0.95 and 0.6 < ours["pixel_auroc"] < 0.95  # neither figure at an end of its range
    # The same pixels flagged at either threshold: the F1-optimal cut falls between the same two scores.
    assert ((maps >= ours["pixel_threshold"]) == (maps >= anomalib["pixel_threshold"])).all()


@pytest.mark.parametrize("fpr_limit", [0.05, 0.3, 0.8])
def test_aupro_from_one_sort_equals_anomalib_s_at_any_fpr_limit(anomaly_maps, fpr_limit):
    masks, maps = anomaly_maps
    metric = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=fpr_limit)
    metric.update(
        type("Batch", (), {"anomaly_map": torch.from_numpy(maps), "gt_mask": torch.from_numpy(masks).long()})()
    )
    order = PixelOrder.of(masks, maps)
    assert order is not None
    assert order.aupro(masks, fpr_limit) == pytest.approx(float(metric.compute()), abs=1e-4)


def test_masks_with_one_kind_of_pixel_keep_anomalib_s_own_answer(anomaly_maps):
    _, maps = anomaly_maps
    for masks in (np.zeros(maps.shape, dtype=bool), np.ones(maps.shape, dtype=bool)):
        assert PixelOrder.of(masks, maps) is None
        np.testing.assert_equal(pixel_metrics(masks, maps), _anomalib_pixel_metrics(masks, maps))
