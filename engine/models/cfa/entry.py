"""CFA's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _cfa(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.cfa.model import TimmCfa

    return TimmCfa(backbone, LAYERS[backbone], **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "cfa",
        "CFA",
        anomalib_builder(_cfa),
        {
            "cpu": {"image_size": [160, 160], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 30},
            "paper": {"image_size": [224, 224], "batch_size": 4, "epochs": 30},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "features through timm's feature extractor, not anomalib's torchvision models (a download)"
        ],
        frozen_features=("feature_extractor",),
    )
)
