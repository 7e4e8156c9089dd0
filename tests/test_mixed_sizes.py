"""Real image sets come in many sizes: a part cropped to three sizes imports, and every kind of model evaluates it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main as gluelab
from engine.evaluation.evaluate import evaluate_job
from engine.ingest.importer import MIN_SIDE_PX, ImportRefused, import_dataset
from engine.ingest.part_data import load_part
from engine.jobs import Job
from engine.models.catalogue import MODELS
from engine.models.legacy.inspector import LegacyInspector
from store import dataset_parts, part_images
from tests.conftest import CROPS, crop_to_three_sizes, file_digest
from tests.test_models import tiny_presets  # noqa: F401  (fixture)

pytestmark = pytest.mark.heavy  # every kind of model on a part of three sizes

SIZES = {f"{right - left}x{bottom - top}" for left, top, right, bottom in CROPS}


@pytest.fixture(scope="module")
def cropped_part(tmp_path_factory, small_plant) -> Path:
    return crop_to_three_sizes(small_plant / "part1", tmp_path_factory.mktemp("cropped") / "part1")


@pytest.fixture(scope="module")
def cropped_store(tmp_path_factory, cropped_part) -> Path:
    store = tmp_path_factory.mktemp("cropped_store") / "s.duckdb"
    import_dataset("mvtec", "cropped", cropped_part, store)
    return store


def test_a_part_cropped_to_three_sizes_imports_with_its_sizes_said(cropped_part, tmp_path, capsys):
    store = tmp_path / "s.duckdb"
    command = ["import", "--layout", "mvtec", "--part", "cropped", "--store", str(store), str(cropped_part)]

    assert gluelab(command) == 0

    out, err = capsys.readouterr()
    assert "30 images (3 sizes, 480x400 to 640x480 (most 640x480))" in out
    assert "warning" not in err  # the crops keep a frame's proportions: nothing is stretched
    images = part_images("cropped", store)
    assert {f"{w}x{h}" for w, h in zip(images.width, images.height, strict=True)} == SIZES


@pytest.mark.parametrize(
    ("model", "settings"),
    [
        ("legacy", None),
        ("padim", None),
        ("patchcore", None),
        ("stfpm", {"epochs": 1}),  # one epoch: the point is that it trains and scores, not how well
    ],
)
def test_every_kind_of_model_evaluates_a_part_of_three_sizes(model, settings, cropped_store, tmp_path):
    data = load_part("cropped", cropped_store)
    assert len({image.shape for image in data.train + data.test}) == 3
    entry = MODELS[model]
    job = Job("cropped", model, entry.default_backbone, "cpu", 0, "baseline")

    outcome = evaluate_job(job, data, tmp_path, settings={**entry.presets["cpu"], **(settings or {})})

    metrics = outcome.metrics
    for name in ("image_auroc", "pixel_auroc", "aupro"):
        assert metrics[name] is not None and 0 <= metrics[name] <= 1, (name, metrics[name])
    print(model, {name: round(value, 3) for name, value in metrics.items() if value is not None})
    if model in ("padim", "patchcore"):  # memory-bank models find the part's defects and localise them, cropped or not
        assert metrics["image_auroc"] >= 0.6 and metrics["pixel_auroc"] >= 0.75, metrics
    assert np.isfinite(outcome.image_scores["score"]).all() and len(outcome.image_scores) == len(data.test)
    config = outcome.config
    assert config["pixel_metrics_size"] == [256, 256]  # every map and mask compared at one stated resolution
    assert len(config["input_size"]) == 2
    resized = [d for d in config["deviations"] if "differ in size" in d]
    if model == "legacy":  # the rule-based check works at one native size: it says it resized the rest
        assert config["input_size"] == [480, 640]
        assert resized == [
            "the part's images differ in size: the rule-based check compares image columns at one size, so images"
            " of 480x400, 560x420 were resized to 640x480 (its training images' most common size) before it"
        ]
    else:  # learned models resize every image to their input size, as they do for a part of one size
        assert config["input_size"] == [256, 256] and not resized
    json.dumps(config)  # the config is stored as JSON


def test_the_legacy_check_fits_and_scores_images_of_different_sizes():
    """The late failure the size refusal once hid: the legacy check stacked its training images to take their
    median, and `np.stack` raised 'all input arrays must have the same shape' inside the run."""
    rng = np.random.default_rng(0)

    def frame(height: int, width: int) -> np.ndarray:
        image = rng.integers(20, 40, (height, width), dtype=np.uint8)
        image[height // 2 - 10 : height // 2 + 10] = 200  # a bright horizontal bead across the middle
        return image

    train = [frame(120, 160), frame(120, 160), frame(100, 140), frame(90, 200)]
    inspector = LegacyInspector().fit(train)

    assert inspector.size_ == (120, 160)
    result = inspector.score(frame(60, 80))
    assert result.anomaly_map.shape == (120, 160) and np.isfinite(result.score)
    assert inspector.other_sizes_ == {(100, 140), (90, 200), (60, 80)}


def _one_mask_of_wrong_size(root: Path) -> tuple[str, str, str]:
    mask = sorted((root / "ground_truth").rglob("*_mask.png"))[0]
    image = root / "test" / mask.parent.name / mask.name.replace("_mask", "")
    width, height = Image.open(image).size
    Image.open(mask).resize((width // 2, height // 2), Image.NEAREST).save(mask)
    return str(mask), f"{width // 2}x{height // 2}", f"{width}x{height}"


def _one_image_too_small(root: Path) -> tuple[str, str, str]:
    image = sorted((root / "train" / "good").iterdir())[0]
    Image.open(image).resize((300, MIN_SIDE_PX - 12)).save(image)
    return str(image), f"300x{MIN_SIDE_PX - 12}", f"under the {MIN_SIDE_PX}-pixel minimum"


@pytest.mark.parametrize("damage", [_one_mask_of_wrong_size, _one_image_too_small])
def test_a_bad_file_among_mixed_sizes_is_refused_by_name_and_the_store_is_unchanged(
    damage, cropped_part, tmp_path, small_plant, capsys
):
    root = Path(shutil.copytree(cropped_part, tmp_path / "part"))
    bad_path, *said = damage(root)
    store = tmp_path / "s.duckdb"
    import_dataset("mvtec", "part16", small_plant / "part16", store)
    before = file_digest(store)

    code = gluelab(["import", "--layout", "mvtec", "--part", "cropped", "--store", str(store), str(root)])

    err = capsys.readouterr().err
    assert code != 0 and "store was not changed" in err
    line = next(line for line in err.splitlines() if bad_path in line)
    assert all(words in line for words in said), line
    assert file_digest(store) == before
    assert list(dataset_parts(store).part) == ["part16"]


def test_a_stretched_image_is_a_warning_naming_it_unless_the_plant_asks_for_strictness(
    cropped_part, tmp_path, monkeypatch, capsys
):
    root = Path(shutil.copytree(cropped_part, tmp_path / "part"))
    stretched = sorted((root / "test" / "good").iterdir())[0]
    Image.open(stretched).resize((640, 200)).save(stretched)
    store = tmp_path / "s.duckdb"
    command = ["import", "--layout", "mvtec", "--part", "cropped", "--store", str(store), str(root)]

    assert gluelab(command) == 0
    err = capsys.readouterr().err
    assert re.search(rf"warning: {re.escape(str(stretched))}: aspect ratio 3\.20 \(640x200\) is 2\.4 times wider", err)
    assert err.count("warning:") == 1

    config = tmp_path / "plant.toml"
    config.write_text("[import]\nstrict = true\n")
    monkeypatch.setenv("GLUELAB_CONFIG", str(config))
    before = file_digest(store)
    with pytest.raises(ImportRefused) as refused:
        import_dataset("mvtec", "strict", root, store)
    assert [path for path, _ in refused.value.problems] == [str(stretched)]
    assert "refused: [import] strict = true" in refused.value.problems[0][1]
    assert file_digest(store) == before

    config.write_text("[import]\nstrict = 'yes'\n")
    with pytest.raises(ValueError, match=re.escape(f"{config}: [import] strict must be true or false (got 'yes')")):
        import_dataset("mvtec", "strict", root, store)


@pytest.mark.usefixtures("tiny_presets")
def test_a_model_of_a_part_of_three_sizes_deploys_and_its_file_scores_as_its_run(cropped_store, tmp_path):
    """The exported graph takes frames at the model's input size, each resized on the host as the run resized it."""
    import onnxruntime

    from engine.evaluation.grid import run_grid
    from engine.jobs import plan_grid
    from engine.models.export import images_to_input
    from store.runs import run_image_scores

    store = tmp_path / "s.duckdb"
    shutil.copy(cropped_store, store)
    (job,) = plan_grid(["cropped"], ["padim"], None, 1, ["baseline"], "cpu", store)
    assert run_grid([job], store, show_progress=False).finished == 1
    run = job.run_id

    assert gluelab(["deploy", run, "--format", "onnx", "--out", str(tmp_path / "out"), "--store", str(store)]) == 0

    folder = tmp_path / "out" / "weights" / "onnx"
    description = json.loads((folder / "deployment.json").read_text())
    assert description["input"]["shape"] == ["batch", 3, 64, 64] and description["input"]["resize_on_host"]
    data = load_part("cropped", store)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    (scores,) = session.run(["pred_score"], {"input": images_to_input(data.test, (64, 64))})
    stored = run_image_scores(run, store).set_index("image_path")["score"].reindex(data.test_info["image_path"])
    np.testing.assert_allclose(scores.reshape(-1), stored.to_numpy(), rtol=1e-3, atol=1e-3)


def test_part_drilldown_shows_the_sizes_and_the_runs_page_what_each_run_read(cropped_store, tmp_path, monkeypatch):
    from engine.evaluation.grid import run_grid
    from engine.jobs import plan_grid
    from tests.conftest import open_page

    store = tmp_path / "s.duckdb"
    shutil.copy(cropped_store, store)
    assert run_grid(plan_grid(["cropped"], ["legacy"], None, 1, ["baseline"], "cpu", store), store, show_progress=False)

    app = open_page(store, "part_drilldown.py", monkeypatch)
    sizes = next(m.value for m in app.markdown if "Image sizes" in m.value)
    assert "3 sizes, 480x400 to 640x480 (most 640x480)" in sizes
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    (bars,) = [c for c in charts if c["layout"]["title"]["text"] == "Image sizes (pixels)"]
    assert sorted(bars["data"][0]["x"]) == sorted(SIZES)

    app = open_page(store, "runs.py", monkeypatch)
    table = next(frame.value for frame in app.dataframe if "input_size" in frame.value.columns)
    assert list(table["input_size"]) == ["640x480"]  # the legacy check's own size: its training images' most common
