"""Render one acceptable image of a part as a fixed plant camera would see it.

Order of the physical chain: shaded bead (height profile, surface ripples, glossy highlight, cast
shadow) and glints on the shaded metal -> local light and shadow changes -> camera shake and rotation
-> exposure, illumination gradient and vignetting (fixed to the camera) -> optics (defocus) -> sensor
(shot and read noise, black level, 8-bit clipping). Over-exposed frames clip the bead's highlight at
full scale; under-exposed frames crush the dark metal and the bead's shadow to black.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.frame_statistics import is_over_exposed
from engine.ingest.synthetic.geometry import (
    BEAD_HEIGHT_RATIO,
    GLUE_GLOSS,
    GLUE_SHININESS,
    PartGeometry,
    shade,
)
from engine.ingest.synthetic.parts import IMAGE_HEIGHT as H
from engine.ingest.synthetic.parts import IMAGE_WIDTH as W
from engine.ingest.synthetic.parts import PartKnobs

FULL_SCALE = 0.85 * 255  # grey level of reflectance 1.0 at nominal exposure
SHOT_NOISE_GAIN = 0.35  # photon noise variance per grey level
BLACK_LEVEL = 8.0  # grey level the sensor subtracts: anything darker reads 0
SHADOW_DEPTH = 0.45  # share of light the bead's cast shadow takes from the metal next to it
ORDINARY_STOPS = 0.75  # an ordinary frame's exposure stays within this many stops of nominal
EXTREME_STOPS = 0.8  # an acceptable frame at least this far off nominal is an exposure extreme
OVER_EXPOSED_STOPS = (1.6, 2.4)  # enough to clip the bead and wash out the bright metal
UNDER_EXPOSED_STOPS = (0.8, 1.5)  # enough to crush the dark metal and the bead's shadow to black

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


def _paint_bead(geometry: PartGeometry, width_scale: float, rng: np.random.Generator) -> np.ndarray:
    """Scene with the glue bead shaded on the metal: a rounded ridge with ripples, a highlight and a cast shadow."""
    image = geometry.scene.copy()
    band = geometry.bead_band
    distance = geometry.bead_distance.ravel()[band]
    metal = image.ravel()[band]
    halfwidth = geometry.bead_halfwidth * width_scale
    rel = np.minimum(distance / halfwidth, 0.97)
    # Height h = BEAD_HEIGHT_RATIO * halfwidth * sqrt(1 - rel^2); its slope along the way out from the centre line:
    outward = BEAD_HEIGHT_RATIO * rel / np.sqrt(1.0 - rel * rel)
    away_x, away_y = geometry.bead_normal_xy
    # Ripples: the part's glue relief read at an offset drawn per image, so no two beads share their surface.
    rows, cols = np.divmod(band, W)
    dy, dx = int(rng.integers(H)), int(rng.integers(W))
    ripple_x = geometry.glue_relief[0][(rows + dy) % H, (cols + dx) % W]
    ripple_y = geometry.glue_relief[1][(rows + dy) % H, (cols + dx) % W]
    glue = shade(
        geometry.bead_level,
        -outward * away_x + ripple_x,
        -outward * away_y + ripple_y,
        geometry.light,
        GLUE_GLOSS,
        GLUE_SHININESS,
    )
    coverage = np.clip(halfwidth + 0.75 - distance, 0.0, 1.0)
    # Cast shadow: on the side facing away from the light, as long as the bead is high over the light's elevation.
    light = geometry.light
    facing_away = np.clip(-(away_x * light[0] + away_y * light[1]) / np.hypot(light[0], light[1]), 0.0, 1.0)
    length = BEAD_HEIGHT_RATIO * halfwidth * np.hypot(light[0], light[1]) / light[2] + 1.0
    outside = distance - halfwidth
    shadow = 1.0 - SHADOW_DEPTH * facing_away * np.clip(1.0 - outside / length, 0.0, 1.0) * (outside > 0)
    image.ravel()[band] = coverage * glue + (1.0 - coverage) * metal * shadow
    return image


def _light_changes(image: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Local light and shadow changes: soft patches of stray light or of shadow from the cell around the part."""
    for _ in range(count):
        sx, sy = rng.uniform(25, 90), rng.uniform(20, 70)
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        x0, x1 = int(max(cx - 3 * sx, 0)), int(min(cx + 3 * sx, W))
        y0, y1 = int(max(cy - 3 * sy, 0)), int(min(cy + 3 * sy, H))
        if x1 <= x0 or y1 <= y0:
            continue
        xs = ((np.arange(x0, x1, dtype=np.float32) - cx) / sx) ** 2
        ys = ((np.arange(y0, y1, dtype=np.float32) - cy) / sy) ** 2
        strength = rng.uniform(0.3, 1.0) if rng.random() < 0.5 else -rng.uniform(0.25, 0.6)
        image[y0:y1, x0:x1] *= 1.0 + strength * np.exp(-0.5 * (ys[:, None] + xs[None, :]))


