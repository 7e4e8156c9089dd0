"""Open and check every file a dataset import would register, collecting all problems at once."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_MEGAPIXELS = 50
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    mode: str
    gray: np.ndarray  # uint8 (height, width)


def outside_root(path: Path, root: Path) -> bool:
    """True when `path` (through any symlink) resolves to a place outside `root`."""
    return not path.resolve().is_relative_to(root.resolve())


def read_image(path: Path) -> ImageFacts:
    """Decode `path` fully as 8-bit grayscale; raises ValueError saying what is wrong with it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_MEGAPIXELS * 1_000_000:
                    raise ValueError(
                        f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the {MAX_MEGAPIXELS} MP limit"
                    )
                mode = image.mode
                image.load()
                gray = np.asarray(image.convert("L"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"image is over the {MAX_MEGAPIXELS} MP limit ({error})") from error
    except UnidentifiedImageError as error:
        if path.read_bytes()[:4].startswith(IMAGE_SIGNATURES):
            raise ValueError("corrupt image: it starts like an image file but cannot be decoded") from error
        raise ValueError("not an image (or not a format gluelab can read)") from error
    except OSError as error:
        raise ValueError(f"corrupt or truncated image: {error}") from error
    return ImageFacts(width, height, mode, gray)
