"""The synthetic glue-line plant: determinism, layout, exact masks, regions, brightness behaviour."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from engine.cli import main as gluelab
from engine.ingest.synthetic.geometry import build_geometry
from engine.ingest.synthetic.parts import DEFECT_TYPES, PART_KNOBS, REGIONS, knobs_table
from engine.ingest.synthetic.plant import MANIFEST_COLUMNS, generate_part, plan_part, render_planned
from engine.ingest.synthetic.render import EXTREME_STOPS
from engine.ingest.synthetic.sheet import COLUMNS, LABEL_WIDTH, TILE_HEIGHT, TILE_WIDTH

REPO = Path(__file__).resolve().parents[1]


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
    one = generate_part("part6", 12, seed=7, out_dir=tmp_path / "a", workers=1)
    two = generate_part("part6", 12, seed=7, out_dir=tmp_path / "b", workers=2)
    other = generate_part("part6", 12, seed=8, out_dir=tmp_path / "c", workers=1)
    first, second, third = _tree_bytes(one), _tree_bytes(two), _tree_bytes(other)
    assert len(first) == 12 + 2 + 1  # images, masks of the 2 defects, manifest
    assert first == second
    assert first.keys() == third.keys()
    assert first["train/good/000.png"] != third["train/good/000.png"]


def test_mvtec_layout_and_manifest(small_plant):
    part_dir = small_plant / "part1"
    manifest = pd.read_csv(part_dir / "manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert (manifest.split == "train").sum() == 18
    assert ((manifest.split == "test") & (manifest.label == "normal")).sum() == 6
    defective = manifest[manifest.label == "anomalous"]
    assert len(defective) == 6 and set(defective.defect_type) == set(DEFECT_TYPES)
    assert set(defective.region) == set(REGIONS)
    assert (defective.defect_area_px > 0).all() and (manifest[manifest.label == "normal"].defect_area_px == 0).all()
    for row in manifest.itertuples():
        with Image.open(part_dir / row.image_path) as image:
            assert (image.mode, image.size) == ("L", (640, 480))
        assert row.image_path.startswith(f"{row.split}/{row.defect_type}/")
        if row.label == "anomalous":
            mask = np.asarray(Image.open(part_dir / row.mask_path))
            assert row.mask_path == f"ground_truth/{row.defect_type}/{Path(row.image_path).stem}_mask.png"
            assert set(np.unique(mask)) == {0, 255} and (mask > 0).sum() == row.defect_area_px


@pytest.mark.parametrize("part", ["part1", "part16"])
def test_mask_covers_exactly_the_changed_pixels(part, small_plant):
    plans = [plan for plan in plan_part(30) if plan.defect_type != "good"]
    for plan in plans:
        rendered, defect = render_planned(part, 3, plan)
        on_disk = np.asarray(Image.open(small_plant / part / plan.image_path))
        mask = np.asarray(Image.open(small_plant / part / plan.mask_path)) > 0
        assert np.array_equal(on_disk, defect.image)
        outside, inside = ~mask, mask
        assert np.array_equal(defect.image[outside], rendered.image[outside]), plan
        assert (defect.image[inside] != rendered.image[inside]).all(), plan
        assert inside.sum() >= 20


def test_defects_sit_on_the_bead_in_their_region():
    geometry = build_geometry("part1")
    for plan in (plan for plan in plan_part(100) if plan.defect_type != "good"):
        rendered, defect = render_planned("part1", 0, plan)
        ys, xs = np.nonzero(defect.mask)
        centroid = np.array([xs.mean(), ys.mean()])
        points = geometry.region_points[plan.region]
        in_image = points @ rendered.camera[:, :2].T + rendered.camera[:, 2]
        assert np.min(np.linalg.norm(in_image - centroid, axis=1)) < 40, (plan, centroid)


def test_part16_brightness_spread_is_much_wider_than_part1(tmp_path):
    spreads, over_exposed = {}, {}
    for part in ("part1", "part16"):
        manifest = pd.read_csv(generate_part(part, 150, seed=0, out_dir=tmp_path, workers=2) / "manifest.csv")
        normal = manifest[manifest.label == "normal"]
        spreads[part] = normal.mean_brightness.std()
        over_exposed[part] = int(normal.over_exposed.sum())
    print(
        f"\nstd of mean grey level over normal images: part1 {spreads['part1']:.1f}, part16 {spreads['part16']:.1f}"
        f" ({spreads['part16'] / spreads['part1']:.1f}x); over-exposed normal images: {over_exposed}"
    )
    assert spreads["part16"] > 4 * spreads["part1"]
    assert over_exposed["part1"] == 0 and over_exposed["part16"] >= 3


def test_regions_and_geometry_exist_for_every_part():
    for part in PART_KNOBS:
        geometry = build_geometry(part)
        assert set(geometry.region_points) == set(REGIONS)
        for region, points in geometry.region_points.items():
            assert len(points) >= 5, (part, region)
            assert ((points[:, 0] >= 0) & (points[:, 0] < 640) & (points[:, 1] >= 0) & (points[:, 1] < 480)).all()


def test_knob_table_in_docs_matches_the_code():
    assert knobs_table() in (REPO / "docs" / "synthetic_plant.md").read_text()


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "part1").mkdir()
    (tmp_path / "part1" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a generated part"):
        generate_part("part1", 10, seed=0, out_dir=tmp_path)
    assert (tmp_path / "part1" / "precious.txt").exists()


@lru_cache(maxsize=1)
def _part16_acceptable_frames() -> list:
    """(plan, rendered frame) for every acceptable frame of a 500-image part16, seed 0."""
    return [(plan, render_planned("part16", 0, plan)[0]) for plan in plan_part(500) if plan.defect_type == "good"]


def _part16_frames(keep) -> list:
    return [(plan, rendered) for plan, rendered in _part16_acceptable_frames() if keep(plan, rendered)]


def _bead_core(part: str, camera: np.ndarray) -> np.ndarray:
    """Pixels of the image that show the middle half of the bead's width, through the frame's camera pose."""
    geometry = build_geometry(part)
    distance = cv2.warpAffine(geometry.bead_distance, camera, (640, 480), flags=cv2.INTER_LINEAR, borderValue=999.0)
    return distance < 0.5 * geometry.bead_halfwidth * (1 - PART_KNOBS[part].width_tolerance)


def test_over_exposed_frames_of_part16_clip_the_bead_at_full_scale():
    bright = _part16_frames(lambda plan, r: r.exposure_stops >= EXTREME_STOPS)
    assert len(bright) >= 2
    for plan, rendered in bright:
        core = _bead_core("part16", rendered.camera)
        clipped = (rendered.image[core] == 255).mean()
        assert rendered.over_exposed, plan
        assert clipped > 0.2, (plan, clipped)


def test_under_exposed_frames_of_part16_crush_the_dark_metal_to_black_and_dim_the_bead():
    dark = _part16_frames(lambda plan, r: r.exposure_stops <= -EXTREME_STOPS)
    ordinary = _part16_frames(lambda plan, r: abs(r.exposure_stops) < 0.1)
    assert dark and ordinary
    ordinary_bead = np.mean([r.image[_bead_core("part16", r.camera)].mean() for _, r in ordinary])
    ordinary_black = np.mean([(r.image == 0).mean() for _, r in ordinary])
    for plan, rendered in dark:
        assert (rendered.image == 0).mean() > max(5 * ordinary_black, 0.002), plan
        assert rendered.image[_bead_core("part16", rendered.camera)].mean() < 0.7 * ordinary_bead, plan


def test_training_frames_are_the_lines_ordinary_frames_and_extremes_come_only_among_acceptable_test_frames():
    frames = _part16_acceptable_frames()
    train = [abs(r.exposure_stops) for plan, r in frames if plan.split == "train"]
    test = [abs(r.exposure_stops) for plan, r in frames if plan.split == "test"]
    assert max(train) < EXTREME_STOPS
    assert sum(stops >= EXTREME_STOPS for stops in test) >= 0.1 * len(test)


def test_contact_sheet_shows_every_part_with_its_exposure_extremes_and_each_defect_type(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert gluelab(["generate", "--parts", "part1", "part16", "--sheet", str(sheet)]) == 0
    assert str(sheet) in capsys.readouterr().out
    image = cv2.imread(str(sheet))
    assert image.shape == (24 + 2 * TILE_HEIGHT, LABEL_WIDTH + len(COLUMNS) * TILE_WIDTH, 3)
    assert not (tmp_path / "part1").exists()
    part16_row = image[24 + TILE_HEIGHT :, LABEL_WIDTH:]
    tiles = {column: part16_row[:, i * TILE_WIDTH : (i + 1) * TILE_WIDTH] for i, column in enumerate(COLUMNS)}
    for column, tile in tiles.items():
        assert tile[30:].std() > 10, f"part16 has no {column} tile"
    outline = (tile[..., 2] > 200) & (tile[..., 0] < 80)
    assert outline.sum() > 20  # the last defect's mask outline, in red


def test_contact_sheet_must_be_a_png(capsys):
    with pytest.raises(SystemExit):
        gluelab(["generate", "--parts", "part1", "--sheet", "sheet.jpg"])
    assert "must be a file name ending in .png (got 'sheet.jpg')" in capsys.readouterr().err


def test_train_sets_the_training_images_and_the_rest_split_evenly_into_good_and_defective(tmp_path, capsys):
    plans = plan_part(1340, n_train=760)
    kinds = pd.Series([(plan.split, plan.defect_type == "good") for plan in plans]).value_counts()
    assert kinds[("train", True)] == 760
    assert kinds[("test", True)] == kinds[("test", False)] == 290
    assert gluelab(["generate", "--parts", "part1", "--images", "10", "--train", "9", "--out", str(tmp_path)]) == 2
    assert "--train must leave at least 2 of the 10 images for testing (got 9)" in capsys.readouterr().err
    assert not (tmp_path / "part1").exists()
