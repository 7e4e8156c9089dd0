"""DFKDE's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAST_STAGE, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule

PCA_COMPONENTS = 16


def _dfkde(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Dfkde

    return Dfkde(backbone=backbone, layers=[LAST_STAGE[backbone]], n_pca_components=PCA_COMPONENTS, **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "dfkde",
        "DFKDE",
        anomalib_builder(_dfkde),
        {"cpu": {**IMAGE_256}, "paper": {**IMAGE_256}},
        CNN_BACKBONES,
        frozen_features=("feature_extractor",),
        min_train_images=PCA_COMPONENTS,  # its PCA takes at least one image per component
    )
)
