"""Image folders from scikit-image's sample images: offline stand-ins for image sets models would download."""

from __future__ import annotations

import shutil
from pathlib import Path

import skimage.data

from engine.paths import gluelab_home

PENALTY_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)
TEXTURES = ("brick.png", "grass.png", "gravel.png")


def sample_image_folder(folder: str, names: tuple[str, ...]) -> Path:
    """`gluelab_home()/folder` holding copies of the named scikit-image sample images."""
    target = gluelab_home() / folder
    target.mkdir(parents=True, exist_ok=True)
    source = Path(skimage.data.__file__).parent
    for name in names:
        if not (target / name).is_file():
            shutil.copy(source / name, target / name)
    return target


def penalty_image_folder() -> Path:
    """An ImageFolder (one class, `natural`) of natural photos: EfficientAD's stand-in for imagenette."""
    return sample_image_folder("penalty_images/natural", PENALTY_PHOTOS).parent


def texture_folder() -> Path:
    """Brick, grass and gravel textures: DRAEM's stand-in for the Describable Textures Dataset."""
    return sample_image_folder("anomaly_textures", TEXTURES)
