"""DSR's registry entry beside its builder, which imports torch and anomalib only when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.building import IMAGE_256, UNTIL_CONVERGED, anomalib_builder, few_steps, lean, resize_only
from engine.models.registry import ModelEntry, register

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule


def _dsr(backbone: str, s: dict) -> AnomalibModule:
    from engine.models.dsr.model import LocalCodebookDsr

    return LocalCodebookDsr(**lean(backbone, s, resize_only(s)))


def _dsr_missing(backbone: str) -> str | None:
    """DSR needs its pretrained VQ codebook, imported with `gluelab weights import FILE --name dsr_vq`."""
    from engine.models.dsr.model import vq_weights_status

    return vq_weights_status()


ENTRY = register(
    ModelEntry(
        "dsr",
        "DSR",
        anomalib_builder(_dsr),
        {
            "cpu": {"image_size": [64, 64], **UNTIL_CONVERGED, "batch_size": 8, "epochs": 2, "batches_per_epoch": 3},
            "paper": {**IMAGE_256, "batch_size": 8, "epochs": 700},
        },
        deviations=lambda b, s: few_steps(s, "a DSR step at 128x128, batch 4, takes about 8 s on one CPU core"),
        missing=_dsr_missing,
    )
)
