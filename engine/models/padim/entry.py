"""PaDiM's registry entry: its presets, the backbones it takes, how it departs from the study's setup, and
its builder. Importable without torch: the builder imports torch and anomalib when the model is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import (
    CNN_BACKBONES,
    IMAGE_256,
    LAYERS,
    anomalib_builder,
    lean,
)
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _padim(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.padim.model import BatchedPadim

    return BatchedPadim(
        backbone=backbone,
        layers=list(LAYERS[backbone][: s["n_layers"]]),
        n_features=s["n_features"],
        **lean(backbone, s),
    )


ENTRY = register(
    ModelEntry(
        "padim",
        "PaDiM",
        anomalib_builder(_padim),
        {
            "cpu": {**IMAGE_256, "n_layers": 3, "n_features": 100},
            "paper": {**IMAGE_256, "n_layers": 3, "n_features": 100},
        },
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
    )
)
