"""EfficientAD's teacher as the paper builds it, a distilled PDN, from what this machine has.

The paper distils its teacher, anomalib's small patch description network (PDN: four unpadded
convolutions, 33x33-pixel receptive field, output at stride 4), from WideResNet-101 features on ImageNet.
Neither is available offline, so here the PDN is distilled once per part from the packaged backbone's
features on the part's own training images, as the model sees them (resized, values in [0, 1]):

    targets   T(x) = (F(x) - mu) / sigma,   F = the backbone teacher's stride-4 and stride-8 features on
              the PDN's output grid (`BackboneTeacher`), mu and sigma their per-channel mean and standard
              deviation over the image set (the paper's channel normalisation of the pretrained features);
    loss      L = mean over images, channels and positions of (PDN(x) - T(x))^2;
    training  `Distillation.steps` Adam steps on `batch_size` training images drawn at random, learning rate
              `lr`, x0.1 for the last 5 % of the steps; initialisation and draws seeded by `seed`, so the
              result does not depend on the job's seed.

The distilled weights are cached in `gluelab_home() / "teachers"`, one file per key: the sha256 of the backbone,
its weights file's content, the image set's content (the resized images' bytes), the input size and the
distillation settings. A second job on the same part and backbone loads the file instead of distilling.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from anomalib.models.image.efficient_ad.lightning_model import EfficientAd
from anomalib.models.image.efficient_ad.torch_model import SmallPatchDescriptionNetwork
from torch.utils.data import DataLoader

from engine.models.efficient_ad.model import LR_DROP_AT, BackboneTeacher
from engine.paths import gluelab_home, weights_dir

TARGET_BATCH = 8  # images per forward pass of the backbone while the targets are computed


@dataclass(frozen=True)
class Distillation:
    """How the PDN is distilled; every field is part of the cache key."""

    steps: int = 120
    batch_size: int = 1
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class DistilledTeacher:
    """A distilled PDN's weights, where they are cached, and whether this call distilled them."""

    state: dict[str, torch.Tensor]
    path: Path
    distilled_now: bool
    losses: list[float]  # loss of every step, as recorded when the teacher was distilled
    seconds: float  # time the distillation took, as recorded when it ran


def teachers_dir() -> Path:
    path = gluelab_home() / "teachers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def images_digest(images: torch.Tensor) -> str:
    """sha256 of the image set as the model sees it (float32 bytes, with its shape)."""
    hasher = hashlib.sha256(str(tuple(images.shape)).encode())
    hasher.update(images.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return hasher.hexdigest()


def teacher_key(source: BackboneTeacher, images: torch.Tensor, settings: Distillation) -> str:
    """The cache key: backbone, layers, weights content, image-set content, input size and distillation settings."""
    weights = weights_dir() / f"{source.backbone}.pth"
    parts = {
        "backbone": source.backbone,
        "layers": list(source.layers),
        "weights": _digest(weights) if weights.is_file() else "none",
        "images": images_digest(images),
        "input_size": list(images.shape[-2:]),
        "distillation": asdict(settings),
        "pdn": "small",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _targets(source: BackboneTeacher, images: torch.Tensor) -> torch.Tensor:
    """The backbone teacher's features of every image, standardised per channel over the set."""
    source.eval()
    with torch.no_grad():
        features = torch.cat([source(images[i : i + TARGET_BATCH]) for i in range(0, len(images), TARGET_BATCH)])
    mean = features.mean(dim=(0, 2, 3), keepdim=True)
    std = features.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (features - mean) / std


def distil(source: BackboneTeacher, images: torch.Tensor, settings: Distillation) -> tuple[dict, list[float]]:
    """A small PDN regressing `source`'s standardised features on `images`; its weights (on the CPU) and per-step
    losses. It trains on the images' device, from weights drawn on the CPU, so every device starts from the same."""
    targets = _targets(source, images)
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(settings.seed)
        pdn = SmallPatchDescriptionNetwork(out_channels=source.out_channels).train().to(images.device)
        draws = torch.Generator().manual_seed(settings.seed)
        optimizer = torch.optim.Adam(pdn.parameters(), lr=settings.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(int(LR_DROP_AT * settings.steps), 1), gamma=0.1
        )
        losses = []
        for _ in range(settings.steps):
            index = torch.randint(len(images), (min(settings.batch_size, len(images)),), generator=draws)
            loss = F.mse_loss(pdn(images[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    return {name: tensor.cpu() for name, tensor in pdn.state_dict().items()}, losses


def _save_atomically(payload: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: readers see the whole file or none."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def distilled_teacher(source: BackboneTeacher, images: torch.Tensor, settings: Distillation) -> DistilledTeacher:
    """The PDN distilled from `source` on `images`: from the cache when this key was distilled before."""
    path = teachers_dir() / f"pdn_{teacher_key(source, images, settings)}.pt"
    if path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return DistilledTeacher(payload["state"], path, False, payload["losses"], payload["seconds"])
    start = time.perf_counter()
    state, losses = distil(source, images, settings)
    seconds = time.perf_counter() - start
    _save_atomically({"state": state, "losses": losses, "seconds": seconds}, path)
    return DistilledTeacher(state, path, True, losses, seconds)


class PdnTeacherEfficientAd(EfficientAd):
    """EfficientAD whose teacher is a PDN distilled from `source` on the training images before first use.

    The teacher is distilled (or read from the cache) when its channel statistics are first taken, which is
    the first time the training images reach the model; until then it refuses to run.
    """

    def __init__(self, source: BackboneTeacher, distillation: Distillation, **kwargs):
        super().__init__(teacher_out_channels=source.out_channels, **kwargs)
        self.distillation = distillation
        self.__dict__["_source"] = source  # used once, to distil; kept out of the module's parameters
        self.distilled: DistilledTeacher | None = None
        self.model.teacher.requires_grad_(False)
        self.model.teacher.register_forward_pre_hook(self._refuse_before_distillation)

    def _apply(self, fn, recurse=True):
        """Moves and casts (`.to(device)`) reach the source teacher too: it distils on the model's device."""
        self.__dict__["_source"]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def _refuse_before_distillation(self, module, inputs) -> None:
        if self.distilled is None:
            raise RuntimeError("the PDN teacher is used before it was distilled on the training images")

    def prepare_pretrained_model(self) -> None:
        """Nothing to download: the teacher is distilled from the training images."""

    def teacher_channel_mean_std(self, dataloader: DataLoader) -> dict[str, torch.Tensor]:
        if self.distilled is None:
            images = torch.cat([batch.image for batch in dataloader])
            self.distilled = distilled_teacher(self.__dict__["_source"], images, self.distillation)
            self.model.teacher.load_state_dict(self.distilled.state)
            self.model.teacher.eval()
        return super().teacher_channel_mean_std(dataloader)
