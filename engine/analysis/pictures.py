"""Pictures made of a part's images and a run's kept heatmaps, as the dashboard and the decision report show them."""

from __future__ import annotations

import cv2
import numpy as np


def heat_overlay(gray: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """RGB picture of `gray` with the 8-bit `heatmap` (resized to it) blended on top in a jet colour map."""
    heat = cv2.resize(heatmap, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(cv2.addWeighted(base, 0.55, coloured, 0.45, 0), cv2.COLOR_BGR2RGB)
