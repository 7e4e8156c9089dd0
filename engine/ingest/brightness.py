"""Brightness statistics recorded for every image, synthetic or imported, by one rule."""

from __future__ import annotations

import numpy as np

OVEREXPOSED_PIXEL_SHARE = 0.02  # an image counts as over-exposed when this share of pixels is saturated


def is_over_exposed(gray: np.ndarray) -> bool:
    """True when at least 2 % of an 8-bit grayscale image sits at full scale (255)."""
    return bool((gray == 255).mean() >= OVEREXPOSED_PIXEL_SHARE)
