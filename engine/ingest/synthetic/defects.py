"""Warp-style glue defects, as the study painted them with GIMP's Warp tool (section 3.2).

A defect is a smooth local displacement field centred on the bead, applied to a finished camera
image: `push` makes a wavy irregularity, `swirl` twists the bead, `bulge` thickens it (uneven
dispersion), `pinch` thins it down to a gap. The field falls to exactly zero at the warp radius,
so the image outside is untouched, and the mask is precisely the set of pixels whose value changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.ingest.synthetic.parts import DEFECT_TYPES, SEVERITIES

RADIUS_PX = {"small": (16.0, 22.0), "medium": (22.0, 32.0), "extensive": (34.0, 50.0)}
MIN_DEFECT_AREA_PX = 20


@dataclass(frozen=True)
class Defect:
    image: np.ndarray  # uint8, the defective image
    mask: np.ndarray  # bool, True exactly where `image` differs from the acceptable one

    @property
    def area_px(self) -> int:
        return int(self.mask.sum())


def _source_offsets(kind: str, rel: np.ndarray, tangent: np.ndarray, radius: float, rng) -> np.ndarray:
    """Where each pixel samples from, relative to itself, before the fall-off is applied."""
    normal = np.array([-tangent[1], tangent[0]], np.float32)
    along = rel @ tangent
    across = rel @ normal
    if kind == "push":
        amplitude = rng.uniform(0.25, 0.45) * radius
        waves = rng.uniform(0.8, 1.6)
        shift = amplitude * np.sin(np.pi * waves * along / radius + rng.uniform(0, 2 * np.pi))
        return shift[..., None] * normal
    if kind == "swirl":
        angle = rng.uniform(0.8, 1.8) * rng.choice([-1.0, 1.0])
        return angle * np.stack([-rel[..., 1], rel[..., 0]], axis=-1)
    if kind == "bulge":
        return -rng.uniform(0.55, 0.8) * across[..., None] * normal
    if kind == "pinch":
        return rng.uniform(0.8, 2.0) * across[..., None] * normal
    raise ValueError(f"unknown defect type {kind!r}; choose from {', '.join(DEFECT_TYPES)}")


def apply_warp_defect(
    image: np.ndarray,
    centre: np.ndarray,
    tangent: np.ndarray,
    kind: str,
    severity: str,
    rng: np.random.Generator,
) -> Defect:
    """Warp `image` around `centre` (x, y) on the bead whose direction there is `tangent`."""
    radius = rng.uniform(*RADIUS_PX[severity]) if severity in SEVERITIES else None
    if radius is None:
        raise ValueError(f"unknown severity {severity!r}; choose from {', '.join(SEVERITIES)}")
    height, width = image.shape
    margin = int(np.ceil(3 * radius)) + 2
    x0, x1 = max(int(centre[0]) - margin, 0), min(int(centre[0]) + margin + 1, width)
    y0, y1 = max(int(centre[1]) - margin, 0), min(int(centre[1]) + margin + 1, height)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rel = np.stack([xs - centre[0], ys - centre[1]], axis=-1)
    rho2 = (rel**2).sum(-1) / radius**2
    falloff = np.where(rho2 < 1.0, (1.0 - rho2) ** 2, 0.0).astype(np.float32)
    offsets = _source_offsets(kind, rel, tangent.astype(np.float32), radius, rng) * falloff[..., None]

    patch = image[y0:y1, x0:x1]
    warped = cv2.remap(
        patch,
        (xs - x0 + offsets[..., 0]).astype(np.float32),
        (ys - y0 + offsets[..., 1]).astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    defective = image.copy()
    defective[y0:y1, x0:x1] = np.where(falloff > 0, warped, patch)
    return Defect(defective, defective != image)
