"""Brightness and focus statistics of an image or a line's frame, by one rule each: imports, the synthetic plant and
the line watch all measure them here."""

from __future__ import annotations

import cv2
import numpy as np

OVEREXPOSED_PIXEL_SHARE = 0.02  # an image counts as over-exposed when this share of pixels is saturated
FULL_SCALE = 255


def clipped_share(gray: np.ndarray) -> float:
    """The share of an 8-bit grayscale image's pixels at full scale (255): light the camera did not record."""
    return float((gray == FULL_SCALE).mean())


def is_over_exposed(gray: np.ndarray) -> bool:
    """True when at least 2 % of an 8-bit grayscale image sits at full scale (255)."""
    return clipped_share(gray) >= OVEREXPOSED_PIXEL_SHARE


def sharpness(gray: np.ndarray) -> float:
    """The variance of the image's Laplacian over its squared mean grey level: it falls as the lens goes out of focus,
    and does not move with the light (doubling the light quadruples the Laplacian's variance, and the squared mean)."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var() / max(float(gray.mean()), 1.0) ** 2)
