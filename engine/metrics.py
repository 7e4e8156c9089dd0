"""Run metrics, computed with anomalib's own metric classes so figures match anomalib's evaluation.

Image level: AUROC, F1 at the F1-optimal threshold (and that threshold), and the false-positive
rate at zero escapes (the share of good images flagged at the highest threshold that still flags
every defective image: the false alarms a plant must accept to miss nothing). Pixel level, when the
dataset has masks: AUROC, F1 at the F1-optimal threshold (and that threshold), AUPRO (FPR limit 0.3).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from anomalib.metrics import AUPRO, AUROC, F1AdaptiveThreshold, F1Max

IMAGE_METRICS = ("image_auroc", "image_f1", "image_threshold", "fpr_at_full_recall")
PIXEL_METRICS = ("pixel_auroc", "pixel_f1", "pixel_threshold", "aupro")


def _compute(metric, **fields) -> float:
    metric.update(SimpleNamespace(**{name: torch.as_tensor(value) for name, value in fields.items()}))
    return float(metric.compute())


def image_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Image-level metrics; `labels` 1 = anomalous."""
    if len(set(labels.tolist())) < 2:
        raise ValueError("image metrics need both normal and anomalous test images")
    scores = scores.astype(np.float64)
    threshold = _compute(F1AdaptiveThreshold(fields=["pred_score", "gt_label"]), pred_score=scores, gt_label=labels)
    lowest_defect_score = scores[labels == 1].min()
    return {
        "image_auroc": _compute(AUROC(fields=["pred_score", "gt_label"]), pred_score=scores, gt_label=labels),
        "image_f1": _compute(F1Max(fields=["pred_score", "gt_label"]), pred_score=scores, gt_label=labels),
        "image_threshold": threshold,
        "fpr_at_full_recall": float((scores[labels == 0] >= lowest_defect_score).mean()),
    }


def pixel_metrics(masks: np.ndarray | None, maps: np.ndarray) -> dict[str, float | None]:
    """Pixel-level metrics over all test images; None for every metric when there are no masks."""
    if masks is None:
        return dict.fromkeys(PIXEL_METRICS)
    maps_t = torch.as_tensor(maps, dtype=torch.float32)
    masks_t = torch.as_tensor(masks).to(torch.int64)
    return {
        "pixel_auroc": _compute(AUROC(fields=["anomaly_map", "gt_mask"]), anomaly_map=maps_t, gt_mask=masks_t),
        "pixel_f1": _compute(F1Max(fields=["anomaly_map", "gt_mask"]), anomaly_map=maps_t, gt_mask=masks_t),
        "pixel_threshold": _compute(F1AdaptiveThreshold(fields=["anomaly_map", "gt_mask"]), anomaly_map=maps_t, gt_mask=masks_t),
        "aupro": _compute(AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.3), anomaly_map=maps_t, gt_mask=masks_t),
    }
