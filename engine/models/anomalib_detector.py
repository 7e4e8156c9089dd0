"""Any anomalib image model as a Detector, without anomalib's Engine and its per-image overhead.

Images go through the model's own pre-processor transform (resize, normalise) exactly as anomalib
applies it, so scores match anomalib's. Memory-bank models (PaDiM, PatchCore, DFM, DFKDE) collect
features in one pass and fit; models trained by gradient descent run a plain loop over the model's
own training_step and optimiser (no Trainer, logger, checkpoints or validation). Inference calls
the torch model directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from anomalib.data import ImageBatch, ImageItem
from anomalib.models.components import AnomalibModule, MemoryBankMixin
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import resize

from engine.models.base import Detector, Prediction


def to_tensor(gray: np.ndarray) -> torch.Tensor:
    """8-bit grayscale (H, W) -> float RGB (3, H, W) in [0, 1], as anomalib reads an image file."""
    return torch.as_tensor(gray, dtype=torch.float32).div_(255).expand(3, -1, -1)


class TrainImages(Dataset):
    """Training images as anomalib items; augmented afresh on every access when `augment` is given."""

    def __init__(self, images: list[np.ndarray], augment: A.Compose | None):
        self.images, self.augment = images, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageItem:
        gray = self.images[index]
        if self.augment is not None:
            rgb = self.augment(image=np.repeat(gray[..., None], 3, axis=2))["image"]
            image = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).div_(255)
        else:
            image = to_tensor(gray)
        return ImageItem(image=tv_tensors.Image(image), gt_label=torch.tensor(0))


def _optimizer_and_scheduler(configured) -> tuple[torch.optim.Optimizer, object | None]:
    """The one optimiser (and optional epoch scheduler) from any form `configure_optimizers` returns."""
    if isinstance(configured, dict):
        scheduler = configured.get("lr_scheduler")
        return configured["optimizer"], scheduler.get("scheduler") if isinstance(scheduler, dict) else scheduler
    if isinstance(configured, (list, tuple)):
        optimizers, schedulers = (configured, []) if not isinstance(configured[0], (list, tuple)) else configured
        if len(optimizers) != 1:
            raise NotImplementedError("models with several optimisers need their own training loop")
        return optimizers[0], schedulers[0] if schedulers else None
    return configured, None


class AnomalibDetector(Detector):
    def __init__(self, module: AnomalibModule, settings: dict, config: dict):
        self.module = module
        self.settings = settings
        self._config = config
        self.transform = module.pre_processor.transform
        self.input_size = tuple(module.input_size)

    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        loader = DataLoader(
            TrainImages(train, augment),
            batch_size=self.settings.get("batch_size", 32),
            shuffle=not isinstance(self.module, MemoryBankMixin),
            collate_fn=ImageBatch.collate,
            generator=torch.Generator().manual_seed(torch.initial_seed()),
        )
        if isinstance(self.module, MemoryBankMixin):
            self._collect_and_fit(loader)
        else:
            self._train(loader)
        self.module.model.eval()

    def _collect_and_fit(self, loader: DataLoader) -> None:
        self.module.model.train()
        with torch.no_grad():
            for batch in self._transformed(loader):
                self.module.training_step(batch)
            self.module.fit()
        self.module._is_fitted = torch.tensor([True])

    def _train(self, loader: DataLoader) -> None:
        """Plain gradient descent with the model's own optimiser, loss and gradient clipping."""
        optimizer, scheduler = _optimizer_and_scheduler(self.module.configure_optimizers())
        clip = self.module.trainer_arguments.get("gradient_clip_val") or 0
        self.module.train()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")  # training steps log; there is no logger here
            for _ in range(self.settings["epochs"]):
                for step, batch in enumerate(self._transformed(loader)):
                    output = self.module.training_step(batch, step)
                    loss = output["loss"] if isinstance(output, dict) else output
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip:
                        torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()

    def _transformed(self, loader: DataLoader) -> Iterator[ImageBatch]:
        """The loader's batches with the model's pre-processing applied, as anomalib's PreProcessor does."""
        for batch in loader:
            batch.image = self.transform(batch.image)
            yield batch

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        scores, maps = [], []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.stack([self.transform(to_tensor(g)) for g in images[start : start + batch_size]])
                output = self.module.model(batch)
                scores.append(output.pred_score.reshape(-1).float())
                if output.anomaly_map is not None:
                    anomaly_map = output.anomaly_map.reshape(len(batch), *output.anomaly_map.shape[-2:]).float()
                    if tuple(anomaly_map.shape[-2:]) != self.input_size:
                        anomaly_map = F.interpolate(anomaly_map[:, None], self.input_size, mode="bilinear")[:, 0]
                    maps.append(anomaly_map)
        return Prediction(torch.cat(scores).numpy(), torch.cat(maps).numpy() if maps else None)

    def resize_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.stack([resize(tv_tensors.Mask(torch.from_numpy(m)), list(self.input_size)).numpy() for m in masks])

    @property
    def config(self) -> dict:
        return self._config
