"""Render one acceptable image of a part as a fixed plant camera would see it.

Order of the physical chain: bead and glints on the metal -> camera shake and rotation ->
exposure, illumination gradient and vignetting (fixed to the camera) -> optics (defocus) ->
sensor (shot and read noise, 8-bit clipping, which is where over-exposure saturates).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.ingest.brightness import is_over_exposed
from engine.ingest.synthetic.geometry import BEAD_SHADOW_PX, PartGeometry
from engine.ingest.synthetic.parts import IMAGE_HEIGHT as H
from engine.ingest.synthetic.parts import IMAGE_WIDTH as W
from engine.ingest.synthetic.parts import PartKnobs

FULL_SCALE = 0.85 * 255  # grey level of reflectance 1.0 at nominal exposure
SHOT_NOISE_GAIN = 0.35  # photon noise variance per grey level

_NORM_Y, _NORM_X = np.mgrid[-0.5 : 0.5 : H * 1j, -0.5 : 0.5 : W * 1j].astype(np.float32)
_RADIUS2 = _NORM_X**2 + _NORM_Y**2


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # uint8 (H, W)
    camera: np.ndarray  # 2x3 affine: part coordinates -> image coordinates
    exposure_stops: float

    @property
    def over_exposed(self) -> bool:
        return is_over_exposed(self.image)


def _paint_bead(geometry: PartGeometry, width_scale: float) -> np.ndarray:
    """Scene with the glue bead: a rounded glossy ridge with a soft shadow on the metal."""
    image = geometry.scene.copy()
    band = geometry.bead_band
    distance = geometry.bead_distance.ravel()[band]
    metal = image.ravel()[band]
    halfwidth = geometry.bead_halfwidth * width_scale
    rel = np.minimum(distance / halfwidth, 1.0)
    ridge = geometry.bead_level * (0.8 + 0.25 * np.sqrt(1.0 - rel**2))
    coverage = np.clip(halfwidth + 0.75 - distance, 0.0, 1.0)
    shadow = 1.0 - 0.3 * np.clip(1.0 - (distance - halfwidth) / BEAD_SHADOW_PX, 0.0, 1.0) * (distance > halfwidth)
    image.ravel()[band] = coverage * ridge + (1.0 - coverage) * metal * shadow
    return image


def _add_glints(image: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Small specular reflections, as oiled sheet metal shows under a fixed light."""
    for _ in range(count):
        sigma = rng.uniform(1.0, 3.0)
        half = int(3 * sigma) + 1
        cx, cy = int(rng.integers(half, W - half)), int(rng.integers(half, H - half))
        axis = np.arange(-half, half + 1, dtype=np.float32)
        blob = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))
        image[cy - half : cy + half + 1, cx - half : cx + half + 1] += rng.uniform(0.3, 0.9) * blob


def _camera_pose(knobs: PartKnobs, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-knobs.rotation_deg, knobs.rotation_deg)
    shift = rng.uniform(0, knobs.shake_px) * np.array([np.cos(t := rng.uniform(0, 2 * np.pi)), np.sin(t)])
    camera = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
    camera[:, 2] = camera[:, 2] + shift
    return camera


def _exposure_stops(knobs: PartKnobs, rng: np.random.Generator) -> float:
    if rng.random() < knobs.overexposed_share:
        return float(rng.uniform(0.8, 1.3))
    return float(rng.normal(0.0, knobs.exposure_spread))


def render_normal(geometry: PartGeometry, knobs: PartKnobs, rng: np.random.Generator) -> Rendered:
    """An acceptable image of the part; every random draw comes from `rng`."""
    scene = _paint_bead(geometry, 1.0 + rng.uniform(-knobs.width_tolerance, knobs.width_tolerance))
    _add_glints(scene, int(rng.poisson(knobs.glints)), rng)
    camera = _camera_pose(knobs, rng)
    image = cv2.warpAffine(scene, camera, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    stops = _exposure_stops(knobs, rng)
    tilt = rng.uniform(0, knobs.gradient)
    direction = rng.uniform(0, 2 * np.pi)
    illumination = 1.0 + tilt * (np.cos(direction) * _NORM_X + np.sin(direction) * _NORM_Y) - 0.25 * _RADIUS2
    image *= illumination * np.float32(FULL_SCALE * 2.0**stops)

    blur = rng.uniform(0.9, 1.6) if rng.random() < knobs.defocus_share else 0.5
    image = cv2.GaussianBlur(image, (0, 0), blur)

    sigma = np.sqrt(knobs.noise**2 + SHOT_NOISE_GAIN * np.maximum(image, 0.0))
    image = (image + sigma * rng.standard_normal((H, W), dtype=np.float32)).astype(np.float32)
    return Rendered(np.clip(np.rint(image), 0, 255).astype(np.uint8), camera, stops)
