"""Which files a store's rows may open (the dashboard, the decision report): only those inside the store's artifact
folder or a part's registered root.

Paths come from store rows, and a store is only a file: whoever hands one over could point its
`artifacts` or `images` rows (or a part's root) anywhere. So every path is taken as relative to the folder
it belongs to and refused when it is absolute, climbs out with `..`, or leads out through a symlink.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np


class OutsideFolder(ValueError):
    """A path named by the store leads outside the folder it must stay in."""


def inside(folder: Path | str, relative: str) -> Path:
    """`folder / relative`, fully resolved; raises OutsideFolder if that is not inside `folder`."""
    base = Path(folder).absolute()
    parts = PurePosixPath(str(relative).replace("\\", "/"))
    if not str(relative) or parts.is_absolute() or Path(relative).is_absolute() or ".." in parts.parts:
        raise OutsideFolder(f"{relative} is not a path inside {folder}")
    resolved = (base / parts).resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise OutsideFolder(f"{relative} leads outside {folder}")
    return resolved


def part_path(root: Path | str, relative: str) -> Path:
    """An image or mask of a part, inside the part's registered root (which imports always record absolute)."""
    if not Path(root).is_absolute():
        raise OutsideFolder(f"the part's root {root} is not an absolute folder")
    return inside(root, relative)


def read_gray(path: Path) -> np.ndarray | None:
    """8-bit grayscale image, or None when the file is missing or unreadable (16-bit files are scaled down)."""
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def read_part_image(root: Path | str, relative: str) -> np.ndarray | None:
    """A part's image or mask as 8-bit grayscale; None when missing; OutsideFolder when outside its root."""
    return read_gray(part_path(root, relative))


def read_artifact(artifacts: Path | str, relative: str) -> np.ndarray | None:
    """A kept heatmap or mask as 8-bit grayscale; None when missing; OutsideFolder when outside `artifacts`."""
    return read_gray(inside(artifacts, relative))
