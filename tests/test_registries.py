"""One definition per concept: a metric or a model added to its registry reaches everything derived from it.

Metrics (`store.metrics`) feed the evaluation's name lists, the leaderboard query, the result tables and the
dashboard's labels; models (`engine.models.registry`) feed `gluelab models`, the dashboard's names, the grid
and the model tests' parametrisation. The dashboard reads both without torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine.analysis.results_table import METRIC_ORDER, RUNTIME_METRICS, readable_results, results_for_part
from engine.cli import main as gluelab
from engine.evaluation.evaluate import evaluate_job
from engine.evaluation.metrics import IMAGE_METRICS, PIXEL_METRICS, image_metrics, pixel_metrics
from engine.ingest.part_data import load_part
from engine.jobs import plan_grid
from engine.models.catalogue import MODELS, get_model
from engine.models.registry import ModelEntry
from store.connection import insert_frame, write_store
from store.metrics import METRICS, Metric
from store.published import read_published_csv
from store.runs import PRESETS, leaderboard, runs
from tests.conftest import generated_store, open_page

PROJECT = Path(__file__).resolve().parent.parent
APP = PROJECT / "dashboard" / "app.py"
PAGES = sorted(path.name for path in (APP.parent / "views").glob("*.py"))
HEAVY = ("torch", "torchvision", "anomalib", "lightning", "timm")

PEAK_MEMORY_GB = Metric("peak_memory_gb", "Peak memory (GB)", "runtime", "lower", "GB", 3, "peak_memory_mb / 1024")
DUMMY_SCORE = Metric("image_dummy", "Dummy score", "image", "higher")


@pytest.fixture(scope="module")
def legacy_store(tmp_path_factory) -> Path:
    """part1 (25 images) with two finished legacy runs and the study's published figures."""
    store = generated_store(tmp_path_factory.mktemp("registries"))
    assert gluelab(["evaluate", "--parts", "part1", "--models", "legacy", "--seeds", "2", "--store", str(store)]) == 0
    assert gluelab(["load-published", "--store", str(store)]) == 0
    return store


@pytest.fixture
def store_copy(legacy_store, tmp_path) -> Path:
    """A copy of the legacy store that a test may write to."""
    return Path(shutil.copy(legacy_store, tmp_path / "copy.duckdb"))


@pytest.fixture
def add_metric(monkeypatch) -> Callable[[Metric], None]:
    """Adds a metric to the registry for one test; the registry is restored afterwards."""
    return lambda entry: monkeypatch.setitem(METRICS, entry.name, entry)


@pytest.fixture
def add_model(monkeypatch) -> Callable[[ModelEntry], None]:
    """Adds a model to the registry for one test; the registry is restored afterwards."""
    return lambda entry: monkeypatch.setitem(MODELS, entry.name, entry)


def column_labels(app: AppTest, index: int = 0) -> str:
    """The column settings (labels, formats) a page gave its `index`-th table, as Streamlit sends them."""
    return app.dataframe[index].proto.columns


def test_a_runtime_metric_added_to_the_registry_reaches_the_leaderboard_tables_and_labels(
    legacy_store, add_metric, monkeypatch
):
    """Runtime metrics are columns of `runs`: one entry with its `source` expression is all a new one needs."""
    assert "peak_memory_gb" not in set(leaderboard(legacy_store)["metric"])
    add_metric(PEAK_MEMORY_GB)

    board = leaderboard(legacy_store).query("metric == 'peak_memory_gb'")
    measured = runs(legacy_store)["peak_memory_mb"] / 1024
    assert len(board) == 1 and board["n_seeds"].item() == 2
    assert board["mean"].item() == pytest.approx(measured.mean())

    assert "peak_memory_gb" in RUNTIME_METRICS and "peak_memory_gb" in METRIC_ORDER
    wide = results_for_part(legacy_store, "part1", "baseline")
    assert wide["peak_memory_gb_mean"].notna().sum() == 1  # the local legacy row; the study published no memory
    readable = readable_results(wide, labels=True)
    local = readable[readable["source"] == "local"].iloc[0]
    assert local["Peak memory (GB)"] == f"{measured.mean():.3f} ± {measured.std():.3f}"

    from dashboard.widgets import METRIC_LABELS

    assert METRIC_LABELS["peak_memory_gb"] == "Peak memory (GB)"
    app = open_page(legacy_store, "runtime.py", monkeypatch)
    assert '"Peak memory (GB)"' in column_labels(app)


