"""Load a registered part's images for evaluation, and the study's training augmentation.

Images are read once as 8-bit grayscale at their stored size (16-bit ones scaled to 0-255, as at
import); models resize them with their own pre-processing. The `augmented` condition applies the study's Table 3 augmentations to training
images only (albumentations Defocus, RandomBrightnessContrast, ISONoise, each with p = 0.5).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from engine.cores import usable_cores
from engine.ingest.validation import gray8, mask_pixels
from store import DEFAULT_STORE, part_images

if TYPE_CHECKING:
    import albumentations as A


@dataclass(frozen=True)
class PartData:
    part: str
    train: list[np.ndarray]  # uint8 (H, W) grayscale
    test: list[np.ndarray]
    test_labels: np.ndarray  # 1 = anomalous
    test_masks: list[np.ndarray] | None  # bool (H, W) per test image; None when the dataset has no masks
    test_info: pd.DataFrame  # one row per test image: image_path, label, defect_type, region, mean_brightness, ...

    def training_subset(self, size: int | None, seed: int) -> PartData:
        """The part with `size` of its training images (None: all), drawn by `seed`: the first `size` of one seeded
        permutation, kept in their stored order, so for one seed the images of a smaller size are among those of a
        larger one (a learning curve adds images, it does not swap them). The test split is untouched."""
        if size is None:
            return self
        if not 1 <= size <= len(self.train):
            raise ValueError(f"{self.part} has {len(self.train)} training images; a size of {size} cannot be drawn")
        chosen = sorted(training_order(len(self.train), seed)[:size])
        return replace(self, train=[self.train[index] for index in chosen])


def training_order(count: int, seed: int) -> list[int]:
    """The order in which a seed draws `count` training images into nested subsets."""
    return [int(index) for index in np.random.default_rng(seed).permutation(count)]


def _read_gray(path: Path) -> np.ndarray:
    """8-bit grayscale, scaled from 16-bit exactly as the import measured it."""
    with Image.open(path) as image:
        return np.array(gray8(image))


def _read_mask(path: Path) -> np.ndarray:
    """Defect pixels of a mask (non-zero values), as the import checked them."""
    with Image.open(path) as image:
        return mask_pixels(image)


def load_part(part: str, store: Path | str = DEFAULT_STORE) -> PartData:
    """All images of `part` as registered in the store (train normal; test normal and anomalous)."""
    return read_part(part, part_images(part, store))


def read_part(part: str, images: pd.DataFrame) -> PartData:
    """`part`'s images as `store.part_images` lists them (one row per image, with its folder in `root`), read
    from that folder. Needs no store: a process that cannot open the store reads the part from the list alone."""
    root = Path(images["root"].iloc[0])
    train_rows = images[images["split"] == "train"]
    test_rows = images[images["split"] == "test"].reset_index(drop=True)
    # Pillow decodes without the GIL, so one thread per core reads the images that many times faster.
    with ThreadPoolExecutor(usable_cores()) as pool:
        train = list(pool.map(lambda path: _read_gray(root / path), train_rows["image_path"]))
        test = list(pool.map(lambda path: _read_gray(root / path), test_rows["image_path"]))
        masks = None
        if test_rows.loc[test_rows["label"] == "anomalous", "mask_path"].notna().all():
            masks = list(
                pool.map(
                    lambda image, mask_path: (
                        np.zeros(image.shape, bool) if pd.isna(mask_path) else _read_mask(root / mask_path)
                    ),
                    test,
                    test_rows["mask_path"],
                )
            )
    return PartData(
        part=part,
        train=train,
        test=test,
        test_labels=(test_rows["label"] == "anomalous").to_numpy().astype(np.int64),
        test_masks=masks,
        test_info=test_rows.drop(columns=["root", "part"]),
    )


def study_augmentation(seed: int) -> A.Compose:
    """The study's robustness augmentation (Table 3), reproducible from `seed`; works on RGB uint8.

    albumentations is imported here, where it is used: it loads torch, which a grid's own process (it reads parts,
    its jobs compute) and every other reader of parts never needs; job processes have it loaded already
    (`engine.evaluation.job_models`)."""
    import albumentations as A

    return A.Compose(
        [
            A.Defocus(radius=(3, 10), alias_blur=(0.1, 0.5), p=0.5),
            A.RandomBrightnessContrast(
                brightness_limit=(-0.2, 0.2), contrast_limit=(-0.2, 0.2), brightness_by_max=True, p=0.5
            ),
            A.ISONoise(color_shift=(0.01, 0.05), intensity=(0.1, 0.5), p=0.5),
        ],
        seed=seed,
    )
