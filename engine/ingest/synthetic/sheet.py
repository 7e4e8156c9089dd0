"""A contact sheet of synthetic parts: one row per part, the frames a reviewer wants to see side by side.

Each row shows an ordinary acceptable frame and the first defect of each type with its mask outlined
in red, as `gluelab generate` writes them for the same seed, and the part's first over-exposed and
first under-exposed acceptable frames, drawn from a stream of further acceptable frames of the part
(or a note that the part's knobs give it none).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.ingest.synthetic.geometry import build_geometry
from engine.ingest.synthetic.parts import DEFECT_TYPES, PART_KNOBS, part_number
from engine.ingest.synthetic.plant import DEFAULT_IMAGES, image_rng, plan_part, render_planned
from engine.ingest.synthetic.render import EXTREME_STOPS, render_normal

TILE_WIDTH, TILE_HEIGHT = 320, 240
LABEL_WIDTH = 90
OUTLINE_BGR = (40, 40, 230)
COLUMNS = ("normal", "over-exposed", "under-exposed", *DEFECT_TYPES)
EXTRA_FRAMES = 1000  # how many further acceptable frames the sheet looks through for exposure extremes
FIRST_EXTRA_INDEX = 100_000  # their generator indices, clear of any planned image's


def _tile(image: np.ndarray, caption: str, mask: np.ndarray | None = None) -> np.ndarray:
    colour = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if mask is not None:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(colour, contours, -1, OUTLINE_BGR, 2)
    tile = cv2.resize(colour, (TILE_WIDTH, TILE_HEIGHT), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE_WIDTH, 18), (0, 0, 0), -1)
    cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _empty_tile(caption: str) -> np.ndarray:
    tile = np.full((TILE_HEIGHT, TILE_WIDTH, 3), 40, np.uint8)
    cv2.putText(tile, caption, (10, TILE_HEIGHT // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (220, 220, 220), 1, cv2.LINE_AA)
    return tile


def _extreme_tiles(part: str, seed: int) -> dict[str, np.ndarray]:
    geometry, knobs = build_geometry(part), PART_KNOBS[part]
    wanted = {"over-exposed": knobs.overexposed_share > 0, "under-exposed": knobs.underexposed_share > 0}
    tiles = {
        kind: _empty_tile(f"none: {kind.replace('-', '')}_share is 0") for kind, occurs in wanted.items() if not occurs
    }
    for index in range(FIRST_EXTRA_INDEX, FIRST_EXTRA_INDEX + EXTRA_FRAMES):
        if len(tiles) == len(wanted):
            break
        rendered = render_normal(geometry, knobs, image_rng(seed, part, index))
        stops = rendered.exposure_stops
        kind = "over-exposed" if stops >= EXTREME_STOPS else "under-exposed" if stops <= -EXTREME_STOPS else ""
        if kind and kind not in tiles:
            tiles[kind] = _tile(rendered.image, f"{kind}, acceptable, {stops:+.2f} stops")
    return tiles


def part_row(part: str, seed: int, n_images: int = DEFAULT_IMAGES) -> np.ndarray:
    """One part's row of the sheet (BGR): frames of an `n_images` part drawn with `seed`, then its extremes."""
    tiles = _extreme_tiles(part, seed)
    for plan in plan_part(n_images):
        if plan.defect_type == "good" and "normal" not in tiles:
            rendered, _ = render_planned(part, seed, plan)
            tiles["normal"] = _tile(rendered.image, f"acceptable, {rendered.exposure_stops:+.2f} stops")
        elif plan.defect_type != "good" and plan.defect_type not in tiles:
            _, defect = render_planned(part, seed, plan)
            assert defect is not None
            caption = f"{plan.defect_type}, {plan.severity}, region {plan.region}"
            tiles[plan.defect_type] = _tile(defect.image, caption, defect.mask)
    row = [tiles.get(column, _empty_tile(f"no {column} frame in {EXTRA_FRAMES}")) for column in COLUMNS]
    label = np.full((TILE_HEIGHT, LABEL_WIDTH, 3), 255, np.uint8)
    cv2.putText(label, part, (8, TILE_HEIGHT // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
    return np.hstack([label, *row])


def write_sheet(parts: list[str], seed: int, path: Path, n_images: int = DEFAULT_IMAGES) -> Path:
    """Write the contact sheet of `parts` to `path` (PNG); returns the path."""
    for part in parts:
        part_number(part)
    header = np.full((24, LABEL_WIDTH + TILE_WIDTH * len(COLUMNS), 3), 255, np.uint8)
    for i, column in enumerate(COLUMNS):
        x = LABEL_WIDTH + i * TILE_WIDTH + 8
        cv2.putText(header, column, (x, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.vstack([header, *(part_row(part, seed, n_images) for part in parts)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".png" or not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write the contact sheet to {path}; give a writable path ending in .png")
    return path