def test_a_computed_metric_added_to_the_registry_reaches_the_evaluation_tables_and_labels(store_copy, add_metric):
    """A metric the evaluation computes is stored per run; the registry decides where it is listed and shown."""
    finished = runs(store_copy)["run_id"]
    with write_store(store_copy) as con:
        insert_frame(con, "metrics", pd.DataFrame({"run_id": finished, "metric": "image_dummy", "value": [0.25, 0.75]}))
    assert "image_dummy_mean" not in results_for_part(store_copy, "part1")  # not registered: not shown

    add_metric(DUMMY_SCORE)
    assert "image_dummy" in IMAGE_METRICS and "image_dummy" not in PIXEL_METRICS
    from dashboard.widgets import ACCURACY_METRICS, METRIC_LABELS

    assert "image_dummy" in ACCURACY_METRICS and METRIC_LABELS["image_dummy"] == "Dummy score"
    wide = results_for_part(store_copy, "part1")
    local = wide[wide["source"] == "local"].iloc[0]
    assert (local["image_dummy_mean"], local["image_dummy_std"]) == pytest.approx((0.5, np.std([0.25, 0.75], ddof=1)))
    readable = readable_results(wide, labels=True)
    assert readable.loc[readable["source"] == "local", "Dummy score"].item() == "0.500 ± 0.354"


def test_the_evaluation_computes_exactly_the_registered_image_and_pixel_metrics():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.2, 0.9, 0.3, 0.8])
    assert set(image_metrics(labels, scores)) == set(IMAGE_METRICS)
    masks = np.zeros((6, 8, 8), dtype=np.uint8)
    masks[3:, 2:5, 2:5] = 1
    maps = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32) + masks
    assert set(pixel_metrics(masks, maps)) == set(PIXEL_METRICS)
    assert set(pixel_metrics(None, maps)) == set(PIXEL_METRICS)


def test_every_published_figure_is_of_a_registered_metric_the_tables_show():
    published = set(read_published_csv()["metric"])
    assert published <= set(METRIC_ORDER), published - set(METRIC_ORDER)


def test_a_runtime_metric_must_name_the_runs_column_it_comes_from():
    with pytest.raises(ValueError, match="'memory'"):
        Metric("memory", "Memory (MB)", "runtime", "lower", "MB")
    with pytest.raises(ValueError, match="'Image AUROC'"):
        Metric("Image AUROC", "Image AUROC", "image", "higher")


def test_published_figures_without_a_spread_read_as_plain_numbers_under_metric_labels(legacy_store, monkeypatch):
    """The study gives one figure where it ran one seed: the table shows `0.981`, never `0.981 ± None`."""
    readable = readable_results(results_for_part(legacy_store, "part1", "baseline"), labels=True)
    assert {"Image AUROC", "Inference (ms/image)"} <= set(readable.columns)
    cells = readable.drop(columns=["source", "part", "condition", "model", "backbone", "n"]).to_numpy().ravel()
    assert not any("None" in cell or "nan" in cell for cell in cells)
    published = readable[readable["source"] != "local"]
    assert published["Inference (ms/image)"].str.fullmatch(r"\d+\.\d{2}|n/a").all()  # Table 4 gives no spread

    app = open_page(legacy_store, "overview.py", monkeypatch)
    table = app.dataframe[0].value
    cells = table.drop(columns=["candidate", "source", "n_seeds"]).to_numpy().ravel()
    assert not any("None" in cell or "nan" in cell for cell in cells)
    local = table["source"] == "local"
    assert table.loc[local, "inference_ms"].str.contains(" ± ").all()
    assert table.loc[~local, "inference_ms"].str.fullmatch(r"\d+\.\d{2}|n/a").all()
    labels = column_labels(app)
    assert all(
        f'"{header}"' in labels for header in ("Model", "Source", "Seeds", "Image AUROC", "Inference (ms/image)")
    )


def _dummy_entry() -> ModelEntry:
    """A new model built like the legacy check: one entry is all it takes."""
    legacy = MODELS["legacy"]
    return ModelEntry(
        "dummy_net",
        "Dummy Net",
        legacy.builder,
        dict.fromkeys(PRESETS, {}),
        ("tf_efficientnet_lite0",),
        missing=legacy.missing,
    )


