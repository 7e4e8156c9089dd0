"""A rule-based bead check in the style of the plant's current camera system.

It segments the bead with one fixed grey-level threshold, measures the bead's width and centre in
every image column, and compares them with a template learned from the training images. A column
deviates when it is more than `TOLERANCE_SIGMAS` robust standard deviations from the template; the
image is rejected when `MIN_RUN_COLUMNS` neighbouring columns all deviate. The same rule serves
every part; only the template and its spreads are fitted per part. A fixed threshold is what makes
such systems raise false alarms when the lighting changes (study section 3.1).

Its template is column by column, so it works at one image size: the most common size of the
training images (`size_`). An image of any other size is resized to it first (area averaging when
shrinking, bilinear when enlarging), as a camera system's fixed region of interest would be, and
`other_sizes_` records which sizes were, so a run can say so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import minimum_filter1d
from skimage.filters import threshold_otsu

TOLERANCE_SIGMAS = 3.3  # set so part1 and part16 give the study's false-alarm ratio (docs/synthetic_plant.md)
MIN_RUN_COLUMNS = 5
SEARCH_BAND_PX = 15  # how far from the template bead the check looks (covers camera shake)
MIN_SPREAD_PX = 0.75  # floor on a column's fitted spread, so a perfectly steady column is not hair-trigger


@dataclass(frozen=True)
class LegacyResult:
    score: float  # deviation of the worst run of columns, in tolerances (> 1 means rejected)
    anomaly_map: np.ndarray  # float32 (H, W), per-pixel deviation in tolerances, on the search band


def most_common_size(images: list[np.ndarray]) -> tuple[int, int]:
    """(height, width) most images have; among equally common sizes, the largest."""
    counts = Counter(image.shape[:2] for image in images)
    return max(counts, key=lambda size: (counts[size], size[0] * size[1], size))


@dataclass
class LegacyInspector:
    """fit(train images) then score(image); images are uint8 grayscale, resized to `size_` where they differ."""

    size_: tuple[int, int] = (0, 0)  # (height, width) the check works at, set by `fit`
    other_sizes_: set[tuple[int, int]] = field(default_factory=set)  # sizes resized to `size_` so far

    def at_size(self, image: np.ndarray) -> np.ndarray:
        """`image` at the check's size: unchanged when it has that size, else resized and its size noted."""
        if image.shape[:2] == self.size_:
            return image
        self.other_sizes_.add(image.shape[:2])
        shrinking = image.shape[0] * image.shape[1] > self.size_[0] * self.size_[1]
        return cv2.resize(image, self.size_[::-1], interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def fit(self, images: list[np.ndarray]) -> LegacyInspector:
        if not images:
            raise ValueError("the legacy inspector needs at least one training image")
        self.size_ = most_common_size(images)
        images = [self.at_size(image) for image in images]
        median = np.median(np.stack(images), axis=0).astype(np.uint8)
        self.threshold_ = float(threshold_otsu(median))
        template = (median > self.threshold_).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SEARCH_BAND_PX + 1,) * 2)
        self.band_ = cv2.dilate(template, kernel).astype(bool)
        widths, centres = zip(*(self._measure(image) for image in images), strict=True)
        widths, centres = np.stack(widths), np.stack(centres)
        self.width_, self.centre_ = np.median(widths, axis=0), np.nanmedian(centres, axis=0)
        self.width_spread_ = np.maximum(1.4826 * np.median(np.abs(widths - self.width_), axis=0), MIN_SPREAD_PX)
        self.centre_spread_ = np.maximum(1.4826 * np.nanmedian(np.abs(centres - self.centre_), axis=0), MIN_SPREAD_PX)
        return self

    def _measure(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bead width (segmented pixels) and centre row in every column of the search band."""
        bead = (image > self.threshold_) & self.band_
        width = bead.sum(axis=0).astype(np.float32)
        rows = np.arange(image.shape[0], dtype=np.float32)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = (bead * rows).sum(axis=0) / width
        return width, centre

    def column_deviation(self, image: np.ndarray) -> np.ndarray:
        """Per column (at the check's size), the larger of width and centre deviation, in tolerances."""
        width, centre = self._measure(self.at_size(image))
        width_dev = np.abs(width - self.width_) / self.width_spread_
        centre_dev = np.nan_to_num(np.abs(centre - self.centre_) / self.centre_spread_, nan=0.0)
        return np.minimum(np.maximum(width_dev, centre_dev), 1e3) / TOLERANCE_SIGMAS

    def score(self, image: np.ndarray) -> LegacyResult:
        deviation = self.column_deviation(image)
        sustained = minimum_filter1d(deviation, MIN_RUN_COLUMNS, mode="nearest")
        anomaly_map = np.where(self.band_, deviation[None, :], 0.0).astype(np.float32)
        return LegacyResult(float(sustained.max()), anomaly_map)

    def predict(self, image: np.ndarray) -> bool:
        """True when the image is rejected (score over one tolerance)."""
        return self.score(image).score > 1.0
