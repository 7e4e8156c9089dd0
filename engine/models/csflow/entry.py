"""CS-Flow's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import IMAGE_256, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.names import PACKAGED_BACKBONES
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


CSFLOW_BACKBONES = PACKAGED_BACKBONES + ("tf_efficientnet_b5",)  # CS-Flow reads an EfficientNet's sixth stage


def _csflow(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.csflow.model import TimmCsflow

    return TimmCsflow(backbone, cross_conv_hidden_channels=s["cross_conv_hidden_channels"], **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "csflow",
        "CSFlow",
        anomalib_builder(_csflow),
        {
            "cpu": {**IMAGE_256, **UNTIL_CONVERGED, "batch_size": 8, "cross_conv_hidden_channels": 256, "epochs": 240},
            "paper": {"image_size": [768, 768], "batch_size": 16, "cross_conv_hidden_channels": 1024, "epochs": 240},
        },
        CSFLOW_BACKBONES,
        deviations=lambda b, s: [
            f"features from timm's {b} cut after its sixth stage, not torchvision's efficientnet_b5 features.6.8 (a download)"
        ],
        paper_backbone="EfficientNet-B5",
        frozen_features=("feature_extractor.trunk",),
    )
)