def test_a_model_added_to_the_registry_is_listed_named_parametrised_and_runs(store_copy, add_model, capsys, tmp_path):
    add_model(_dummy_entry())

    assert gluelab(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dummy_net "))
    assert "Dummy Net" in row and "tf_efficientnet_lite0" in row

    from engine.analysis.candidates import candidate_label
    from engine.analysis.labels import model_choices

    assert model_choices()["dummy_net"] == "Dummy Net"
    assert (
        candidate_label("dummy_net", "tf_efficientnet_lite0", "local", "cpu") == "Dummy Net / EfficientNet-Lite0 (cpu)"
    )

    from tests.test_models import end_to_end_models, registered_models

    assert "dummy_net" in registered_models() and "dummy_net" in end_to_end_models()

    assert get_model("dummy_net").paper_name == "Dummy Net"
    jobs = plan_grid(["part1"], ["dummy_net"], None, 1, ["baseline"], "cpu", store_copy)
    assert [(job.model, job.backbone) for job in jobs] == [("dummy_net", "tf_efficientnet_lite0")]
    # The job itself, in this process: a grid's job processes load the registry as the code defines it.
    outcome = evaluate_job(jobs[0], load_part("part1", store_copy), tmp_path)
    assert outcome.config["job"]["model"] == "dummy_net" and 0 <= outcome.metrics["image_auroc"] <= 1


def test_a_model_entry_without_every_preset_is_refused_by_name():
    with pytest.raises(ValueError, match="'half_done'.*needs \\['cpu', 'paper'\\]"):
        ModelEntry("half_done", "Half done", MODELS["legacy"].builder, {"cpu": {}})


def test_models_listing_gives_one_row_per_model_and_each_missing_import_once(capsys):
    """Every CNN model lacks resnet18's weights on a fresh machine: the instruction is printed once, not per row."""
    assert gluelab(["models"]) == 0
    out = capsys.readouterr().out
    table, _, notes = out.partition("\n\n")
    rows = table.splitlines()[1:]
    assert [row.split()[0] for row in rows] == list(MODELS)
    assert out.count("gluelab weights import FILE --name resnet18") == 1
    assert out.count("gluelab weights import FILE --name dsr_vq") == 1
    padim = next(row for row in rows if row.startswith("padim "))
    assert "tf_efficientnet_lite0" in padim and "resnet18 [" in padim
    note = padim.split("resnet18 [")[1].split("]")[0]
    assert f"[{note}] Backbone 'resnet18'" in notes
    assert len(notes.splitlines()) == len(set(note for row in rows for note in _notes(row)))


def _notes(row: str) -> list[str]:
    return [part.split("]")[0] for part in row.split("[")[1:]]


TORCH_FREE_PAGES = """
import sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):  # `import torch` (and the others) raises ImportError; nothing else changes
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError("the dashboard imported " + name)
        return None

sys.meta_path.insert(0, Refuse())
from streamlit.testing.v1 import AppTest
for page in {pages!r}:
    app = AppTest.from_file({app!r}, default_timeout=120)
    app.switch_page("views/" + page)
    app.run()
    assert not app.exception, (page, [e.value for e in app.exception])
    print("rendered", page)
assert not [name for name in sys.modules if name.split(".")[0] in {heavy!r}]
"""


def test_every_dashboard_page_renders_with_torch_anomalib_lightning_and_timm_unimportable(legacy_store):
    """The dashboard reads model names from the light registry; none of its imports may reach torch."""
    script = TORCH_FREE_PAGES.format(heavy=HEAVY, pages=PAGES, app=str(APP))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT), "GLUELAB_STORE": str(legacy_store)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("rendered") == len(PAGES)


def test_every_model_package_is_in_the_catalogue_and_registers_the_entry_named_after_it():
    """A model is one package under engine/models holding an `entry.py`; the catalogue lists every such package, and
    each package's entry bears its name ("Add a model" in docs/architecture.md)."""
    import importlib
    from pathlib import Path

    import engine.models
    from engine.models.catalogue import CATALOGUE

    root = Path(engine.models.__file__).parent
    packages = {path.parent.name for path in root.glob("*/entry.py")}
    assert packages == set(CATALOGUE)
    assert list(MODELS)[: len(CATALOGUE)] == list(CATALOGUE)
    for name in CATALOGUE:
        assert importlib.import_module(f"engine.models.{name}").ENTRY is MODELS[name]
