"""The interface every model offers the evaluation runner."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import albumentations as A
import numpy as np

if TYPE_CHECKING:
    from engine.models.feature_cache import FeatureCache
    from store.runs import Training


@dataclass(frozen=True)
class Prediction:
    scores: np.ndarray  # (N,) image anomaly scores, higher = more anomalous
    maps: np.ndarray | None  # (N, h, w) float32 anomaly maps at the evaluation resolution; None if the model has none

    def followed_by(self, later: Prediction) -> Prediction:
        """This prediction's images, then `later`'s."""
        maps = None if self.maps is None or later.maps is None else np.concatenate([self.maps, later.maps])
        return Prediction(np.concatenate([self.scores, later.scores]), maps)


class Detector(ABC):
    """A model configured for one job: fit on a part's normal images, then score images."""

    training: Training | None = None  # set by `fit` for models trained by gradient descent
    report: Callable[[str], None] | None = None  # told how training is going, now and then

    def cached_features(self, cache: FeatureCache | None) -> AbstractContextManager[None]:
        """A block in which the model's frozen feature extractors read and fill `cache` (none by default)."""
        return nullcontext()

    def frozen_modules(self) -> list:
        """The frozen feature modules (torch) whose forward passes are the backbone's share of a run's time, as they
        are now (inside `cached_features`: the cache's wrappers); none by default."""
        return []

    def to(self, device: str) -> str:
        """Compute on `device` (`cpu` or `cuda:N`) where this model can; returns the device it will use.
        Models without torch run on the CPU whatever is asked."""
        return "cpu"

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
