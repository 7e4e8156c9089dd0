"""Reverse Distillation's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.names import STUDY_BACKBONES
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _reverse_distillation(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import ReverseDistillation

    from engine.models.reverse_distillation.model import AdaptedReverseDistillation

    model = ReverseDistillation if backbone in STUDY_BACKBONES else AdaptedReverseDistillation
    return model(backbone=backbone, layers=LAYERS[backbone], **lean(backbone, s))


def _reverse_distillation_deviations(backbone: str, s: dict) -> list[str]:
    adapted = "student: resnet18's bottleneck and decoder between learned 1x1 channel adapters (anomalib has them for ResNets only)"
    return ([] if backbone in STUDY_BACKBONES else [adapted]) + ["Adam beta2 0.99 (anomalib's) instead of 0.999"]


ENTRY = register(
    ModelEntry(
        "reverse_distillation",
        "ReverseDistillation",
        anomalib_builder(_reverse_distillation),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "epochs": 200},
            "paper": {**IMAGE_256, "batch_size": 16, "epochs": 200},
        },
        CNN_BACKBONES,
        deviations=_reverse_distillation_deviations,
        frozen_features=("encoder",),
    )
)
