"""FastFlow's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _fastflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.fastflow.model import TimmFastflow

    return TimmFastflow(backbone=backbone, conv3x3_only=True, **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "fastflow",
        "FastFlow",
        anomalib_builder(_fastflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 16, "epochs": 500},
            "paper": {**IMAGE_256, "epochs": 500},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "anomalib's FastFlow builds on a fixed backbone list; gluelab's subclass takes any timm CNN"
        ],
        frozen_features=("feature_extractor",),
    )
)
