"""PaDiM's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, anomalib_builder, lean
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
