"""GANomaly's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import IMAGE_256, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, nothing_missing, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _ganomaly(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Ganomaly

    return Ganomaly(batch_size=s["batch_size"], **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "ganomaly",
        "GANomaly",
        anomalib_builder(_ganomaly),
        {
            "cpu": {"image_size": [128, 128], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 100},
            "paper": {**IMAGE_256, "epochs": 100},
        },
        missing=nothing_missing,
    )
)
