"""Run metrics, as anomalib evaluates them: image figures by its own metric classes, pixel figures from one sort of
the pixels (`engine.evaluation.pixel_curves`), equal to its classes' within float32 rounding.

Image level: AUROC, F1 at the F1-optimal threshold (and that threshold), and the false-positive
rate at zero escapes (the share of good images flagged at the highest threshold that still flags
every defective image: the false alarms a plant must accept to miss nothing), and image AUROC's 95 % interval over
the test images (`auroc_interval`: how far the test split pins the figure down). Pixel level, when the
dataset has masks: AUROC, F1 at the F1-optimal threshold (and that threshold), AUPRO (FPR limit 0.3), all from one sort
of the pixels (`engine.evaluation.pixel_curves`, equal to anomalib's classes within float32 rounding).
Names, labels and directions are defined in `store.metrics`; the computations are here.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from anomalib.metrics import AUPRO, AUROC, F1Max
from scipy.stats import bootstrap, mannwhitneyu

from engine.evaluation.pixel_curves import PixelOrder
from engine.evaluation.stage_clock import StageClock
from store.metrics import names

# What each function below returns, as the metric registry lists them (its one definition of each metric).
IMAGE_METRICS = names("image")
PIXEL_METRICS = names("pixel")
AUPRO_FPR_LIMIT = 0.3


def _compute(metric, **fields) -> float:
    metric.update(SimpleNamespace(**{name: torch.as_tensor(value) for name, value in fields.items()}))
    return float(metric.compute())


def _unit_range(values: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Scale to [0, 1] (order kept): torchmetrics reads values outside [0, 1] as logits and squashes them."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / max(high - low, 1e-12), low, high


def _f1_max(fields: dict) -> tuple[float, float]:
    """F1 at the F1-optimal threshold, and that threshold: one precision-recall curve gives both.

    anomalib's F1Max keeps the threshold it found; its F1AdaptiveThreshold computes the same curve again.
    """
    metric = F1Max(fields=list(fields))
    return _compute(metric, **fields), float(metric.threshold)


def _raw_threshold(raw: torch.Tensor, unit: torch.Tensor, threshold: float) -> float:
    """The lowest raw value whose rescaled value reaches `threshold`, so `raw >= it` flags what `unit >= threshold` does.

    Scaling the threshold back arithmetically can land a rounding step above that value (float32 maps), and
    `map >= threshold` would then drop the pixels the F1 was computed with.
    """
    return float(raw[unit >= threshold].min())


AUROC_RESAMPLES = 2000  # bootstrap resamples of the test images behind image AUROC's interval
AUROC_CONFIDENCE = 0.95
AUROC_SEED = 0  # the interval of one score set is the same every time it is computed


def auroc_interval(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of image AUROC over the test images (`scipy.stats.bootstrap`,
    `AUROC_RESAMPLES` resamples, seeded): the defective and the acceptable images are resampled apart, so each
    resample keeps the split's counts of both, and each resample's AUROC is the Mann-Whitney U of the defective
    scores against the acceptable ones over their pairs (`scipy.stats.mannwhitneyu`; ties count a half, as AUROC
    counts them)."""
    anomalous, normal = np.asarray(scores[labels == 1], float), np.asarray(scores[labels == 0], float)

    def auroc(defective: np.ndarray, good: np.ndarray, axis: int = -1) -> np.ndarray:
        pairs = defective.shape[axis] * good.shape[axis]
        return mannwhitneyu(defective, good, axis=axis, method="asymptotic").statistic / pairs

    result = bootstrap(
        (anomalous, normal),
        auroc,
        n_resamples=AUROC_RESAMPLES,
        confidence_level=AUROC_CONFIDENCE,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(AUROC_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def image_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Image-level metrics; `labels` 1 = anomalous."""
    if len(set(labels.tolist())) < 2:
        raise ValueError("image metrics need both normal and anomalous test images")
    raw = torch.as_tensor(scores, dtype=torch.float64)
    unit, _, _ = _unit_range(raw)
    fields = {"pred_score": unit, "gt_label": torch.as_tensor(labels)}
    f1, threshold = _f1_max(fields)
    low, high = auroc_interval(labels, scores)
    return {
        "image_auroc": _compute(AUROC(fields=list(fields)), **fields),
        "image_f1": f1,
        "image_threshold": _raw_threshold(raw, unit, threshold),
        "fpr_at_full_recall": float((scores[labels == 0] >= scores[labels == 1].min()).mean()),
        "image_auroc_low": low,
        "image_auroc_high": high,
    }


def pixel_metrics(
    masks: np.ndarray | None, maps: np.ndarray | None, clock: StageClock | None = None
) -> dict[str, float | None]:
    """Pixel-level metrics over all test images; None for every metric when there are no masks or no maps. With a
    `clock`, AUROC, F1 and threshold are timed as stage `pixel_metrics`, AUPRO as `aupro`."""
    if masks is None or maps is None:
        return dict.fromkeys(PIXEL_METRICS)
    clock = clock or StageClock()
    with clock.stage("pixel_metrics"):
        order = PixelOrder.of(masks, maps)
        if order is None:  # one kind of pixel only: anomalib's own answer for such a set
            return _anomalib_pixel_metrics(masks, maps)
        f1, threshold = order.f1_max()
        figures: dict[str, float | None] = {"pixel_auroc": order.auroc(), "pixel_f1": f1, "pixel_threshold": threshold}
    with clock.stage("aupro"):
        return figures | {"aupro": order.aupro(masks, AUPRO_FPR_LIMIT)}


def _anomalib_pixel_metrics(masks: np.ndarray, maps: np.ndarray) -> dict[str, float | None]:
    """The pixel metrics by anomalib's metric classes, each sorting every pixel again (`engine.evaluation.pixel_curves`
    computes the same figures from one sort)."""
    raw = torch.as_tensor(maps, dtype=torch.float32)
    unit, _, _ = _unit_range(raw)
    fields = {"anomaly_map": unit, "gt_mask": torch.as_tensor(masks).to(torch.int64)}
    f1, threshold = _f1_max(fields)
    return {
        "pixel_auroc": _compute(AUROC(fields=list(fields)), **fields),
        "pixel_f1": f1,
        "pixel_threshold": _raw_threshold(raw, unit, threshold),
        "aupro": _compute(AUPRO(fields=list(fields), fpr_limit=AUPRO_FPR_LIMIT), **fields),
    }
