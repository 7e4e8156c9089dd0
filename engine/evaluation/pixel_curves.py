"""Pixel AUROC, F1 at the F1-optimal threshold and AUPRO from one sort of the test maps' pixels.

anomalib's `AUROC`, `F1Max` and `AUPRO` each sort every pixel of the test set again (583 maps of 256 x 256 are 38
million pixels, about 23 s of a 110 s PaDiM run on 2 cores, with the copies they make to hold them). The three figures
are functions of one ordering, computed here exactly, from the defective pixels' scores and the acceptable pixels'
scores each sorted once (`numpy.sort`, which sorts float32 with the CPU's vector instructions):

- **AUROC** is the area under the ROC curve through every distinct score (as torchmetrics draws it), which equals the
  Mann-Whitney statistic over pairs: for every defective pixel, the acceptable pixels scored below it, and half of
  those scored the same, over the product of the two counts.
- **F1 at the F1-optimal threshold** (anomalib's `F1Max`): the precision-recall curve's F1 at every distinct score,
  `2 P R / (P + R + 1e-10)` as anomalib computes it, and its largest value; the threshold is the lowest score reaching
  it, as `F1Max` picks it from torchmetrics' ascending thresholds. Only defective pixels' scores need trying: from a
  defective score down to the next one, the threshold only adds acceptable pixels, which lowers precision at the same
  recall.
- **AUPRO** (anomalib's `AUPRO`, `fpr_limit` 0.3): the per-region overlap (the mean over connected defect regions,
  from anomalib's own `connected_components_cpu`, of each region's share of pixels at or above a threshold) against
  the false-positive rate over the acceptable pixels, through every distinct score; the area up to the limit by the
  trapezoid rule, the last segment cut at the limit by linear interpolation, over the limit. The rate only rises at
  a score some acceptable pixel has, by 1 / (acceptable pixels) for each pixel there, so the area is a sum over the
  acceptable pixels scored above the limit's score: each pixel's rise times the mean of the overlap just above its
  score and at it (the two differ only where a defective pixel ties with it).

Their results equal anomalib's within float32 rounding (`tests/test_metrics.py` holds them to 1e-4 on a set of maps).
A test set whose masks have no defective pixel, or nothing but, has no such curves: `PixelOrder.of` returns None for it
and the caller keeps anomalib's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from anomalib.utils.cv import connected_components_cpu


@dataclass(frozen=True)
class PixelOrder:
    """The test set's pixels, split by their mask and sorted: what every pixel figure here is computed from."""

    defective: np.ndarray  # scores of the masks' defective pixels, ascending
    acceptable: np.ndarray  # scores of the other pixels, ascending
    defective_order: np.ndarray  # the defective pixels' positions (in mask order) behind `defective`

    @classmethod
    def of(cls, masks: np.ndarray, maps: np.ndarray) -> PixelOrder | None:
        """None when the masks hold only one kind of pixel."""
        scores = np.asarray(maps, dtype=np.float32).reshape(-1)
        truth = np.asarray(masks).reshape(-1) > 0
        defective = scores[truth]
        if defective.size in (0, scores.size):
            return None
        order = np.argsort(defective, kind="stable")
        return cls(defective[order], np.sort(scores[~truth]), order)

    def auroc(self) -> float:
        below = np.searchsorted(self.acceptable, self.defective, side="left")
        at_or_below = np.searchsorted(self.acceptable, self.defective, side="right")
        pairs = float(self.defective.size) * float(self.acceptable.size)
        return float((below.sum(dtype=np.float64) + 0.5 * (at_or_below - below).sum(dtype=np.float64)) / pairs)

    def f1_max(self) -> tuple[float, float]:
        """The largest F1 over thresholds and the lowest threshold reaching it."""
        thresholds = np.unique(self.defective)  # ascending
        found = self.defective.size - np.searchsorted(self.defective, thresholds, side="left")
        flagged = found + self.acceptable.size - np.searchsorted(self.acceptable, thresholds, side="left")
        precision, recall = found / flagged, found / self.defective.size
        f1 = 2 * precision * recall / (precision + recall + 1e-10)
        best = int(np.argmax(f1))
        return float(f1[best]), float(thresholds[best])

    def aupro(self, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
        regions = connected_components_cpu(torch.from_numpy(np.asarray(masks) > 0).float().unsqueeze(1))
        labels = regions.reshape(-1).numpy().astype(np.int64)
        labels = labels[labels > 0]  # the defective pixels, in mask order
        sizes = np.bincount(labels)
        weights = (1.0 / sizes[labels])[self.defective_order] / np.count_nonzero(sizes)  # ascending score order
        overlap = np.minimum(np.concatenate([[0.0], np.cumsum(weights[::-1])]), 1.0)  # of the k highest-scored
        total, defective = self.acceptable.size, self.defective.size
        # The acceptable score at which the rate crosses the limit, and how many acceptable pixels score above it
        # and at least it: the segment of the curve that the limit cuts.
        crossing = self.acceptable[max(total - 1 - int(fpr_limit * total), 0)]
        above = total - int(np.searchsorted(self.acceptable, crossing, "right"))
        at_least = total - int(np.searchsorted(self.acceptable, crossing, "left"))
        # Every acceptable pixel above it raises the rate by 1 / total, while the overlap goes from what the
        # defective pixels above its score cover to what those at or above it cover (the two differ only on a tie).
        head = self.acceptable[total - above :]  # ascending
        over = defective - np.cumsum(np.bincount(np.searchsorted(head, self.defective, "left"), minlength=above + 1))
        at_or_over = defective - np.cumsum(
            np.bincount(np.searchsorted(head, self.defective, "right"), minlength=above + 1)
        )
        area = float((overlap[over[:above]].sum() + overlap[at_or_over[:above]].sum()) / (2 * total))
        before = overlap[defective - int(np.searchsorted(self.defective, crossing, "right"))]
        after = overlap[defective - int(np.searchsorted(self.defective, crossing, "left"))]
        rate_before, rate_after = above / total, at_least / total
        if rate_after <= fpr_limit:  # the whole curve lies within the limit
            return (area + (rate_after - rate_before) * (before + after) / 2) / rate_after
        if rate_before < fpr_limit:  # the last segment, cut at the limit by linear interpolation
            at_limit = before + (after - before) * (fpr_limit - rate_before) / (rate_after - rate_before)
            area += (fpr_limit - rate_before) * (before + at_limit) / 2
        return area / fpr_limit
