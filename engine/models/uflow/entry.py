"""U-Flow's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.names import STUDY_BACKBONES
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _uflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.uflow.model import TimmUflow

    return TimmUflow(backbone, LAYERS[backbone], **lean(backbone, s))


def _uflow_deviations(backbone: str, s: dict) -> list[str]:
    if backbone in STUDY_BACKBONES:
        return []
    return [
        "anomalib's U-Flow takes mcait, resnet18 or wide_resnet50_2; gluelab's subclass builds it on any timm CNN's stages"
    ]


ENTRY = register(
    ModelEntry(
        "uflow",
        "UFlow",
        anomalib_builder(_uflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 200},
            "paper": {**IMAGE_256, "batch_size": 16, "epochs": 200},
        },
        CNN_BACKBONES,
        deviations=_uflow_deviations,
        frozen_features=("feature_extractor.feature_extractor",),
    )
)
