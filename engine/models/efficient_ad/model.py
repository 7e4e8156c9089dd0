"""EfficientAD without downloads: a teacher from a timm backbone, scikit-image photos as penalty set.

The study's EfficientAD uses a PDN teacher distilled from WideResNet-101 on ImageNet and ImageNet
(imagenette) images for the student's penalty loss; both are downloads. Here the teacher is the
backbone's stride-4 and stride-8 features (frozen, resized to the student's output grid), or a PDN
distilled from them on the part's training images (`engine.models.efficient_ad.pdn_teacher`), and the
penalty images are the natural photos that ship with scikit-image. anomalib's student, autoencoder,
losses and scoring are unchanged; the training loop replaces the Lightning hooks that need a Trainer.
"""

from __future__ import annotations

from itertools import islice

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from anomalib.models.components import TimmFeatureExtractor
from anomalib.models.image.efficient_ad.lightning_model import EfficientAd
from torch import nn
from torch.utils.data import DataLoader

from engine.models.anomalib_detector import AnomalibDetector, TrainImages
from engine.models.training import TrainingClock

LR_DROP_AT = 0.95  # anomalib's schedule: learning rate x 0.1 after 95 % of the steps


class BackboneTeacher(nn.Module):
    """Frozen timm features at strides 4 and 8, concatenated on the student's output grid."""

    def __init__(self, backbone: str, layers: tuple[str, str], mean: tuple, std: tuple):
        super().__init__()
        self.backbone, self.layers = backbone, layers
        self.features = TimmFeatureExtractor(backbone, layers=list(layers)).eval()
        self.out_channels = sum(self.features.out_dims)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        grid = (height // 4 - 8, width // 4 - 8)  # the unpadded PDN student's output size
        maps = self.features((images - self.mean) / self.std).values()
        return torch.cat([F.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in maps], dim=1)


class BackboneTeacherEfficientAd(EfficientAd):
    def __init__(self, teacher: BackboneTeacher, **kwargs):
        super().__init__(teacher_out_channels=teacher.out_channels, **kwargs)
        self.model.teacher = teacher

    def prepare_pretrained_model(self) -> None:
        """Nothing to download: the teacher is already pretrained."""


class EfficientAdDetector(AnomalibDetector):
    """Teacher statistics, then single-image steps epoch by epoch until the clock stops training, then map
    quantiles from the training images.

    An epoch is one pass over the training images in a fresh order (`batches_per_epoch` caps it). The learning
    rate drops ten-fold at 95 % of the epoch cap, as anomalib drops it at 95 % of its steps.
    """

    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        module = self.module
        module.prepare_imagenette_data(self.input_size)
        unaugmented = TrainImages(train, None, self.transform)  # pre-processed once, kept for every pass below
        plain = DataLoader(unaugmented, batch_size=1, collate_fn=self.collate)
        with torch.no_grad():
            module.model.mean_std.update(module.teacher_channel_mean_std(plain))
        clock = TrainingClock(self.settings, self.report)
        optimizer = torch.optim.Adam(
            [*module.model.student.parameters(), *module.model.ae.parameters()],
            lr=module.lr,
            weight_decay=module.weight_decay,
        )
        steps_per_epoch = min(len(train), self.settings.get("batches_per_epoch") or len(train))
        drop_at = max(int(LR_DROP_AT * clock.epoch_cap * steps_per_epoch), 1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=drop_at, gamma=0.1)
        images = unaugmented if augment is None else TrainImages(train, augment, self.transform)
        shuffled = DataLoader(
            images,
            batch_size=1,
            shuffle=True,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(torch.initial_seed()),
        )
        module.train()
        for epoch in range(clock.epoch_cap):
            images.set_epoch(epoch)
            total = 0.0
            for batch in islice(shuffled, steps_per_epoch):
                loss = module.training_step(batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += float(loss.detach())
            if clock.epoch_done(total / steps_per_epoch):
                break
        self.training = clock.record()
        module.model.eval()
        module.model.quantiles.update(module.map_norm_quantiles(plain))
