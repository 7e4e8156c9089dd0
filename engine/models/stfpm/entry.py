"""STFPM's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _stfpm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Stfpm

    return Stfpm(backbone=backbone, layers=LAYERS[backbone], **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "stfpm",
        "STFPM",
        anomalib_builder(_stfpm),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 100},
            "paper": {**IMAGE_256, "epochs": 100},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: ["SGD weight decay 1e-3 as anomalib sets it, not the paper's 1e-4"],
        frozen_features=("teacher_model",),
    )
)
