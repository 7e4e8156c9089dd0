"""Any anomalib image model as a Detector, without anomalib's Engine and its per-image overhead.

Images go through the model's own pre-processor transform (resize, normalise) exactly as anomalib
applies it, so scores match anomalib's. Memory-bank models (PaDiM, PatchCore, DFM, DFKDE) collect
features in one pass and fit; models trained by gradient descent run a plain loop over the model's
own hooks, training_step and optimisers (no Trainer, logger, checkpoints or validation). Inference
calls the torch model directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from itertools import islice
from types import SimpleNamespace
from typing import Any

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from anomalib.data import ImageBatch, ImageItem
from anomalib.models.components import AnomalibModule, MemoryBankMixin
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import Compose, Resize
from torchvision.transforms.v2.functional import resize

from engine.models.base import Detector, Prediction
from engine.models.cached_features import cached_submodules
from engine.models.feature_cache import FeatureCache
from engine.models.training import TrainingClock
from store.runs import Training

Transform = Callable[[torch.Tensor], torch.Tensor]
FromGray = Callable[[np.ndarray], torch.Tensor]


def to_tensor(gray: np.ndarray) -> torch.Tensor:
    """8-bit grayscale (H, W) -> float RGB (3, H, W) in [0, 1], as anomalib reads an image file."""
    return torch.as_tensor(gray, dtype=torch.float32).div_(255).expand(3, -1, -1)


def gray_input(transform: Transform) -> FromGray:
    """`transform` applied to `to_tensor(gray)`, as a function of the 8-bit grayscale image itself.

    The three channels of a grayscale frame are the same, so a leading resize runs on one of them and its
    result is repeated: the same pixels as resizing all three, for a third of the work (a 480 x 640 frame's
    antialiased resize is most of a model's pre-processing).
    """
    steps = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    if not isinstance(steps[0], Resize):
        return lambda gray: transform(to_tensor(gray))
    resize_first, rest = steps[0], steps[1:]

    def apply(gray: np.ndarray) -> torch.Tensor:
        image = resize_first(torch.as_tensor(gray, dtype=torch.float32).div_(255)[None]).expand(3, -1, -1)
        for step in rest:
            image = step(image)
        return image.contiguous()

    return apply


# Memory-bank models see each training image once and learn nothing from batching, so their features are collected
# in batches of 8: on 2 CPU cores a batch of 32 256 x 256 images overflows the caches (PaDiM's backbone pass costs
# about 50 ms per image at 32, 20 ms at 8 or fewer, before engine.heap). Gradient-trained models keep their preset's
# batch size.
COLLECTION_BATCH = 8

AUGMENTED_COPIES = 8  # seeded augmented versions of each training image; epoch e trains on version e mod 8


class TrainImages(Dataset):
    """Training images as anomalib items after the model's pre-processing (resize, normalise).

    With `augment`, one of `AUGMENTED_COPIES` seeded draws per image: the draw for (image, version) is
    fixed by the run's seed, so an epoch trains on the same pixels whether or not its backbone features
    come from the cache, and the cache holds at most eight versions per image. `set_epoch` picks the
    version. Without `augment` an image is pre-processed once and kept, so epochs after the first do not
    resize a 480 x 640 frame again (about 0.8 MB per image at 256 x 256).
    """

    def __init__(self, images: list[np.ndarray], augment: A.Compose | None, transform: Transform):
        self.images, self.augment, self.transform = images, augment, transform
        self.from_gray = gray_input(transform)
        self.seed = torch.initial_seed()
        self.version = 0
        self._kept: dict[int, torch.Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        self.version = epoch % AUGMENTED_COPIES

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageItem:
        return ImageItem(image=tv_tensors.Image(self.pixels(index)), gt_label=torch.tensor(0))

    def pixels(self, index: int) -> torch.Tensor:
        """The model's input for image `index` in the current version, (3, h, w)."""
        if self.augment is None:
            if index not in self._kept:
                self._kept[index] = self.from_gray(self.images[index])
            return self._kept[index]
        draw = np.random.SeedSequence([self.seed % 2**63, index, self.version]).generate_state(1)[0]
        self.augment.set_random_seed(int(draw))
        rgb = self.augment(image=np.repeat(self.images[index][..., None], 3, axis=2))["image"]
        return self.transform(torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).div_(255))


