"""DSR with its pretrained VQ codebook from gluelab's weights folder, never downloaded.

DSR's discrete latent model (a VQ-VAE codebook trained on ImageNet) is not learned during a run:
anomalib loads `vq_model_pretrained_128_4096.pckl`, downloading it when it is not in its cache, and has
no code to train it. gluelab takes that file through `gluelab weights import FILE --name dsr_vq`,
checks it against the model and keeps it in `weights_dir()`; until then DSR is listed as not runnable.
"""

from __future__ import annotations

import os
from pathlib import Path

from anomalib.models.image.dsr.lightning_model import Dsr
from anomalib.models.image.dsr.torch_model import DsrModel

from engine.models.checkpoints import import_state_dict
from engine.paths import weights_dir

VQ_WEIGHTS = "dsr_vq"  # the --name of `gluelab weights import`
VQ_SOURCE = (
    "vq_model_pretrained_128_4096.pckl, inside https://github.com/open-edge-platform/anomalib/releases/download/"
    "dsr_pretrained_weights/dsr_vq_model_pretrained.zip"
)


def vq_weights_file() -> Path:
    return weights_dir() / f"{VQ_WEIGHTS}.pth"


def vq_weights_status() -> str | None:
    """None when DSR's codebook has been imported, otherwise how to import it."""
    if vq_weights_file().is_file():
        return None
    return (
        "DSR's pretrained VQ codebook is not on this machine (gluelab never downloads weights). "
        f"Get {VQ_SOURCE} on a connected machine, copy the .pckl file to this one and run: "
        f"gluelab weights import FILE --name {VQ_WEIGHTS}"
    )


def import_vq_weights(file: str | os.PathLike[str]) -> Path:
    """Check `file` against DSR's discrete latent model and store it; ValueError names the first problem."""
    expected = DsrModel().discrete_latent_model.state_dict()
    return import_state_dict(Path(file), expected, vq_weights_file(), "DSR's discrete latent model")


class LocalCodebookDsr(Dsr):
    @staticmethod
    def prepare_pretrained_model() -> Path:
        """The imported codebook instead of anomalib's cache or download."""
        problem = vq_weights_status()
        if problem:
            raise FileNotFoundError(problem)
        return vq_weights_file()
