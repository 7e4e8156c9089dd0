"""The rule-based legacy bead check (`engine.models.legacy.inspector`) as a Detector, the baseline every model must beat."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from engine.models.base import Detector, Prediction
from engine.models.legacy.inspector import MIN_RUN_COLUMNS, SEARCH_BAND_PX, TOLERANCE_SIGMAS, LegacyInspector

MAP_SIZE = (256, 256)  # (h, w) at which its pixel maps are evaluated, like the learned models'


class LegacyDetector(Detector):
    def __init__(self) -> None:
        self.inspector = LegacyInspector()

    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        if augment is not None:
            train = [augment(image=cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))["image"][..., 0] for image in train]
        self.inspector.fit(train)

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        results = [self.inspector.score(image) for image in images]
        maps = [cv2.resize(r.anomaly_map, MAP_SIZE[::-1], interpolation=cv2.INTER_AREA) for r in results]
        return Prediction(np.array([r.score for r in results]), np.stack(maps).astype(np.float32))

    def resize_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.stack(
            [cv2.resize(m.astype(np.uint8), MAP_SIZE[::-1], interpolation=cv2.INTER_NEAREST) > 0 for m in masks]
        )

    @property
    def config(self) -> dict:
        return {
            "model": "legacy",
            "tolerance_sigmas": TOLERANCE_SIGMAS,
            "min_run_columns": MIN_RUN_COLUMNS,
            "search_band_px": SEARCH_BAND_PX,
            "input_size": list(self.inspector.size_),
            "map_size": list(MAP_SIZE),
            "deviations": ["not in the study: a rule-based stand-in for the plant's existing camera check"]
            + self._resize_deviation(),
        }

    def _resize_deviation(self) -> list[str]:
        others = sorted(self.inspector.other_sizes_, key=lambda size: (size[0] * size[1], size))
        if not others:
            return []
        height, width = self.inspector.size_
        listed = ", ".join(f"{w}x{h}" for h, w in others)
        return [
            f"the part's images differ in size: the rule-based check compares image columns at one size, so images"
            f" of {listed} were resized to {width}x{height} (its training images' most common size) before it"
        ]