class TrainerStandIn:
    """The Trainer attributes anomalib's models read while they train, for a loop without a Trainer.

    `max_epochs` sizes learning-rate schedules (SuperSimpleNet, DSR), `current_epoch` switches DSR's
    training phase, and `datamodule.train_dataloader()` hands out the (pre-processed) training batches (CFA builds its
    centroids from it; under a Trainer it would get un-normalised images). `barebones` makes `self.log`
    a no-op, as under Lightning's barebones Trainer.
    """

    barebones = True
    max_steps = -1

    def __init__(self, batches: DataLoader, epochs: int):
        self.max_epochs = epochs
        self.current_epoch = 0
        self.optimizers: list[torch.optim.Optimizer] = []
        self.datamodule = SimpleNamespace(train_dataloader=lambda: batches)


@contextmanager
def _attached(module: AnomalibModule, trainer: TrainerStandIn):
    """The module's Lightning calls answered by `trainer` while the block runs.

    Manual-optimisation models (CFlow, GANomaly, DSR) call `self.optimizers()` and
    `self.manual_backward(loss)`; they get the plain optimisers and `loss.backward`.
    """
    module.trainer = trainer
    module.optimizers = lambda use_pl_optimizer=True: (
        trainer.optimizers[0] if len(trainer.optimizers) == 1 else trainer.optimizers
    )
    module.manual_backward = lambda loss, *args, **kwargs: loss.backward(*args, **kwargs)
    try:
        yield
    finally:
        del module.optimizers, module.manual_backward
        module.trainer = None


def _loss(output: torch.Tensor | dict) -> torch.Tensor:
    """The loss a training step minimises: its `loss`, or GANomaly's generator loss (its discriminator's
    loss oscillates by design and says nothing about convergence)."""
    if isinstance(output, dict):
        return output["loss"] if "loss" in output else output["generator_loss"]
    return output


def _optimizers_and_schedulers(configured) -> tuple[list[torch.optim.Optimizer], list]:
    """Optimisers and schedulers from any form Lightning allows `configure_optimizers` to return."""
    if isinstance(configured, torch.optim.Optimizer):
        return [configured], []
    if isinstance(configured, dict):
        configured = [configured]
    if len(configured) == 2 and all(isinstance(part, (list, tuple)) for part in configured):
        optimizers, schedulers = configured
        return list(optimizers), [s["scheduler"] if isinstance(s, dict) else s for s in schedulers]
    optimizers, schedulers = [], []
    for item in configured:
        if not isinstance(item, dict):
            optimizers.append(item)
            continue
        optimizers.append(item["optimizer"])
        scheduler = item.get("lr_scheduler")
        if scheduler is not None:
            schedulers.append(scheduler["scheduler"] if isinstance(scheduler, dict) else scheduler)
    return optimizers, schedulers


