"""Find the images, labels and masks of a dataset folder in each supported layout.

Discovery only looks at names and folders; `engine.ingest.validation` then opens every file.

- `mvtec`: `train/good/*`, `test/good/*`, `test/<defect>/*`, optional `ground_truth/<defect>/<stem>_mask.*`
  and an optional `manifest.csv` (written by `gluelab generate`) that adds region, severity, etc.
- `folder`: `normal/*` and `abnormal/*`, optional `mask/<same stem>.*` for abnormal images and optional
  `normal_test/*`; without `normal_test/`, every fifth normal image (in file-name order) is held out
  for testing.
- `elpv`: the `elpv-dataset` package's mono-crystalline cells; probability 0 is normal, 1 anomalous,
  the uncertain 1/3 and 2/3 are left out; every fourth normal cell (in file-name order) is a test image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pandas as pd

LAYOUTS = ("mvtec", "folder", "elpv")
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("region", "severity", "defect_area_px", "exposure_stops")
NUMERIC_MANIFEST_FIELDS: dict[str, type] = {"defect_area_px": int, "exposure_stops": float}
FOLDER_TEST_EVERY = 5
ELPV_TEST_EVERY = 4


@dataclass(frozen=True)
class Candidate:
    image: Path
    split: str
    label: str
    defect_type: str
    mask: Path | None


@dataclass
class Discovery:
    root: Path
    source: str
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    manifest: pd.DataFrame | None = None
    masks_expected: bool = False


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _masks_by_stem(folder: Path, suffix: str, discovery: Discovery) -> dict[str, Path]:
    masks = {}
    for path in _files(folder):
        if path.is_dir():
            discovery.problems.append((str(path), "unexpected folder among the masks"))
        elif not path.stem.endswith(suffix):
            discovery.problems.append((str(path), f"mask file name should end in '{suffix}' plus an extension"))
        else:
            masks[path.stem.removesuffix(suffix)] = path
    return masks


def _pair_masks(discovery: Discovery, images: list[Path], masks: dict[str, Path], defect: str) -> None:
    """Attach masks to anomalous images; report images without masks and masks without images."""
    stems = {image.stem for image in images}
    for image in images:
        mask = masks.get(image.stem)
        if mask is None:
            discovery.problems.append((str(image), "mask missing"))
        discovery.candidates.append(Candidate(image, "test", "anomalous", defect, mask))
    for stem, mask in masks.items():
        if stem not in stems:
            discovery.problems.append((str(mask), "mask without an image"))


def _image_files(folder: Path, discovery: Discovery) -> list[Path]:
    files = []
    for path in _files(folder):
        if path.is_dir():
            discovery.problems.append((str(path), "unexpected folder (expected image files here)"))
        else:
            files.append(path)
    return files


def _require_folder(folder: Path, discovery: Discovery, expected: str) -> bool:
    if folder.is_dir():
        return True
    discovery.problems.append((str(folder), f"missing: this layout expects {expected}"))
    return False


def discover_mvtec(root: Path) -> Discovery:
    discovery = Discovery(root, f"MVTec AD layout at {root}")
    expected = "train/good/, test/<defect or good>/ and optionally ground_truth/<defect>/"
    if not (
        _require_folder(root / "train" / "good", discovery, expected)
        & _require_folder(root / "test", discovery, expected)
    ):
        return discovery
    for image in _image_files(root / "train" / "good", discovery):
        discovery.candidates.append(Candidate(image, "train", "normal", "good", None))
    ground_truth = root / "ground_truth"
    discovery.masks_expected = ground_truth.is_dir()
    for folder in _files(root / "test"):
        if not folder.is_dir():
            discovery.problems.append(
                (str(folder), "unexpected file: test/ holds one folder per defect type and good/")
            )
            continue
        images = _image_files(folder, discovery)
        if folder.name == "good":
            discovery.candidates += [Candidate(image, "test", "normal", "good", None) for image in images]
        elif discovery.masks_expected:
            mask_folder = ground_truth / folder.name
            masks = _masks_by_stem(mask_folder, "_mask", discovery) if mask_folder.is_dir() else {}
            _pair_masks(discovery, images, masks, folder.name)
        else:
            discovery.candidates += [Candidate(image, "test", "anomalous", folder.name, None) for image in images]
    if discovery.masks_expected:
        for mask_folder in _files(ground_truth):
            if not (root / "test" / mask_folder.name).is_dir():
                discovery.problems.append((str(mask_folder), "masks for a defect type with no test images"))
    _read_manifest(discovery)
    return discovery


def _read_manifest(discovery: Discovery) -> None:
    path = discovery.root / MANIFEST_NAME
    if not path.is_file():
        return
    try:
        manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        discovery.problems.append((str(path), f"unreadable manifest: {error}"))
        return
    missing = {"image_path", *MANIFEST_FIELDS} - set(manifest.columns)
    if missing:
        discovery.problems.append((str(path), f"manifest lacks columns {', '.join(sorted(missing))}"))
        return
    problems = _manifest_row_problems(manifest)
    discovery.problems += [(f"{path} line {line}", why) for line, why in problems]
    listed = {c.image.relative_to(discovery.root).as_posix() for c in discovery.candidates}
    for image_path in sorted(set(manifest["image_path"]) - listed):
        discovery.problems.append((str(discovery.root / image_path), "listed in the manifest but not found"))
    if not problems:
        discovery.manifest = manifest.set_index("image_path")


def _manifest_row_problems(manifest: pd.DataFrame) -> list[tuple[int, str]]:
    """(line in the file, why) for values that are not numbers where numbers belong, and repeated images."""
    problems = []
    first_line: dict[str, int] = {}
    for line, row in enumerate(manifest.to_dict("records"), start=2):  # line 1 is the header
        image_path = str(row["image_path"])
        if image_path in first_line:
            problems.append((line, f"image_path {image_path} is listed again (first on line {first_line[image_path]})"))
        first_line.setdefault(image_path, line)
        for column, kind in NUMERIC_MANIFEST_FIELDS.items():
            value = str(row[column]).strip()
            if value and not _is_number(value, kind):
                problems.append(
                    (line, f"column {column}: {value!r} is not {'a whole number' if kind is int else 'a number'}")
                )
    return problems


def _is_number(text: str, kind: type) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return number == number and (kind is float or number.is_integer())  # NaN is no number here


def discover_folder(root: Path) -> Discovery:
    discovery = Discovery(root, f"folder layout at {root}")
    expected = "normal/ and abnormal/ (optionally mask/ and normal_test/)"
    if not (
        _require_folder(root / "normal", discovery, expected) & _require_folder(root / "abnormal", discovery, expected)
    ):
        return discovery
    normals = _image_files(root / "normal", discovery)
    if (root / "normal_test").is_dir():
        train, test = normals, _image_files(root / "normal_test", discovery)
    else:
        test = normals[FOLDER_TEST_EVERY - 1 :: FOLDER_TEST_EVERY]
        train = [image for image in normals if image not in set(test)]
    discovery.candidates += [Candidate(image, "train", "normal", "good", None) for image in train]
    discovery.candidates += [Candidate(image, "test", "normal", "good", None) for image in test]
    abnormal = _image_files(root / "abnormal", discovery)
    discovery.masks_expected = (root / "mask").is_dir()
    if discovery.masks_expected:
        _pair_masks(discovery, abnormal, _masks_by_stem(root / "mask", "", discovery), "abnormal")
    else:
        discovery.candidates += [Candidate(image, "test", "anomalous", "abnormal", None) for image in abnormal]
    return discovery


def discover_elpv(limit: int | None = None) -> Discovery:
    """Mono-crystalline cells of the elpv-dataset package; `limit` caps each class (file-name order)."""
    import elpv_dataset

    root = Path(elpv_dataset.__file__).parent / "data"
    labels = pd.read_csv(root / "labels.csv", sep=r"\s+", names=["path", "probability", "type"])
    mono = labels[labels["type"] == "mono"].sort_values("path")
    normal = list(mono.loc[mono["probability"] == 0.0, "path"])[:limit]
    defective = list(mono.loc[mono["probability"] == 1.0, "path"])[:limit]
    discovery = Discovery(root, f"elpv-dataset {version('elpv-dataset')}, mono-crystalline cells")
    for i, path in enumerate(normal):
        split = "test" if i % ELPV_TEST_EVERY == ELPV_TEST_EVERY - 1 else "train"
        discovery.candidates.append(Candidate(root / path, split, "normal", "good", None))
    discovery.candidates += [Candidate(root / path, "test", "anomalous", "defective", None) for path in defective]
    return discovery


def discover(layout: str, path: Path | None, limit: int | None = None) -> Discovery:
    if layout == "elpv":
        return discover_elpv(limit)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if path is None:
        raise ValueError(f"--layout {layout} needs the dataset folder PATH")
    root = Path(path).absolute()
    if not root.is_dir():
        discovery = Discovery(root, str(root))
        discovery.problems.append((str(root), "not a folder"))
        return discovery
    return discover_mvtec(root) if layout == "mvtec" else discover_folder(root)