def _add_glints(image: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Small specular reflections, as oiled sheet metal shows under a fixed light."""
    for _ in range(count):
        sigma = rng.uniform(1.0, 3.0)
        half = int(3 * sigma) + 1
        cx, cy = int(rng.integers(half, W - half)), int(rng.integers(half, H - half))
        axis = np.arange(-half, half + 1, dtype=np.float32)
        blob = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))
        image[cy - half : cy + half + 1, cx - half : cx + half + 1] += rng.uniform(0.15, 0.45) * blob


def _camera_pose(knobs: PartKnobs, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-knobs.rotation_deg, knobs.rotation_deg)
    shift = rng.uniform(0, knobs.shake_px) * np.array([np.cos(t := rng.uniform(0, 2 * np.pi)), np.sin(t)])
    camera = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
    camera[:, 2] = camera[:, 2] + shift
    return camera


def _exposure_stops(knobs: PartKnobs, rng: np.random.Generator, extremes: bool) -> float:
    draw = rng.random()
    if extremes and draw < knobs.overexposed_share:
        return float(rng.uniform(*OVER_EXPOSED_STOPS))
    if extremes and draw < knobs.overexposed_share + knobs.underexposed_share:
        return -float(rng.uniform(*UNDER_EXPOSED_STOPS))
    return float(np.clip(rng.normal(0.0, knobs.exposure_spread), -ORDINARY_STOPS, ORDINARY_STOPS))


def render_normal(
    geometry: PartGeometry, knobs: PartKnobs, rng: np.random.Generator, representative: bool = False
) -> Rendered:
    """An acceptable image of the part; every random draw comes from `rng`.

    `representative` draws the frame as the study chose the frames it painted defects on: exposure
    within the part's usual spread and its usual light, without the over- and under-exposed extremes
    or the local light changes the line's own acceptable frames include.
    """
    scene = _paint_bead(geometry, 1.0 + rng.uniform(-knobs.width_tolerance, knobs.width_tolerance), rng)
    _add_glints(scene, int(rng.poisson(knobs.glints)), rng)
    changes = int(rng.poisson(knobs.light_changes))
    if not representative:
        _light_changes(scene, changes, rng)
    camera = _camera_pose(knobs, rng)
    image = cv2.warpAffine(scene, camera, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    stops = _exposure_stops(knobs, rng, extremes=not representative)
    tilt = rng.uniform(0, knobs.gradient)
    direction = rng.uniform(0, 2 * np.pi)
    illumination = 1.0 + tilt * (np.cos(direction) * _NORM_X + np.sin(direction) * _NORM_Y) - 0.25 * _RADIUS2
    image *= illumination * np.float32(FULL_SCALE * 2.0**stops)

    blur = rng.uniform(0.9, 1.6) if rng.random() < knobs.defocus_share else 0.5
    image = cv2.GaussianBlur(image, (0, 0), blur)

    sigma = np.sqrt(knobs.noise**2 + SHOT_NOISE_GAIN * np.maximum(image, 0.0))
    image = (image + sigma * rng.standard_normal((H, W), dtype=np.float32) - BLACK_LEVEL).astype(np.float32)
    return Rendered(np.clip(np.rint(image), 0, 255).astype(np.uint8), camera, stops)
