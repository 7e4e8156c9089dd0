"""CFlow's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, IMAGE_256, LAST_STAGE, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _cflow(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Cflow

    coarsest = (s["image_size"][0] // 32) * (s["image_size"][1] // 32)
    if s["fiber_batch_size"] > coarsest:  # CFlow refuses a batch with fewer positions than one fibre batch
        raise ValueError(
            f"fiber_batch_size {s['fiber_batch_size']} is larger than one image's {coarsest} stride-32 positions"
        )
    return Cflow(
        backbone=backbone,
        layers=[*LAYERS[backbone][1:], LAST_STAGE[backbone]],
        fiber_batch_size=s["fiber_batch_size"],
        coupling_blocks=s["coupling_blocks"],
        **lean(backbone, s),
    )


ENTRY = register(
    ModelEntry(
        "cflow",
        "CFlow",
        anomalib_builder(_cflow),
        {
            "cpu": {
                **IMAGE_256,
                **UNTIL_CONVERGED,
                "batch_size": 8,
                "fiber_batch_size": 64,
                "coupling_blocks": 4,
                "epochs": 50,
            },
            "paper": {**IMAGE_256, "batch_size": 16, "fiber_batch_size": 64, "coupling_blocks": 8, "epochs": 50},
        },
        CNN_BACKBONES,
        frozen_features=("encoder",),
    )
)
