"""Importing image sets: MVTec / folder / elpv layouts, and refusal of every kind of bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from engine.cli import main as gluelab
from engine.ingest.importer import ImportRefused, import_dataset
from store import dataset_parts, part_images
from tests.conftest import file_digest


@pytest.fixture
def mvtec_copy(small_plant, tmp_path) -> Path:
    """A private copy of generated part1 that a test may damage."""
    return Path(shutil.copytree(small_plant / "part1", tmp_path / "dataset"))


@pytest.fixture
def populated_store(small_plant, tmp_path) -> Path:
    store = tmp_path / "results.duckdb"
    import_dataset("mvtec", "part16", small_plant / "part16", store)
    return store


def test_generate_with_store_registers_parts_and_import_reads_the_manifest(tmp_path, capsys):
    store = tmp_path / "s.duckdb"
    assert (
        gluelab(["generate", "--parts", "part1", "--images", "10", "--out", str(tmp_path / "d"), "--store", str(store)])
        == 0
    )
    registered = dataset_parts(store)
    assert list(registered.part) == ["part1"] and registered.has_manifest[0] and registered.has_masks[0]

    assert (
        gluelab(
            ["import", "--layout", "mvtec", "--part", "again", "--store", str(store), str(tmp_path / "d" / "part1")]
        )
        == 0
    )
    images = part_images("again", store)
    manifest = pd.read_csv(tmp_path / "d" / "part1" / "manifest.csv")
    assert len(images) == len(manifest) == 10
    defective = images[images.label == "anomalous"].set_index("image_path")
    expected = manifest[manifest.label == "anomalous"].set_index("image_path")
    assert defective.region.to_dict() == expected.region.to_dict()
    assert defective.defect_area_px.to_dict() == expected.defect_area_px.to_dict()
    assert np.allclose(
        images.set_index("image_path").mean_brightness.sort_index(),
        manifest.set_index("image_path").mean_brightness.sort_index(),
    )
    assert "10 images" in capsys.readouterr().out


def test_folder_layout_with_rgb_images_and_no_masks(tmp_path, small_plant):
    root = tmp_path / "plant_images"
    for folder, files in (
        ("normal", sorted((small_plant / "part1" / "train" / "good").glob("*.png"))[:10]),
        ("abnormal", sorted((small_plant / "part1" / "test").glob("[!g]*/*.png"))),
    ):
        (root / folder).mkdir(parents=True)
        for i, source in enumerate(files):
            Image.open(source).convert("RGB").resize((320, 240)).save(root / folder / f"{i:02d}.jpg")
    store = tmp_path / "s.duckdb"
    dataset = import_dataset("folder", "customer_part", root, store)
    assert not dataset.has_masks
    images = part_images("customer_part", store)
    assert set(images.original_mode) == {"RGB"}
    assert (images.width == 320).all() and (images.height == 240).all()
    assert images.mask_path.isna().all()
    assert (images.split == "test").sum() == 2 + 6  # every fifth of 10 normal images, and all abnormal ones


def _corrupt(root: Path) -> str:
    path = root / "train" / "good" / "003.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return str(path)


def _truncated(root: Path) -> str:
    path = root / "test" / "good" / "001.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(path)


def _not_an_image(root: Path) -> str:
    path = root / "train" / "good" / "notes.png"
    path.write_text("shift log, not a picture")
    return str(path)


def _mask_missing(root: Path) -> str:
    mask = next((root / "ground_truth").rglob("*_mask.png"))
    mask.unlink()
    return str(root / "test" / mask.parent.name / mask.name.replace("_mask", ""))


def _mask_without_image(root: Path) -> str:
    mask = next((root / "ground_truth").rglob("*_mask.png"))
    orphan = mask.with_name("999_mask.png")
    shutil.copy(mask, orphan)
    return str(orphan)


def _mask_size_mismatch(root: Path) -> str:
    mask = next((root / "ground_truth").rglob("*_mask.png"))
    Image.open(mask).resize((320, 240)).save(mask)
    return str(mask)


def _empty_train_split(root: Path) -> str:
    for image in (root / "train" / "good").iterdir():
        image.unlink()
    (root / "manifest.csv").unlink()
    return str(root)


def _oversized(root: Path) -> str:
    path = root / "train" / "good" / "huge.png"
    Image.new("L", (8000, 7000)).save(path)  # 56 MP
    return str(path)


def _symlink_outside(root: Path) -> str:
    outside = root.parent / "elsewhere.png"
    shutil.copy(root / "train" / "good" / "000.png", outside)
    link = root / "train" / "good" / "linked.png"
    link.symlink_to(outside)
    return str(link)


def _wrong_layout(root: Path) -> str:
    shutil.rmtree(root / "train")
    return str(root / "train" / "good")


def _rgb_mask(root: Path) -> str:
    mask = next((root / "ground_truth").rglob("*_mask.png"))
    Image.open(mask).convert("RGB").save(mask)
    return str(mask)


def _inverted_mask(root: Path) -> str:
    mask = next((root / "ground_truth").rglob("*_mask.png"))
    Image.fromarray(255 - np.asarray(Image.open(mask))).save(mask)
    return str(mask)


def _float_image(root: Path) -> str:
    path = root / "train" / "good" / "float.tiff"
    Image.fromarray(np.asarray(Image.open(root / "train" / "good" / "000.png"), np.float32) / 255).save(path)
    return str(path)


def _manifest_not_a_number(root: Path) -> str:
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("defect_area_px")] = "abc"
    lines[3] = ",".join(row)
    manifest.write_text("\n".join(lines) + "\n")
    return f"{manifest} line 4"


def _manifest_row_twice(root: Path) -> str:
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[2]]) + "\n")
    return f"{manifest} line {len(lines) + 1}"


BAD_INPUTS = {
    "corrupt": (_corrupt, "corrupt"),
    "truncated": (_truncated, "truncated"),
    "not an image": (_not_an_image, "not an image"),
    "mask missing": (_mask_missing, "mask missing"),
    "mask without image": (_mask_without_image, "mask without an image"),
    "mask size mismatch": (_mask_size_mismatch, "does not match|but its image is"),
    "empty split": (_empty_train_split, "no training images"),
    "oversized": (_oversized, "50 MP"),
    "symlink outside": (_symlink_outside, "symlink leads outside"),
    "wrong layout": (_wrong_layout, "this layout expects"),
    "RGB mask": (_rgb_mask, "mask is RGB, not single-channel"),
    "inverted mask": (_inverted_mask, r"mask marks 9\d\.\d% of the image as defect .* is it inverted"),
    "float image": (_float_image, "32-bit floating-point image"),
    "manifest not a number": (_manifest_not_a_number, "column defect_area_px: 'abc' is not a whole number"),
    "manifest row twice": (_manifest_row_twice, r"image_path \S+ is listed again \(first on line 3\)"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_is_refused_naming_the_file_and_the_store_is_unchanged(kind, mvtec_copy, populated_store, capsys):
    damage, reason = BAD_INPUTS[kind]
    bad_path = damage(mvtec_copy)
    before = file_digest(populated_store)

    code = gluelab(["import", "--layout", "mvtec", "--part", "part1", "--store", str(populated_store), str(mvtec_copy)])

    err = capsys.readouterr().err
    assert code != 0
    assert bad_path in err, err
    assert re.search(reason, err), err
    assert "store was not changed" in err
    assert file_digest(populated_store) == before
    assert list(dataset_parts(populated_store).part) == ["part16"]


def test_refused_import_does_not_create_a_store(tmp_path, mvtec_copy):
    store = tmp_path / "new.duckdb"
    _corrupt(mvtec_copy)
    with pytest.raises(ImportRefused) as refused:
        import_dataset("mvtec", "part1", mvtec_copy, store)
    assert len(refused.value.problems) == 1
    assert file_digest(store) is None


def test_every_problem_is_reported_at_once(mvtec_copy, tmp_path):
    paths = {_corrupt(mvtec_copy), _not_an_image(mvtec_copy), _mask_without_image(mvtec_copy)}
    with pytest.raises(ImportRefused) as refused:
        import_dataset("mvtec", "part1", mvtec_copy, tmp_path / "s.duckdb")
    assert {path for path, _ in refused.value.problems} == paths


def test_elpv_mono_cells_import(tmp_path):
    store = tmp_path / "s.duckdb"
    dataset = import_dataset("elpv", "elpv_mono", None, store, limit=40)
    images = part_images("elpv_mono", store)
    assert dataset.n_images == 80 and not dataset.has_masks
    assert (images.label == "normal").sum() == 40 and (images.label == "anomalous").sum() == 40
    assert ((images.split == "test") & (images.label == "normal")).sum() == 10
    assert (images.width == 300).all() and (images.height == 300).all()
    labels = pd.read_csv(Path(dataset.root) / "labels.csv", sep=r"\s+", names=["path", "probability", "type"])
    labels = labels.set_index("path")
    assert (labels.loc[images.image_path, "type"] == "mono").all()
    expected = images.label.map({"normal": 0.0, "anomalous": 1.0}).to_numpy()
    assert np.array_equal(labels.loc[images.image_path, "probability"].to_numpy(), expected)


def _sixteen_bit(path: Path) -> np.ndarray:
    """Rewrite an 8-bit PNG as the same picture in 16 bits (v * 257); return the 8-bit original."""
    original = np.asarray(Image.open(path).convert("L"))
    Image.fromarray(original.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode == "I;16"
    return original


def test_a_16_bit_image_is_scaled_to_8_bits_at_import_and_when_loaded_for_evaluation(mvtec_copy, tmp_path):
    from engine.ingest.part_data import load_part

    train = sorted((mvtec_copy / "train" / "good").iterdir())[0]
    test = sorted((mvtec_copy / "test" / "good").iterdir())[0]
    originals = {path.relative_to(mvtec_copy).as_posix(): _sixteen_bit(path) for path in (train, test)}
    store = tmp_path / "s.duckdb"

    import_dataset("mvtec", "part1", mvtec_copy, store)

    rows = part_images("part1", store).set_index("image_path").loc[list(originals)]
    assert set(rows.original_mode) == {"I;16"}
    for image_path, original in originals.items():
        assert rows.loc[image_path, "mean_brightness"] == pytest.approx(original.mean(), abs=1e-3)
        assert rows.loc[image_path, "over_exposed"] == bool((original == 255).mean() >= 0.02)
    data = load_part("part1", store)
    train_index = sorted(part_images("part1", store).query("split == 'train'").image_path).index(
        train.relative_to(mvtec_copy).as_posix()
    )
    assert np.array_equal(data.train[train_index], originals[train.relative_to(mvtec_copy).as_posix()])
    test_index = list(data.test_info.image_path).index(test.relative_to(mvtec_copy).as_posix())
    assert np.array_equal(data.test[test_index], originals[test.relative_to(mvtec_copy).as_posix()])


def test_limit_is_refused_for_layouts_that_import_every_image(mvtec_copy, tmp_path, capsys):
    store = tmp_path / "s.duckdb"
    code = gluelab(
        ["import", "--layout", "mvtec", "--part", "p", "--limit", "5", "--store", str(store), str(mvtec_copy)]
    )
    assert code == 2
    assert "--limit 5 applies only to --layout elpv" in capsys.readouterr().err
    assert file_digest(store) is None
