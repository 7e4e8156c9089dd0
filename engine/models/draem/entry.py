"""DRAEM's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import IMAGE_256, UNTIL_CONVERGED, anomalib_builder, few_steps, lean, resize_only
from engine.models.registry import ModelEntry, nothing_missing, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _draem(backbone: str, s: dict) -> AnomalibModule:
    from anomalib.models import Draem

    from engine.models.sample_images import texture_folder

    return Draem(dtd_dir=texture_folder(), **lean(backbone, s, resize_only(s)))


ENTRY = register(
    ModelEntry(
        "draem",
        "DRAEM",
        anomalib_builder(_draem),
        {
            "cpu": {"image_size": [64, 64], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 1, "batches_per_epoch": 3},
            "paper": {**IMAGE_256, "batch_size": 8, "epochs": 700},
        },
        deviations=lambda b, s: (
            [
                "anomaly source textures: scikit-image's brick, grass and gravel, not the Describable Textures Dataset (a download)"
            ]
            + few_steps(s, "a DRAEM step at 256x256, batch 8, takes about two minutes on one CPU core")
        ),
        missing=nothing_missing,
    )
)
