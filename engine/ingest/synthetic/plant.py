"""Generate synthetic parts in the MVTec AD layout with a manifest of what each image shows.

Layout of one part folder::

    <out>/<part>/train/good/000.png            acceptable images for training
    <out>/<part>/test/good/000.png             acceptable images for testing
    <out>/<part>/test/<defect>/000.png         defective images (push, swirl, bulge, pinch)
    <out>/<part>/ground_truth/<defect>/000_mask.png
    <out>/<part>/manifest.csv                  one row per image (see MANIFEST_COLUMNS)

Each image is drawn from its own generator seeded by (seed, part number, image index), so output
is byte-identical for the same seed whatever the number of worker processes.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from engine.ingest.synthetic.defects import MIN_DEFECT_AREA_PX, apply_warp_defect
from engine.ingest.synthetic.geometry import build_geometry
from engine.ingest.synthetic.parts import DEFECT_TYPES, PART_KNOBS, REGIONS, SEVERITIES, part_number
from engine.ingest.synthetic.render import render_normal

MANIFEST_NAME = "manifest.csv"
TEST_GOOD_SHARE = 0.2
DEFECTIVE_SHARE = 0.2
MIN_IMAGES = 5
DEFAULT_IMAGES = 300


@dataclass(frozen=True)
class ImagePlan:
    index: int
    split: str  # "train" or "test"
    defect_type: str  # "good" or one of DEFECT_TYPES
    region: str  # "" for good images
    severity: str  # "" for good images
    image_path: str  # relative to the part folder
    mask_path: str  # "" for good images


@dataclass(frozen=True)
class ManifestRow:
    image_path: str
    part: str
    split: str
    label: str  # "normal" or "anomalous"
    defect_type: str
    region: str
    severity: str
    defect_area_px: int
    mean_brightness: float
    over_exposed: bool
    exposure_stops: float
    mask_path: str


MANIFEST_COLUMNS = list(ManifestRow.__dataclass_fields__)


def plan_part(n_images: int, n_train: int | None = None) -> list[ImagePlan]:
    """Split `n_images` into train good / test good / test defective and assign every defect.

    By default 60 % train; with `n_train`, that many training images and the rest split evenly between good
    and defective test images (the defective ones get the odd one). Defect k gets type k mod 4, region k mod 5
    and severity k mod 3, so 60 defects cover every (type, region, severity) combination exactly once.
    """
    if n_images < MIN_IMAGES:
        raise ValueError(f"--images must be at least {MIN_IMAGES} (got {n_images})")
    if n_train is None:
        n_defective = max(1, round(n_images * DEFECTIVE_SHARE))
        n_test_good = max(1, round(n_images * TEST_GOOD_SHARE))
        n_train = n_images - n_defective - n_test_good
    elif not 1 <= n_train <= n_images - 2:
        raise ValueError(f"--train must leave at least 2 of the {n_images} images for testing (got {n_train})")
    else:
        n_test_good = (n_images - n_train) // 2
        n_defective = n_images - n_train - n_test_good
    plans = [ImagePlan(i, "train", "good", "", "", f"train/good/{i:03d}.png", "") for i in range(n_train)]
    plans += [ImagePlan(n_train + i, "test", "good", "", "", f"test/good/{i:03d}.png", "") for i in range(n_test_good)]
    per_type: Counter[str] = Counter()
    for k in range(n_defective):
        kind = DEFECT_TYPES[k % len(DEFECT_TYPES)]
        name = f"{per_type[kind]:03d}"
        per_type[kind] += 1
        plans.append(
            ImagePlan(
                n_train + n_test_good + k,
                "test",
                kind,
                REGIONS[k % len(REGIONS)],
                SEVERITIES[k % len(SEVERITIES)],
                f"test/{kind}/{name}.png",
                f"ground_truth/{kind}/{name}_mask.png",
            )
        )
    return plans


def image_rng(seed: int, part: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, part_number(part), index])


def render_planned(part: str, seed: int, plan: ImagePlan):
    """The acceptable render of a planned image and, for a defective plan, its defect."""
    geometry, knobs = build_geometry(part), PART_KNOBS[part]
    rng = image_rng(seed, part, plan.index)
    rendered = render_normal(geometry, knobs, rng, representative=plan.split == "train" or plan.defect_type != "good")
    if plan.defect_type == "good":
        return rendered, None
    points, tangents = geometry.region_points[plan.region], geometry.region_tangents[plan.region]
    rotation = rendered.camera[:, :2]
    for _ in range(10):
        i = int(rng.integers(len(points)))
        centre = rendered.camera @ np.append(points[i], 1.0)
        defect = apply_warp_defect(rendered.image, centre, rotation @ tangents[i], plan.defect_type, plan.severity, rng)
        if defect.area_px >= MIN_DEFECT_AREA_PX:
            return rendered, defect
    raise RuntimeError(f"{part} image {plan.index}: no visible {plan.defect_type} defect in region {plan.region}")


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def _generate_one(args: tuple[str, int, ImagePlan, Path]) -> ManifestRow:
    part, seed, plan, part_dir = args
    rendered, defect = render_planned(part, seed, plan)
    image = rendered.image if defect is None else defect.image
    _write_png(part_dir / plan.image_path, image)
    if defect is not None:
        _write_png(part_dir / plan.mask_path, defect.mask.astype(np.uint8) * 255)
    return ManifestRow(
        image_path=plan.image_path,
        part=part,
        split=plan.split,
        label="normal" if defect is None else "anomalous",
        defect_type=plan.defect_type,
        region=plan.region,
        severity=plan.severity,
        defect_area_px=0 if defect is None else defect.area_px,
        mean_brightness=round(float(image.mean()), 3),
        over_exposed=rendered.over_exposed,
        exposure_stops=round(rendered.exposure_stops, 4),
        mask_path=plan.mask_path,
    )


def _clear_previous_output(part_dir: Path) -> None:
    """Remove an earlier generated part folder; refuse to delete anything gluelab did not write."""
    if not part_dir.exists():
        return
    if not (part_dir / MANIFEST_NAME).is_file():
        raise FileExistsError(
            f"{part_dir} exists and is not a generated part (no {MANIFEST_NAME}); choose another --out"
        )
    shutil.rmtree(part_dir)


def generate_part(
    part: str, n_images: int, seed: int, out_dir: Path, workers: int = 1, n_train: int | None = None
) -> Path:
    """Write one part's images, masks and manifest under `out_dir/part`; returns that folder."""
    part_number(part)
    plans = plan_part(n_images, n_train)
    part_dir = Path(out_dir) / part
    _clear_previous_output(part_dir)
    tasks = [(part, seed, plan, part_dir) for plan in plans]
    progress = {"total": len(tasks), "desc": f"generating {part}", "unit": "img", "leave": False, "disable": None}
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(tqdm(pool.map(_generate_one, tasks, chunksize=8), **progress))
    else:
        rows = [_generate_one(task) for task in tqdm(tasks, **progress)]
    with open(part_dir / MANIFEST_NAME, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return part_dir
