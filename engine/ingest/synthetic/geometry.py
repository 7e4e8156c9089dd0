"""Fixed geometry of a synthetic part: sheet metal scene, glue bead centre lines and regions A-E.

The layout follows the study's description of part1 (section 3.2, Fig. 6): A on the left over a
dark cavity, B in the centre close to the flange below, C under a small hole, D at the right edge
above long sheet metal, E on the curved branch that leaves the main line towards the upper right.
Every part uses this arrangement with its own positions, curvature and clutter, drawn from a
generator seeded by the part number only.
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
BEAD_SHADOW_PX = 2.5  # width of the soft shadow the bead casts on the metal

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


def _hole(scene: np.ndarray, xx, yy, cx: float, cy: float, radius: float) -> None:
    r = np.hypot(xx - cx, yy - cy)
    scene[(r >= radius) & (r < radius + 1.8)] = FLANGE_HIGHLIGHT
    scene[r < radius] = HOLE


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
    b_lo, b_hi = MAIN_LINE_REGIONS["B"]
    b_centre = (b_lo + b_hi) / 2 * W
    far_gap, near_gap = rng.uniform(38, 60), rng.uniform(13, 18)
    gap = far_gap - (far_gap - near_gap) * np.exp(-(((columns - b_centre) / (0.09 * W)) ** 2))
    lower_edge = (main_y + gap)[None, :]
    scene[yy > lower_edge] = METAL_LOWER
    scene[np.abs(yy - lower_edge) < 1.6] = FLANGE_HIGHLIGHT
    scene[(yy > lower_edge + 1.6) & (yy < lower_edge + 4.5)] *= 0.7
    upper_edge = (main_y - rng.uniform(75, 115) + rng.uniform(-0.08, 0.08) * (columns - W / 2))[None, :]
    scene[yy < upper_edge] = METAL_UPPER * 1.15
    scene[np.abs(yy - upper_edge) < 1.2] = FLANGE_HIGHLIGHT * 0.9
    cavity_right = rng.uniform(0.26, 0.31) * W
    cavity = (xx < cavity_right) & (yy > main_y[None, :] + 8) & (yy < main_y[None, :] + rng.uniform(60, 90))
    scene[cavity] = CAVITY

    # A small hole above region C, and some clutter holes and darker patches away from the bead.
    c_x = float(np.mean(MAIN_LINE_REGIONS["C"])) * W
    _hole(scene, xx, yy, c_x, float(y_of(c_x)) - rng.uniform(24, 32), rng.uniform(7, 10))
    for _ in range(rng.integers(1, 4)):
        hx = rng.uniform(0.05, 0.6) * W
        hy = float(y_of(hx)) + rng.choice([-1, 1]) * rng.uniform(95, 170)
        if 20 < hy < H - 20:
            _hole(scene, xx, yy, hx, hy, rng.uniform(6, 14))
    for _ in range(rng.integers(1, 3)):
        ex, ey = rng.uniform(0.1, 0.9) * W, rng.uniform(0.05, 0.25) * H
        ellipse = ((xx - ex) / rng.uniform(30, 80)) ** 2 + ((yy - ey) / rng.uniform(15, 40)) ** 2 < 1
        scene[ellipse] *= 0.6

    # Metal texture: broad unevenness plus brushing streaks; then a slight optical softening.
    scene *= 1 + 0.05 * _smooth_noise(rng, 40) + 0.025 * _smooth_noise(rng, 0, kernel=(61, 1))
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
    reach = halfwidth * (1 + knobs.width_tolerance) + BEAD_SHADOW_PX + 1
    return PartGeometry(
        part=part,
        scene=scene,
        bead_distance=bead_distance,
        bead_halfwidth=halfwidth,
        bead_level=BEAD + knobs.bead_contrast,
        bead_band=np.flatnonzero(bead_distance < reach),
        region_points=region_points,
        region_tangents=region_tangents,
    )
