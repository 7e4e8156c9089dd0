"""SuperSimpleNet's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import CNN_BACKBONES, LAYERS, UNTIL_CONVERGED, anomalib_builder, lean
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _supersimplenet(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Supersimplenet

    return Supersimplenet(backbone=backbone, layers=list(LAYERS[backbone][1:]), **lean(backbone, s))


ENTRY = register(
    ModelEntry(
        "supersimplenet",
        "SuperSimpleNet",
        anomalib_builder(_supersimplenet),
        {
            "cpu": {"image_size": [128, 128], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 300},
            "paper": {"image_size": [288, 288], "batch_size": 8, "epochs": 300},
        },
        CNN_BACKBONES,
        deviations=lambda b, s: [
            "SuperSimpleNet (anomalib) stands in for SimpleNet; the paper preset trains the 300 epochs its authors recommend"
        ],
    )
)
