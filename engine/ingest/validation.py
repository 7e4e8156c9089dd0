"""Open and check every file a dataset import would register, collecting all problems at once."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_MEGAPIXELS = 50
MAX_MASK_SHARE = 0.5  # a mask marking more of its image than this as defect is taken as inverted or wrong
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
MASK_MODES = ("1", "L", "I", *SIXTEEN_BIT_MODES)  # single-channel: 0 = good, anything else = defect
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    mode: str
    gray: np.ndarray  # uint8 (height, width)


def gray8(image: Image.Image) -> np.ndarray:
    """The image as 8-bit grayscale, scaling 16-bit values to 0-255 instead of clipping them.

    Pillow's `convert("L")` clips 16-bit values at 255, which turns an ordinary 16-bit image white.
    16-bit images (and 32-bit integer ones whose values fit in 16 bits, as some readers deliver 16-bit
    PNGs) are scaled by 255 / 65535; other high-bit-depth modes raise ValueError saying why.
    """
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{image.mode} image with values outside 0-65535: gluelab reads 8- and 16-bit images")
        return ((values * 255 + 32767) // 65535).astype(np.uint8)
    if image.mode == "F":
        raise ValueError("32-bit floating-point image: gluelab reads 8- and 16-bit images")
    return np.asarray(image.convert("L"))


def mask_pixels(image: Image.Image) -> np.ndarray:
    """Defect pixels of a mask: every non-zero value, whatever the bit depth (other modes read as 8-bit gray)."""
    return np.asarray(image if image.mode in MASK_MODES else image.convert("L")) != 0


def check_mask(path: Path) -> None:
    """Refuse a mask that is not single-channel or that marks most of its image as defect."""
    with Image.open(path) as image:
        if image.mode not in MASK_MODES:
            raise ValueError(
                f"mask is {image.mode}, not single-channel: masks must be grayscale, "
                "0 for good and non-zero for defect pixels"
            )
        defect = mask_pixels(image)
    share = float(defect.mean()) if defect.size else 0.0
    if share > MAX_MASK_SHARE:
        raise ValueError(
            f"mask marks {share:.1%} of the image as defect (more than {MAX_MASK_SHARE:.0%}): "
            "is it inverted? Defect pixels must be non-zero, good ones 0"
        )


def outside_root(path: Path, root: Path) -> bool:
    """True when `path` (through any symlink) resolves to a place outside `root`."""
    return not path.resolve().is_relative_to(root.resolve())


def read_image(path: Path) -> ImageFacts:
    """Decode `path` fully as 8-bit grayscale (16-bit scaled); raises ValueError saying what is wrong with it."""
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
                gray = gray8(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"image is over the {MAX_MEGAPIXELS} MP limit ({error})") from error
    except UnidentifiedImageError as error:
        if path.read_bytes()[:4].startswith(IMAGE_SIGNATURES):
            raise ValueError("corrupt image: it starts like an image file but cannot be decoded") from error
        raise ValueError("not an image (or not a format gluelab can read)") from error
    except OSError as error:
        raise ValueError(f"corrupt or truncated image: {error}") from error
    return ImageFacts(width, height, mode, gray)