class AnomalibDetector(Detector):
    def __init__(self, module: AnomalibModule, settings: dict, config: dict, frozen_features: tuple[str, ...] = ()):
        self.module = module
        self.settings = settings
        self._config = config
        self.frozen_features = frozen_features
        self.transform = module.pre_processor.transform
        self.from_gray = gray_input(self.transform)
        self.input_size = tuple(module.input_size)
        self.training: Training | None = None
        self.device = torch.device("cpu")

    def to(self, device: str) -> str:
        """Compute on `device` from now on: the one place a job's tensors are put on its device.

        The module (its parameters and buffers, and whatever its `_apply` moves with it) goes there now; training
        batches follow in `collate`, test images in `predict`, cached features in `engine.models.feature_cache`,
        and model code makes any new tensor on the device of one it already has (`device=x.device`).
        """
        self.device = torch.device(device)
        self.module.to(self.device)
        return device

    def collate(self, items: list) -> ImageBatch:
        """`ImageBatch.collate`, with every tensor of the batch (images, labels) on this model's device."""
        batch: Any = ImageBatch.collate(items)
        if self.device.type != "cpu":
            for field in fields(batch):
                value = getattr(batch, field.name)
                if isinstance(value, torch.Tensor):
                    setattr(batch, field.name, value.to(self.device))
        return batch

    def cached_features(self, cache: FeatureCache | None) -> AbstractContextManager[None]:
        return cached_submodules(self.module.model, self.frozen_features, cache)

    def frozen_modules(self) -> list[nn.Module]:
        return [self.module.model.get_submodule(path) for path in self.frozen_features]

    def fit(self, train: list[np.ndarray], augment: A.Compose | None) -> None:
        memory_bank = isinstance(self.module, MemoryBankMixin)
        loader = DataLoader(
            TrainImages(train, augment, self.transform),
            batch_size=COLLECTION_BATCH if memory_bank else self.settings.get("batch_size", 32),
            shuffle=not memory_bank,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(torch.initial_seed()),
        )
        if memory_bank:
            self._collect_and_fit(loader)
        else:
            self._train(loader)
        self.module.model.eval()

    def _collect_and_fit(self, loader: DataLoader) -> None:
        self.module.model.train()
        with torch.no_grad():
            for batch in loader:
                self.module.training_step(batch)
            self.module.fit()
        self.module._is_fitted = torch.tensor([True], device=self.device)

    def _train(self, loader: DataLoader) -> None:
        """Lightning's fit loop, reduced to what the models use, stopping by `engine.models.training`'s rule.

        on_train_start, then per batch training_step; with automatic optimisation also the model's own
        backward, gradient clipping and optimiser step, and epoch-wise schedulers (manual-optimisation
        models step their own optimisers, as under Lightning). `batches_per_epoch` caps an epoch like
        Lightning's `limit_train_batches`. Each epoch's mean loss goes to the clock, which ends training
        when the loss has levelled off, or at the epoch cap or the time budget.
        """
        module = self.module
        clock = TrainingClock(self.settings, self.report)
        batches_per_epoch = self.settings.get("batches_per_epoch")
        trainer = TrainerStandIn(loader, clock.epoch_cap)
        pass_index = is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)
        module.train()
        with _attached(module, trainer), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")  # training steps log; there is no logger here
            trainer.optimizers, schedulers = _optimizers_and_schedulers(module.configure_optimizers())
            module.on_train_start()
            for epoch in range(clock.epoch_cap):
                trainer.current_epoch = epoch
                loader.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
                total, count = 0.0, 0
                for index, batch in enumerate(islice(loader, batches_per_epoch)):
                    output = module.training_step(batch, index) if pass_index else module.training_step(batch)
                    loss = _loss(output)
                    if module.automatic_optimization:
                        self._optimiser_step(trainer.optimizers, loss)
                    total, count = total + float(loss.detach()), count + 1
                if module.automatic_optimization:
                    for scheduler in schedulers:
                        scheduler.step()
                if clock.epoch_done(total / max(count, 1)):
                    break
        self.training = clock.record()

    def _optimiser_step(self, optimizers: list[torch.optim.Optimizer], loss: torch.Tensor) -> None:
        if len(optimizers) != 1:
            raise NotImplementedError("automatic optimisation takes one optimiser (as in Lightning)")
        optimizers[0].zero_grad(set_to_none=True)
        self.module.backward(loss)  # CFA's override keeps the graph
        clip = self.module.trainer_arguments.get("gradient_clip_val") or 0
        if clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        optimizers[0].step()

    def predict(self, images: list[np.ndarray], batch_size: int) -> Prediction:
        scores, maps = [], []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.stack([self.from_gray(g) for g in images[start : start + batch_size]]).to(self.device)
                output = self.module.model(batch)
                scores.append(output.pred_score.reshape(-1).float().cpu())
                if output.anomaly_map is not None:
                    anomaly_map = output.anomaly_map.reshape(len(batch), *output.anomaly_map.shape[-2:]).float().cpu()
                    if tuple(anomaly_map.shape[-2:]) != self.input_size:
                        anomaly_map = F.interpolate(anomaly_map[:, None], self.input_size, mode="bilinear")[:, 0]
                    maps.append(anomaly_map)
        return Prediction(torch.cat(scores).numpy(), torch.cat(maps).numpy() if maps else None)

    def resize_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.stack([resize(tv_tensors.Mask(torch.from_numpy(m)), list(self.input_size)).numpy() for m in masks])

    @property
    def config(self) -> dict:
        return self._config
