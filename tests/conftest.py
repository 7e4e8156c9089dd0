"""Shared fixtures and helpers: an isolated GLUELAB_HOME, small generated parts and stores, hand-built runs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock
from streamlit.testing.v1 import AppTest

from engine.cores import SLOTS_DIR_ENV
from engine.evaluation.timing import MARGIN_ENV, MIN_WATCH_ENV
from engine.ingest.synthetic.plant import generate_part
from store.runs import RunOutcome, Training, claim_run, finish_run


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs two workers, a test module each at a time), each worker is a machine of
    its own: it runs on its share of the cores only, it and everything it starts (job processes, dashboards, Ray,
    Chromium), with its own job slots. Two workers then never oversubscribe a core, each job's torch uses the cores
    its worker has, and a run's timing watches only those cores (`engine.evaluation.timing`), so the other worker is
    not load beside it."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0))
    if worker is None or count < 2 or len(cores) < count:
        return
    share = set(cores[int(worker.removeprefix("gw")) :: count])
    for thread in os.listdir("/proc/self/task"):  # every thread the worker has started so far, and so all it starts
        os.sched_setaffinity(int(thread), share)
    os.environ["OMP_NUM_THREADS"] = str(len(share))
    global _worker_slots
    os.environ[SLOTS_DIR_ENV] = _worker_slots = tempfile.mkdtemp(prefix=f"gluelab-job-slots-{worker}-")


_worker_slots = ""  # the job slots folder `pytest_configure` made for this worker, if it made one


def pytest_collection_modifyitems(items):
    """Modules marked `heavy` run first, then the rest; within each group the modules with more tests first, as
    pytest-xdist orders them (`make test` passes --no-loadscope-reorder, so that this order stands). Each worker takes
    the next module as it finishes one: with the heavy ones taken first, the last modules are short and the two
    workers end within seconds of each other, where a heavy module left to the end kept one core idle for as long."""
    module = {item: item.nodeid.split("::")[0] for item in items}
    tests = Counter(module.values())
    items.sort(key=lambda item: (item.get_closest_marker("heavy") is None, -tests[module[item]], module[item]))


def pytest_unconfigure(config):
    """The worker's own job slots go with it."""
    if _worker_slots:
        shutil.rmtree(_worker_slots, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Keep converted and imported weights out of the user's ~/.gluelab."""
    home = tmp_path_factory.mktemp("gluelab_home")
    previous = os.environ.get("GLUELAB_HOME")
    os.environ["GLUELAB_HOME"] = str(home)
    yield home
    if previous is None:
        del os.environ["GLUELAB_HOME"]
    else:
        os.environ["GLUELAB_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def load_tolerant_timing():
    """Tests run on a machine others share: a run's timing verdict would depend on what they run meanwhile, and
    the dashboard would leave such runs out of its fronts. Other processes' CPU use never flags a test's run, and so
    a short timing is not watched for a second to judge that load, except in the tests about timing, which set both
    back (`quiet_margin`)."""
    settings = {MARGIN_ENV: "1000", MIN_WATCH_ENV: "0"}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield
    for name, value in previous.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


@pytest.fixture
def quiet_margin(monkeypatch):
    """The default margin of other processes' CPU use (`engine.evaluation.timing.OTHER_CPU_MARGIN_CORES`), judged
    over windows watched at least `MIN_WATCH_SECONDS`."""
    monkeypatch.delenv(MARGIN_ENV)
    monkeypatch.delenv(MIN_WATCH_ENV)


@pytest.fixture(scope="session")
def small_plant(tmp_path_factory) -> Path:
    """part1 and part16 with 30 images each (18 train, 6 good test, 6 defective), seed 3."""
    out = tmp_path_factory.mktemp("plant")
    for part in ("part1", "part16"):
        generate_part(part, 30, seed=3, out_dir=out, workers=2)
    return out


def generated_store(root: Path, images: int = 25) -> Path:
    """A fresh store at `root/store.duckdb` holding part1 generated with `images` images, via the CLI."""
    from engine.cli import main as gluelab

    store = root / "store.duckdb"
    assert (
        gluelab(
            [
                "generate",
                "--parts",
                "part1",
                "--images",
                str(images),
                "--out",
                str(root / "data"),
                "--store",
                str(store),
            ]
        )
        == 0
    )
    return store


# (left, top, right, bottom) boxes of a 640 x 480 frame: the full frame, and two crops closer in around the bead.
CROPS = ((0, 0, 640, 480), (40, 30, 600, 450), (80, 40, 560, 440))


def crop_to_three_sizes(source: Path, target: Path) -> Path:
    """A copy of a generated MVTec-layout part whose images are cropped, in turn, to the three boxes of `CROPS`,
    each defect mask cropped with its image: a part of mixed sizes, as real image sets come."""
    from PIL import Image

    shutil.copytree(source, target)
    images = sorted(p for p in target.rglob("*.png") if "ground_truth" not in p.parts)
    for index, image in enumerate(images):
        box = CROPS[index % len(CROPS)]
        Image.open(image).crop(box).save(image)
        if image.parent.parent.name == "test" and image.parent.name != "good":
            mask = target / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
            Image.open(mask).crop(box).save(mask)
    return target


def without_date(report: str) -> str:
    """A decision report's HTML less the date it was made (the one thing two builds of one question may differ in)."""
    return re.sub(r"<td>Made</td><td>[^<]*</td>", "", report)


def file_digest(path: Path) -> str | None:
    """sha256 of a file, or None when it does not exist (a store that was never created)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="session")
def dashboard_stores(tmp_path_factory) -> dict[str, Path]:
    """The three stores every dashboard page must render: empty, published figures only, and evaluated.

    The evaluated one holds real runs: legacy, PaDiM and DFM on small part1 (two seeds, baseline and
    augmented) and part16 (one seed, baseline), plus the published figures. Built once per session (`built_once`).
    """
    with built_once(tmp_path_factory, "dashboard") as (root, done):
        if not done:
            _build_dashboard_stores(root)
    return {"empty": root / "empty.duckdb", "published": root / "published.duckdb", "evaluated": evaluated_store(root)}


@contextlib.contextmanager
def built_once(tmp_path_factory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder for a session fixture's files, and whether they were built already: one folder for the whole session,
    shared by the xdist workers, so that the first worker to need it builds it while the others wait, and the others
    then read what it built. Without xdist, a folder of this process's own."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        yield tmp_path_factory.mktemp(name), False
        return
    root = tmp_path_factory.getbasetemp().parent / name  # the session's folder, above each worker's own
    with FileLock(f"{root}.lock"):
        done = root / ".built"
        root.mkdir(exist_ok=True)
        yield root, done.exists()
        done.touch()


def evaluated_store(root: Path) -> Path:
    return root / "evaluated" / "store.duckdb"


def _build_dashboard_stores(root: Path) -> None:
    from engine.cli import main as gluelab
    from store import write_store

    empty = root / "empty.duckdb"
    with write_store(empty):
        pass
    published = root / "published.duckdb"
    assert gluelab(["load-published", "--store", str(published)]) == 0

    evaluated = generated_store(root / "evaluated")
    assert evaluated == evaluated_store(root)
    assert (
        gluelab(
            [
                "generate",
                "--parts",
                "part16",
                "--images",
                "25",
                "--out",
                str(root / "evaluated" / "data"),
                "--store",
                str(evaluated),
            ]
        )
        == 0
    )
    assert gluelab(["load-published", "--store", str(evaluated)]) == 0
    models = ["--models", "legacy", "padim", "dfm", "--store", str(evaluated)]
    assert (
        gluelab(["evaluate", "--parts", "part1", "--seeds", "2", "--conditions", "baseline", "augmented", *models]) == 0
    )
    assert gluelab(["evaluate", "--parts", "part16", *models]) == 0


DASHBOARD_APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def open_page(store: Path, page: str, monkeypatch) -> AppTest:
    """Render one dashboard page on `store` through AppTest (generous timeout: pages are slow on 2 cores)."""
    monkeypatch.setenv("GLUELAB_STORE", str(store))
    app = AppTest.from_file(str(DASHBOARD_APP), default_timeout=120)
    app.switch_page(f"views/{page}")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def run_key(part: str = "part1", model: str = "padim", seed: int = 0, condition: str = "baseline") -> dict:
    """A run key for hand-built runs."""
    return {
        "part": part,
        "model": model,
        "backbone": "tf_efficientnet_lite0",
        "preset": "cpu",
        "seed": seed,
        "condition": condition,
    }


def write_finished_run(
    store: Path,
    run_id: str,
    key: dict,
    normal: list[float],
    anomalous: list[float],
    threshold: float,
    metrics: dict[str, float] | None = None,
    train_seconds: float = 60.0,
    inference_ms: float = 10.0,
    throughput_fps: float = 100.0,
    training: Training | None = None,
    environment: dict | None = None,
    config: dict | None = None,
    device: str = "cpu",
) -> None:
    """A finished run written through the store's run lifecycle (`claim_run`, `finish_run`).

    Its test images score `normal` and `anomalous`, flagged at `score >= threshold`, so alarm counts can be worked
    out by hand. `environment` is what the run records of its libraries and hardware (`{}` unless given), `config`
    is added to the run's config (e.g. `{"settings": {"budget_minutes": 10}}`).
    """
    scores = normal + anomalous
    image_scores = pd.DataFrame(
        {
            "image_path": [f"test/{i:03d}.png" for i in range(len(scores))],
            "label": ["normal"] * len(normal) + ["anomalous"] * len(anomalous),
            "score": scores,
            "predicted_anomalous": [score >= threshold for score in scores],
        }
    )
    claim_run(run_id, key, store)
    finish_run(
        run_id,
        key,
        RunOutcome(
            metrics={"image_threshold": threshold, **(metrics or {})},
            train_seconds=train_seconds,
            inference_ms=inference_ms,
            throughput_fps=throughput_fps,
            peak_memory_mb=500.0,
            n_train=10,
            n_test=len(scores),
            config={"job": key, **(config or {})},
            environment=environment or {},
            image_scores=image_scores,
            training=training,
            device=device,
        ),
        store,
    )


def evaluate_process(store: Path, *arguments: str) -> subprocess.Popen:
    """`gluelab evaluate --parts part1` on `store` as a separate process, output merged for reading."""
    command = [sys.executable, "-m", "engine.cli", "evaluate", "--parts", "part1", "--store", str(store), *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
