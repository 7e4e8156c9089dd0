"""The interface every model offers the evaluation runner."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import albumentations as A
import numpy as np


@dataclass(frozen=True)
class Prediction:
    scores: np.ndarray  # (N,) image anomaly scores, higher = more anomalous
    maps: np.ndarray | None  # (N, h, w) float32 anomaly maps at the evaluation resolution; None if the model has none


class Detector(ABC):
    """A model configured for one job: fit on a part's normal images, then score images."""

    @abstractmethod
    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        """Learn from 8-bit grayscale training images; `augment` (RGB uint8) is applied when given."""

    @abstractmethod
    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        """Score 8-bit grayscale images."""

    @abstractmethod
    def resize_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        """Ground-truth masks at the resolution of this model's anomaly maps, (N, h, w) bool."""

    @property
    @abstractmethod
    def config(self) -> dict:
        """Everything needed to reproduce the run, including deviations from the paper's setup."""
