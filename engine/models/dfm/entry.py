"""DFM's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _dfm(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfm

    return Dfm(
        backbone=backbone,
        layer=LAYERS[backbone][2],
        pooling_kernel_size=2,
        pca_level=s["pca_level"],
        score_type="fre",
        **lean(backbone, s),
    )


ENTRY = register(
    ModelEntry(
        "dfm",
        "DFM",
        anomalib_builder(_dfm),
        {"cpu": {**IMAGE_256, "pca_level": 0.97}, "paper": {**IMAGE_256, "pca_level": 0.97}},
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
    )
)
