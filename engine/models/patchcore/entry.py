"""PatchCore's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAYERS, anomalib_builder, lean
from engine.models.names import PACKAGED_BACKBONES
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _patchcore(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.patchcore.model import FastCoresetPatchcore

    return FastCoresetPatchcore(
        backbone=backbone,
        layers=LAYERS[backbone][1:3],
        coreset_sampling_ratio=s["coreset_sampling_ratio"],
        num_neighbors=s["num_neighbors"],
        **lean(backbone, s),
    )


ENTRY = register(
    ModelEntry(
        "patchcore",
        "PatchCore",
        anomalib_builder(_patchcore),
        {
            "cpu": {**IMAGE_256, "coreset_sampling_ratio": 0.01, "num_neighbors": 9},
            "paper": {**IMAGE_256, "coreset_sampling_ratio": 0.1, "num_neighbors": 9},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: (
            [
                "coreset chosen on the patch features themselves: anomalib's random projection would give"
                " EfficientNet-Lite's patches more dimensions (its Johnson-Lindenstrauss size, about 290), not fewer"
            ]
            if b in PACKAGED_BACKBONES
            else []
        ),
        frozen_features=("feature_extractor",),
    )
)
