"""Fixed geometry of a synthetic part: shaded sheet metal, glue bead centre lines and regions A-E.

The layout follows the study's description of part1 (section 3.2, Fig. 6): A on the left over a
dark cavity, B in the centre close to the flange below, C under a small hole, D at the right edge
above long sheet metal, E on the curved branch that leaves the main line towards the upper right.
Every part uses this arrangement with its own positions, curvature and clutter, drawn from a
generator seeded by the part number only.

The metal is shaded once per part, as the plant's fixed lights see it: a height field (panels at
different heights with bevelled edges, holes and the cavity as depressions, brushing streaks) gives
surface normals, and each pixel's radiance is its reflectance times ambient plus Lambert diffuse light,
plus a Blinn-Phong specular term. The bead is shaded per image in `render.py` with the same light.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from engine.ingest.synthetic.parts import IMAGE_HEIGHT as H
from engine.ingest.synthetic.parts import IMAGE_WIDTH as W
from engine.ingest.synthetic.parts import PART_KNOBS, part_number

# Reflectance of the materials, before exposure (1.0 renders near full scale at nominal exposure).
METAL_UPPER = 0.36
METAL_LOWER = 0.50
FLANGE_HIGHLIGHT = 0.72
CAVITY = 0.10
HOLE = 0.04
BEAD = 0.62
BEAD_HEIGHT_RATIO = 0.8  # bead height over its half width: a rounded bead a little flatter than a half cylinder

# Shading: one fixed light per part, the camera looking straight down.
AMBIENT = 0.35  # share of a flat surface's brightness that does not depend on its orientation
LIGHT_ELEVATION_DEG = (42.0, 58.0)  # per-part range
METAL_GLOSS, METAL_SHININESS = 0.06, 12.0
GLUE_GLOSS, GLUE_SHININESS = 0.55, 30.0

# Along-the-line extents of the main-line regions, as fractions of the image width.
MAIN_LINE_REGIONS = {"A": (0.05, 0.24), "B": (0.38, 0.54), "C": (0.58, 0.66), "D": (0.86, 0.985)}
BRANCH_REGION_E = (0.12, 0.70)  # fraction of the branch's own length


@dataclass(frozen=True)
class PartGeometry:
    part: str
    scene: np.ndarray  # float32 (H, W) metal reflectance without the bead
    bead_distance: np.ndarray  # float32 (H, W) distance in px to the nearest bead centre line
    bead_halfwidth: float  # nominal half width of the bead, px
    bead_level: float  # reflectance of the glue
    bead_band: np.ndarray  # flat indices of pixels the bead or its shadow can reach
    bead_normal_xy: np.ndarray  # float32 (2, len(bead_band)): unit direction away from the centre line
    light: np.ndarray  # float32 (3,) unit vector towards the light (x right, y down, z to the camera)
    glue_relief: np.ndarray  # float32 (2, H, W): slopes of the glue's surface ripples (x, y), tiled
    region_points: dict[str, np.ndarray]  # region -> (K, 2) centre-line points (x, y)
    region_tangents: dict[str, np.ndarray]  # region -> (K, 2) unit tangents along the bead


def _main_line_y(rng: np.random.Generator, curved: bool):
    y0 = rng.uniform(0.46, 0.58) * H
    slope = rng.uniform(-0.05, 0.05)
    amplitude = rng.uniform(18, 40) if curved else rng.uniform(0, 2)
    period = rng.uniform(500, 900)
    phase = rng.uniform(0, 2 * np.pi)

    def y_of(x):
        return y0 + slope * (x - W / 2) + amplitude * np.sin(2 * np.pi * x / period + phase)

    return y_of


def _bezier(points: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = points
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _tangents(points: np.ndarray) -> np.ndarray:
    d = np.gradient(points, axis=0)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _smooth_noise(rng: np.random.Generator, sigma: float, kernel: tuple[int, int] | None = None) -> np.ndarray:
    noise = rng.standard_normal((H, W)).astype(np.float32)
    smooth: np.ndarray = cv2.blur(noise, kernel) if kernel is not None else cv2.GaussianBlur(noise, (0, 0), sigma)
    return smooth / (smooth.std() + 1e-6)


def _hole(scene: np.ndarray, height: np.ndarray, xx, yy, cx: float, cy: float, radius: float) -> None:
    r = np.hypot(xx - cx, yy - cy)
    scene[(r >= radius) & (r < radius + 1.8)] = FLANGE_HIGHLIGHT
    scene[r < radius] = HOLE
    height[r < radius] -= 6.0


def _light(rng: np.random.Generator) -> np.ndarray:
    elevation = np.radians(rng.uniform(*LIGHT_ELEVATION_DEG))
    azimuth = rng.uniform(0, 2 * np.pi)
    return np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], np.float32
    )


def shade(albedo, slope_x, slope_y, light: np.ndarray, gloss: float, shininess: float):
    """Radiance of a surface with reflectance `albedo` and height slopes (dh/dx, dh/dy) under `light`.

    Ambient plus Lambert diffuse, scaled so a flat surface returns its albedo, plus a Blinn-Phong
    highlight (half vector between the light and a camera looking straight down).
    """
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    norm = np.sqrt(slope_x * slope_x + slope_y * slope_y + 1.0)
    n_dot_l = np.maximum(light[2] - slope_x * light[0] - slope_y * light[1], 0.0) / norm
    n_dot_h = np.maximum(half[2] - slope_x * half[0] - slope_y * half[1], 0.0) / norm
    diffuse = AMBIENT + (1.0 - AMBIENT) * n_dot_l / light[2]
    return albedo * diffuse + gloss * n_dot_h**shininess


@lru_cache(maxsize=4)
def build_geometry(part: str) -> PartGeometry:
    """Geometry of `part`; deterministic, cached per process."""
    knobs = PART_KNOBS[part]
    rng = np.random.default_rng([part_number(part), 1009])
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    y_of = _main_line_y(rng, knobs.main_line == "curved")
    columns = np.arange(W, dtype=np.float32)
    main_y = y_of(columns)

    # Sheet metal: upper panel, a flange below the bead (closest under region B), a dark cavity under A.
    scene = np.full((H, W), METAL_UPPER, np.float32)
    height = np.zeros((H, W), np.float32)  # px; the camera looks down the z axis
    b_lo, b_hi = MAIN_LINE_REGIONS["B"]
    b_centre = (b_lo + b_hi) / 2 * W
    far_gap, near_gap = rng.uniform(38, 60), rng.uniform(13, 18)
    gap = far_gap - (far_gap - near_gap) * np.exp(-(((columns - b_centre) / (0.09 * W)) ** 2))
    lower_edge = (main_y + gap)[None, :]
    scene[yy > lower_edge] = METAL_LOWER
    height[yy > lower_edge] = 4.0
    scene[np.abs(yy - lower_edge) < 1.6] = FLANGE_HIGHLIGHT
    scene[(yy > lower_edge + 1.6) & (yy < lower_edge + 4.5)] *= 0.7
    upper_edge = (main_y - rng.uniform(75, 115) + rng.uniform(-0.08, 0.08) * (columns - W / 2))[None, :]
    scene[yy < upper_edge] = METAL_UPPER * 1.15
    height[yy < upper_edge] = 3.0
    scene[np.abs(yy - upper_edge) < 1.2] = FLANGE_HIGHLIGHT * 0.9
    cavity_right = rng.uniform(0.26, 0.31) * W
    cavity = (xx < cavity_right) & (yy > main_y[None, :] + 8) & (yy < main_y[None, :] + rng.uniform(60, 90))
    scene[cavity] = CAVITY
    height[cavity] = -12.0

    # A small hole above region C, and some clutter holes and darker patches away from the bead.
    c_x = float(np.mean(MAIN_LINE_REGIONS["C"])) * W
    _hole(scene, height, xx, yy, c_x, float(y_of(c_x)) - rng.uniform(24, 32), rng.uniform(7, 10))
    for _ in range(rng.integers(1, 4)):
        hx = rng.uniform(0.05, 0.6) * W
        hy = float(y_of(hx)) + rng.choice([-1, 1]) * rng.uniform(95, 170)
        if 20 < hy < H - 20:
            _hole(scene, height, xx, yy, hx, hy, rng.uniform(6, 14))
    for _ in range(rng.integers(1, 3)):
        ex, ey = rng.uniform(0.1, 0.9) * W, rng.uniform(0.05, 0.25) * H
        ellipse = ((xx - ex) / rng.uniform(30, 80)) ** 2 + ((yy - ey) / rng.uniform(15, 40)) ** 2 < 1
        scene[ellipse] *= 0.6

    # Metal texture: broad unevenness plus brushing streaks in the reflectance and in the surface; bevelled edges.
    scene *= 1 + 0.05 * _smooth_noise(rng, 40) + 0.025 * _smooth_noise(rng, 0, kernel=(61, 1))
    height = (cv2.GaussianBlur(height, (0, 0), 1.5) + 0.4 * _smooth_noise(rng, 0, kernel=(41, 1))).astype(np.float32)
    height += 0.12 * _smooth_noise(rng, 2.0)  # fine dents and grain
    slope_y, slope_x = np.gradient(height)
    light = _light(rng)
    scene = shade(scene, slope_x, slope_y, light, METAL_GLOSS, METAL_SHININESS)
    scene = np.asarray(cv2.GaussianBlur(scene, (0, 0), 0.8), dtype=np.float32)

    # Glue bead: main line across the image and one branch curving to the upper right (region E).
    main_x = np.arange(-10, W + 11, 2, dtype=np.float32)
    main_line = np.stack([main_x, y_of(main_x)], axis=1)
    branch_x0 = rng.uniform(0.70, 0.76) * W
    branch_y0 = float(y_of(branch_x0))
    branch = _bezier(
        np.array(
            [
                [branch_x0, branch_y0],
                [branch_x0 + rng.uniform(25, 50), branch_y0 - rng.uniform(35, 60)],
                [rng.uniform(0.86, 0.92) * W, rng.uniform(0.12, 0.22) * H],
                [W + 10, rng.uniform(0.02, 0.10) * H],
            ]
        ),
        220,
    ).astype(np.float32)
    centre_lines = np.full((H, W), 255, np.uint8)
    for line in (main_line, branch):
        cv2.polylines(centre_lines, [np.round(line).astype(np.int32)], False, 0, 1)
    bead_distance = cv2.distanceTransform(centre_lines, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)

    region_points, region_tangents = {}, {}
    main_tangents = _tangents(main_line)
    for region, (lo, hi) in MAIN_LINE_REGIONS.items():
        keep = (main_line[:, 0] >= lo * W) & (main_line[:, 0] <= hi * W)
        region_points[region], region_tangents[region] = main_line[keep], main_tangents[keep]
    e_lo, e_hi = (int(f * len(branch)) for f in BRANCH_REGION_E)
    region_points["E"], region_tangents["E"] = branch[e_lo:e_hi], _tangents(branch)[e_lo:e_hi]

    halfwidth = float(rng.uniform(5.5, 7.5))
    reach = halfwidth * (1 + knobs.width_tolerance) * (1 + BEAD_HEIGHT_RATIO) + 2
    band = np.flatnonzero(bead_distance < reach)
    away_y, away_x = np.gradient(bead_distance)
    away = np.stack([away_x.ravel()[band], away_y.ravel()[band]])
    away /= np.maximum(np.linalg.norm(away, axis=0), 1e-6)
    ripples = 0.5 * _smooth_noise(rng, 3.0)
    relief_y, relief_x = np.gradient(ripples)
    return PartGeometry(
        part=part,
        scene=scene,
        bead_distance=bead_distance,
        bead_halfwidth=halfwidth,
        bead_level=BEAD + knobs.bead_contrast,
        bead_band=band,
        bead_normal_xy=away.astype(np.float32),
        light=light,
        glue_relief=np.stack([relief_x, relief_y]).astype(np.float32),
        region_points=region_points,
        region_tangents=region_tangents,
    )
