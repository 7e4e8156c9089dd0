"""`gluelab deploy`: a finished run's model exported with anomalib, scoring as its run did, timed, recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import duckdb
import numpy as np
import onnxruntime
import openvino
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torchvision.transforms.v2.functional import resize

from engine.analysis.deployment import EAGER, deployed_time_rows, latency_per_run
from engine.cli import main as gluelab
from engine.evaluation.deploy import SCORE_TOLERANCE, deploy_run
from engine.evaluation.grid import run_grid
from engine.ingest.part_data import load_part
from engine.jobs import Job, plan_grid
from engine.models.export import BandResize, images_to_input
from engine.models.training import TrainingClock
from store.deployments import Deployment, deployments, record_deployments
from store.runs import claim_run, end_run, finish_run, run_image_scores, runs
from tests.conftest import DASHBOARD_APP, file_digest, generated_store, open_page, run_key, write_finished_run
from tests.test_models import tiny_presets  # noqa: F401  (fixture)

pytestmark = pytest.mark.heavy  # trains, exports and times models in ONNX Runtime and OpenVINO

# Models whose exported file is checked here on tiny presets, besides PaDiM at its cpu preset: the ones
# benchmarks/deployment_latency.py times (memory bank, student-teacher, flow, EfficientAD's own loop).
EXPORTED_ON_TINY_PRESETS = ("patchcore", "stfpm", "fastflow", "efficient_ad")


@pytest.fixture(scope="module")
def deployed_store(tmp_path_factory) -> Path:
    """part1 (16 images: 10 train, 3 good test, 3 defective) with finished PaDiM (cpu preset) and legacy runs; the
    PaDiM run deployed to ONNX. Every model here is trained, refitted, exported and timed in three runtimes on it."""
    root = tmp_path_factory.mktemp("deploy")
    store = generated_store(root, images=16)
    assert gluelab(["evaluate", "--parts", "part1", "--models", "padim", "legacy", "--store", str(store)]) == 0
    assert gluelab(["deploy", run_id(store, "padim"), "--format", "onnx", "--out", str(root / "padim")]
                   + ["--store", str(store)]) == 0  # fmt: skip
    return store


def run_id(store: Path, model: str) -> str:
    table = runs(store)
    return table.loc[(table.model == model) & (table.status == "finished"), "run_id"].iloc[0]


def stored_scores(store: Path, run: str) -> pd.DataFrame:
    """The run's test images in the part's order, with their stored score and decision."""
    images = load_part("part1", store).test_info[["image_path"]]
    return images.merge(run_image_scores(run, store), on="image_path", how="left")


def file_outputs(path: Path, runtime: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pred_score, pred_label) of an exported file, run straight in its runtime on a batch of images."""
    if runtime == "onnxruntime":
        score, label = onnxruntime.InferenceSession(str(path)).run(["pred_score", "pred_label"], {"input": images})
    else:
        compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        results = compiled({"input": images})
        score, label = results[compiled.output("pred_score")], results[compiled.output("pred_label")]
    return score.reshape(-1), label.reshape(-1)


def assert_scores_as_the_run(store: Path, run: str, path: Path, runtime: str) -> None:
    expected = stored_scores(store, run)
    data = load_part("part1", store)
    score, label = file_outputs(path, runtime, images_to_input(data.test))
    np.testing.assert_allclose(score, expected["score"], rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)
    clear = np.abs(score - expected["score"]) > 0  # where rounding could tip a score at the threshold, skip it
    clear &= ~np.isclose(expected["score"], expected.loc[expected["predicted_anomalous"], "score"].min(), rtol=1e-3)
    assert (label[clear] == expected.loc[clear, "predicted_anomalous"]).all()


def test_padim_exported_to_onnx_and_openvino_scores_as_its_run_and_is_timed_in_both_runtimes(deployed_store, tmp_path):
    store, padim = deployed_store, run_id(deployed_store, "padim")
    onnx_file = deployed_store.parent / "padim" / "weights" / "onnx" / "model.onnx"
    assert gluelab(["deploy", padim, "--format", "openvino", "--out", str(tmp_path), "--store", str(store)]) == 0
    ir_file = tmp_path / "weights" / "openvino" / "model.xml"

    for path, runtime in ((onnx_file, "onnxruntime"), (onnx_file, "openvino"), (ir_file, "openvino")):
        assert_scores_as_the_run(store, padim, path, runtime)

    table = deployments(store)
    assert sorted(zip(table.format, table.runtime, strict=True)) == [
        ("onnx", "onnxruntime"),
        ("onnx", "openvino"),
        ("openvino", "openvino"),
    ]
    assert set(table.path) == {str(onnx_file.resolve()), str(ir_file.resolve())}
    assert (table.latency_ms > 0).all() and (table.throughput_fps > 0).all() and (table.eager_latency_ms > 0).all()
    assert (table.max_score_difference <= SCORE_TOLERANCE * 1000).all()  # PaDiM scores here are in the hundreds
    run = runs(store).set_index("run_id").loc[padim]
    assert (table.run_inference_ms == run.inference_ms).all()
    with duckdb.connect(str(store), read_only=True) as con:
        deployed_on = json.loads(con.execute("SELECT any_value(environment) FROM deployments").fetchone()[0])
    assert deployed_on["hardware"] == json.loads(run.environment)["hardware"]  # the machine recorded as runs record it
    assert {"onnxruntime", "openvino", "anomalib", "torch"} <= set(deployed_on["versions"])
    description = json.loads((tmp_path / "weights" / "openvino" / "deployment.json").read_text())
    assert description["run_id"] == padim and description["input"]["shape"] == ["batch", 3, 480, 640]
    assert description["thresholds"]["image_threshold"] > 0


@pytest.mark.usefixtures("tiny_presets")
@pytest.mark.parametrize("model", EXPORTED_ON_TINY_PRESETS)
def test_an_exportable_model_scores_as_its_run_in_onnx_runtime_and_openvino(model, deployed_store, tmp_path):
    jobs = plan_grid(["part1"], [model], None, 1, ["baseline"], "cpu", deployed_store)
    assert run_grid(jobs, deployed_store, show_progress=False).finished == 1
    result = deploy_run(jobs[0].run_id, "onnx", tmp_path, deployed_store)
    assert [deployment.runtime for deployment in result.deployments] == ["onnxruntime", "openvino"]
    assert result.refit_difference <= SCORE_TOLERANCE * 1000
    for runtime in ("onnxruntime", "openvino"):
        assert_scores_as_the_run(deployed_store, jobs[0].run_id, result.path, runtime)


def test_a_model_that_cannot_be_exported_says_why_naming_it_and_changes_nothing(deployed_store, tmp_path, capsys):
    dfm = plan_grid(["part1"], ["dfm"], None, 1, ["baseline"], "cpu", deployed_store)
    assert run_grid(dfm, deployed_store, show_progress=False).finished == 1
    before = file_digest(deployed_store)
    for model, reason in (
        ("legacy", "not an anomalib model"),
        ("dfm", "the exported file does not run in onnxruntime"),  # torch's exporter fixed its batch size
    ):
        out = tmp_path / model
        capsys.readouterr()
        command = ["deploy", run_id(deployed_store, model), "--format", "onnx", "--out", str(out)]
        assert gluelab([*command, "--store", str(deployed_store)]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
        assert error.startswith("gluelab deploy: ") and model in error and reason in error, error
        assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    assert file_digest(deployed_store) == before


def test_unknown_runs_unfinished_runs_and_unknown_formats_are_refused_by_name(deployed_store, capsys):
    store = str(deployed_store)
    failed = Job("part1", "padim", "tf_efficientnet_lite0", "cpu", 7, "baseline")
    claim_run(failed.run_id, failed.key(), store)
    end_run(failed.run_id, "failed", "out of memory", store=store)
    before = file_digest(deployed_store)
    for arguments, message in (
        (["nosuchrun", "--format", "onnx"], "no run 'nosuchrun'"),
        ([failed.run_id, "--format", "onnx"], "is failed, not finished: out of memory"),
        ([run_id(deployed_store, "padim"), "--format", "tensorrt"], "unknown export format 'tensorrt'"),
    ):
        capsys.readouterr()
        assert gluelab(["deploy", *arguments, "--out", "unused", "--store", store]) == 2
        assert message in capsys.readouterr().err
    assert file_digest(deployed_store) == before


def test_a_forced_re_run_drops_the_deployments_of_the_model_it_replaces(tmp_path):
    store, key = tmp_path / "store.duckdb", run_key()
    write_finished_run(store, "r1", key, [0.1, 0.2], [0.8, 0.9], 0.5)
    record_deployments("r1", "onnx", [Deployment("onnxruntime", 5.0, 100.0, 20.0, 0.0, "/m.onnx")], {}, store)
    assert len(deployments(store)) == 1
    claim_run("r1", key, store, force=True)
    finish_run("r1", key, runs_outcome(store, "r1"), store)
    assert deployments(store).empty


def runs_outcome(store: Path, run: str):
    from store.runs import RunOutcome

    scores = run_image_scores(run, store).drop(columns="run_id")
    return RunOutcome({"image_threshold": 0.5}, 1.0, 1.0, 1.0, 1.0, 2, 4, {}, {}, scores)


def test_the_runtime_page_shows_eager_and_deployed_latency_per_run(deployed_store, monkeypatch):
    app = open_page(deployed_store, "runtime.py", monkeypatch)
    per_run = next(frame.value for frame in app.dataframe if "onnxruntime_ms" in frame.value)
    padim = per_run[per_run["run_id"] == run_id(deployed_store, "padim")].iloc[0]
    assert padim["inference_ms"] > 0 and padim["onnxruntime_ms"] > 0 and padim["openvino_speedup"] > 0
    legacy = per_run[per_run["run_id"] == run_id(deployed_store, "legacy")].iloc[0]
    assert np.isnan(legacy["onnxruntime_ms"])  # never deployed


def test_model_selection_can_time_candidates_by_their_deployed_latency(deployed_store, monkeypatch):
    app = open_page(deployed_store, "model_selection.py", monkeypatch)
    assert app.selectbox(key="selection_time").value == EAGER
    app.selectbox(key="selection_time").set_value("onnxruntime").run()
    assert not app.exception
    captions = " ".join(caption.value for caption in app.caption)
    assert "Time criterion: Deployed in ONNX Runtime" in captions
    shown = " ".join(str(frame.value.to_dict()) for frame in app.dataframe)
    assert "PaDiM" in shown and "no inference_ms figure" in shown  # the legacy check was never deployed


def test_deployed_latency_replaces_each_candidate_s_eager_time_and_the_fastest_format_counts():
    machine = {"processor": "CPU X", "gpu": None, "cpu_count": 2}
    deployed = pd.DataFrame(
        [
            {"run_id": "a0", "candidate": "PaDiM", "part": "part1", "condition": "baseline", "model": "padim",
             "backbone": "b", "preset": "cpu", "seed": 0, "format": fmt, "runtime": "openvino", "latency_ms": ms,
             "throughput_fps": 1000 / ms, "eager_latency_ms": 40.0, **machine}
            for fmt, ms in (("onnx", 12.0), ("openvino", 10.0))
        ]
    )  # fmt: skip
    per_run = latency_per_run(pd.DataFrame({"run_id": ["a0", "b0"], "inference_ms": [41.0, 30.0]}), deployed)
    assert per_run.loc[0, "openvino_ms"] == 10.0 and per_run.loc[0, "openvino_speedup"] == 4.0
    assert np.isnan(per_run.loc[1, "openvino_ms"]) and np.isnan(per_run.loc[0, "onnxruntime_ms"])

    rows = pd.DataFrame(
        [
            {"candidate": c, "part": "part1", "condition": "baseline", "model": m, "backbone": "b", "preset": "cpu",
             "source": "local", "hardware": "CPU X, 2 CPUs", "metric": metric, "mean": value, "std": None,
             "n_seeds": 1}
            for c, m in (("PaDiM", "padim"), ("DFM", "dfm"))
            for metric, value in (("image_auroc", 0.9), ("inference_ms", 41.0))
        ]
    )  # fmt: skip
    assert deployed_time_rows(rows, deployed, EAGER) is rows
    timed = deployed_time_rows(rows, deployed, "openvino")
    times = timed[timed.metric == "inference_ms"]
    assert times[["candidate", "mean", "hardware"]].values.tolist() == [["PaDiM", 10.0, "CPU X, 2 CPUs"]]
    assert len(timed[timed.metric == "image_auroc"]) == 2  # DFM keeps its accuracy, and lacks a deployed time


def test_the_exported_resize_is_torch_s_antialiased_resize():
    images = torch.rand(2, 3, 480, 640)
    exported = BandResize((480, 640), (256, 256))(images)
    assert torch.allclose(exported, resize(images, [256, 256], antialias=True), atol=1e-5)


def test_a_refit_replays_the_epochs_its_budget_allowed():
    clock = TrainingClock({"epochs": 50, "budget_minutes": 60, "replay_epochs": 3})
    stopped = [clock.epoch_done(loss) for loss in (5.0, 4.0, 3.0)]
    assert stopped == [False, False, True] and clock.record().stop_reason == "budget"


# The line: frames scored with the deployed PaDiM, recorded, and judged (`gluelab inspect`).


def padim_deployment(store: Path) -> Path:
    return store.parent / "padim"


def in_folder(frames: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The frames of a deployment's line that came from `folder` (the module's tests share one deployment)."""
    return frames[frames["file"].str.startswith(str(folder.resolve()))].reset_index(drop=True)


def stream(out: Path, frames: int, drift: str = "none", drift_from: int = 0, rate: float = 0.0) -> list:
    from engine.ingest.synthetic.stream import stream_frames

    return stream_frames("part1", frames, out, drift, drift_from, rate, seed=5, defect_rate=0.2)  # type: ignore[arg-type]


def test_inspect_scores_frames_as_the_eager_model_at_the_stored_threshold_and_a_restart_scores_none_twice(
    deployed_store, tmp_path, capsys
):
    from engine.evaluation.deploy import refit
    from engine.evaluation.line_inspection import resolve_deployment
    from store.deployments import finished_run
    from store.line import line_frames

    folder = tmp_path / "line"
    stream(folder, 24)
    deployment = str(padim_deployment(deployed_store))
    assert gluelab(["inspect", deployment, "--images", str(folder), "--store", str(deployed_store)]) == 0
    printed = capsys.readouterr().out
    assert "frames scored: 24 now" in printed and "frames rejected: 0" in printed
    assert re.search(r"frames per second: [\d.]+", printed) and "verdict: " in printed

    deployed = resolve_deployment(deployment, deployed_store)
    frames = in_folder(line_frames(deployed_store, deployed.key), folder)
    assert len(frames) == 24 and frames["rejected"].isna().all()
    with duckdb.connect(str(deployed_store), read_only=True) as con:
        stored_threshold = con.execute(
            "SELECT any_value(line_threshold) FROM deployments WHERE run_id = ?", [deployed.key.run_id]
        ).fetchone()[0]
    assert deployed.threshold == stored_threshold and "least expected cost" in deployed.threshold_source
    assert (frames["alarm"] == (frames["score"] >= stored_threshold)).all()

    data = load_part("part1", deployed_store)
    eager = refit(finished_run(deployed.key.run_id, deployed_store), data, deployed_store)
    images = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in frames["file"]]
    expected = eager.predict(images, batch_size=8).scores
    np.testing.assert_allclose(frames["score"], expected, rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)

    stream(folder, 30)  # the camera goes on: six more frames (the first 24 written again, the same)
    assert gluelab(["inspect", deployment, "--images", str(folder), "--store", str(deployed_store)]) == 0
    assert "frames scored: 6 now" in capsys.readouterr().out
    again = in_folder(line_frames(deployed_store, deployed.key), folder)
    assert len(again) == 30 and again["file"].is_unique
    assert again.set_index("file").loc[frames["file"], "score"].tolist() == frames["score"].tolist()


def test_bad_frames_are_recorded_rejected_with_their_reason_and_the_line_goes_on(deployed_store, tmp_path, capsys):
    from engine.evaluation.line_inspection import resolve_deployment
    from store.line import line_frames

    folder = tmp_path / "bad"
    stream(folder, 2)
    good = folder / "frame_000000.png"
    (folder / "cut.png").write_bytes(good.read_bytes()[:200])
    (folder / "text.png").write_text("not an image")
    cv2.imwrite(str(folder / "deep.png"), (cv2.imread(str(good), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 256))
    cv2.imwrite(str(folder / "small.png"), cv2.imread(str(good), cv2.IMREAD_GRAYSCALE)[:240, :320])
    deployment = str(padim_deployment(deployed_store))
    assert gluelab(["inspect", deployment, "--images", str(folder), "--store", str(deployed_store)]) == 0
    assert "frames rejected: 4" in capsys.readouterr().out
    frames = in_folder(line_frames(deployed_store, resolve_deployment(deployment, deployed_store).key), folder)
    reasons = frames.set_index(frames["file"].map(lambda file: Path(file).name))["rejected"]
    assert reasons[["frame_000000.png", "frame_000001.png"]].isna().all()
    assert reasons["cut.png"].startswith("unreadable") and reasons["text.png"].startswith("unreadable")
    assert reasons["deep.png"].startswith("16-bit frame")
    assert reasons["small.png"] == "wrong size 320x240: the deployed model takes 640x480 frames"


def test_a_deployment_whose_file_changed_since_deploy_is_refused_by_name(deployed_store, tmp_path, capsys):
    model = padim_deployment(deployed_store) / "weights" / "onnx" / "model.onnx"
    original = model.read_bytes()
    before = file_digest(deployed_store)
    try:
        model.write_bytes(original + b"\0")
        arguments = ["inspect", str(padim_deployment(deployed_store)), "--images", str(tmp_path)]
        assert gluelab([*arguments, "--store", str(deployed_store)]) == 2
        error = capsys.readouterr().err
        assert "changed since `gluelab deploy` wrote them" in error and str(model.parent) in error, error
    finally:
        model.write_bytes(original)
    assert file_digest(deployed_store) == before
    assert gluelab(["inspect", "no_such_run", "--images", str(tmp_path), "--store", str(deployed_store)]) == 2
    assert "no deployment of run 'no_such_run'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def watched_line(deployed_store, tmp_path_factory) -> tuple[Path, list[str], str]:
    """A camera writing 120 frames at 40 frames/s, the light doubling from frame 60, watched by `gluelab inspect
    --watch` as it lands: the folder, the watch's command and what it printed."""
    import contextlib
    import io
    import threading

    folder = tmp_path_factory.mktemp("camera")
    deployment = str(padim_deployment(deployed_store))
    command = ["inspect", deployment, "--images", str(folder), "--watch", "--idle", "2", "--store", str(deployed_store)]
    printed = io.StringIO()

    def watch() -> None:
        with contextlib.redirect_stdout(printed):
            gluelab(command)

    watcher = threading.Thread(target=watch)
    watcher.start()
    stream(folder, 120, "brightness", 60, rate=40)
    watcher.join(timeout=120)
    assert not watcher.is_alive()
    return folder, command, printed.getvalue()


def test_a_watch_scores_each_frame_once_as_it_lands_and_says_the_line_drifted(deployed_store, watched_line, capsys):
    """Every frame of the watched stream scored once, the verdict naming the drift; a restarted watch scores none."""
    from engine.evaluation.line_inspection import resolve_deployment
    from store.line import line_frames

    folder, command, printed = watched_line
    deployment = str(padim_deployment(deployed_store))
    frames = in_folder(line_frames(deployed_store, resolve_deployment(deployment, deployed_store).key), folder)
    assert len(frames) == 120 and frames["file"].is_unique and frames["rejected"].isna().all()
    assert "verdict: out of control: frames are brighter than any training frame since" in printed, printed
    assert gluelab(command) == 0
    assert "frames scored: 0 now" in capsys.readouterr().out


@pytest.mark.usefixtures("watched_line")
def test_the_line_monitor_shows_the_watched_drift_its_charts_and_alarms_and_a_viewer_cannot_queue_anything(
    deployed_store,
):
    """On the watched stream (the light doubling from its frame 60): the verdict out of control, the p-chart, the
    grey-level, clipped-pixel and sharpness charts, the alarms' gallery, and no re-evaluate button for a viewer."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS, gluelab_dashboard, settled

    with gluelab_dashboard(deployed_store) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(f"{url}/line_monitor")
        settled(page)
        expect(page.get_by_text("out of control: frames are brighter than any training frame")).to_be_visible(
            timeout=60_000
        )
        expect(page.locator(".plotly .gtitle")).to_have_count(4, timeout=60_000)  # alarms, grey, clipped, sharpness
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "line-monitor.png", full_page=True)
        titles = [title.text_content() for title in page.locator(".plotly .gtitle").all()]
        assert titles == ["Alarms per 50 frames (p-chart)", "Mean grey level", "Clipped pixels", "Sharpness"], titles
        assert page.locator('[data-testid="stImage"]').count() >= 1  # the latest alarms
        assert page.get_by_role("button", name="Re-evaluate with the augmented condition").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()


def deployed_key(store: Path):
    from engine.evaluation.line_inspection import resolve_deployment

    return resolve_deployment(str(padim_deployment(store)), store).key


@pytest.mark.usefixtures("watched_line")
def test_the_deployed_run_scoring_the_line_again_gives_the_deployment_s_scores(deployed_store):
    """Scoring the line's frames again refits the run as `deploy` does: the deployed run itself, fitted again and
    eager, gives each frame the score the deployment gave it in ONNX Runtime (within the export tolerance), once."""
    from engine.evaluation.line_rescoring import rescore_line
    from engine.jobs import LineFrames
    from store.line import line_frames, line_rescores

    key = deployed_key(deployed_store)
    frames = line_frames(deployed_store, key)
    scored = frames[frames["rejected"].isna()]
    up_to = int(scored["frame_id"].iloc[len(scored) // 2])
    line = LineFrames(key.run_id, key.format, key.runtime, up_to)
    assert (
        rescore_line(line, [key.run_id], deployed_store, report=lambda _: None) == (scored["frame_id"] <= up_to).sum()
    )
    again = line_rescores(deployed_store, key)
    assert sorted(again["frame_id"]) == sorted(scored.loc[scored["frame_id"] <= up_to, "frame_id"])
    assert np.abs(again["score"] - again["deployed_score"]).max() <= SCORE_TOLERANCE * max(
        1.0, again["score"].abs().max()
    )
    assert rescore_line(line, [key.run_id], deployed_store, report=lambda _: None) == 0  # none scored twice


@pytest.mark.usefixtures("watched_line")
def test_an_engineer_s_re_evaluation_from_the_line_monitor_scores_the_frames_collected_so_far(
    deployed_store, monkeypatch
):
    """Signed in on the Line monitor of the drifted line, an engineer queues the augmented re-evaluation; the worker
    evaluates it and its run scores every frame collected up to the click; the page then states that run's alarm
    share on those frames at its own least-cost threshold beside the deployed model's."""
    from engine.analysis.line_stops import Line, least_cost_point
    from store.line import deployment_rows, line_frames, line_of, line_rescores
    from store.requests import requests_table
    from tests.test_roles import WITH_PASSPHRASE, checked, sign_in

    key = deployed_key(deployed_store)
    monkeypatch.setenv("GLUELAB_STORE", str(deployed_store))
    app = AppTest.from_file(str(DASHBOARD_APP), default_timeout=120)
    app.secrets = WITH_PASSPHRASE
    app.switch_page("views/line_monitor.py")
    app = sign_in(checked(app.run()))
    app.selectbox(key="monitor_deployment").select_index(0)  # the deployment watched last, the only one
    collected = line_frames(deployed_store, key)
    checked(app.button(key="monitor_reevaluate").click().run())
    assert any(message.value.startswith("Queued as request") for message in app.success), [e.value for e in app.error]
    request = requests_table(deployed_store).iloc[0]  # newest first
    assert json.loads(request["grid"])["line"] == {
        "run_id": key.run_id,
        "format": key.format,
        "runtime": key.runtime,
        "up_to": int(collected["frame_id"].max()),
    }

    assert gluelab(["worker", "--once", "--store", str(deployed_store)]) == 0
    everything = line_rescores(deployed_store, key)
    again = everything[everything["run_id"] != key.run_id]  # the deployed run's own scoring again is another test's
    scored = collected[collected["rejected"].isna()]
    assert set(again["condition"]) == {"augmented"} and set(again["model"]) == {"padim"}
    assert sorted(again["frame_id"]) == sorted(scored["frame_id"])
    ended = requests_table(deployed_store).iloc[0]
    assert ended["state"] == "finished" and f"{len(scored)} line frames scored again" in ended["message"]

    line = line_of(deployment_rows(deployed_store, key.run_id).set_index("runtime").loc[key.runtime])
    augmented = run_image_scores(again["run_id"].iloc[0], deployed_store)
    threshold = least_cost_point(
        augmented["label"] == "anomalous", augmented["score"],
        Line(line["defect_rate"], line["miss_cost"], line["max_escape_rate"]),
    ).threshold  # fmt: skip
    share = (again["score"] >= threshold).mean()
    deployed_share = again["deployed_alarm"].astype(bool).mean()
    checked(app.run())
    shown = [message.value for message in [*app.success, *app.warning] if "augmented condition" in message.value]
    assert len(shown) == 1, shown
    assert (
        f"PaDiM in the augmented condition (seed 0) raises alarms on {100 * share:.1f} % of the {len(scored)} "
        f"frames scored up to" in shown[0]
    ), shown
    assert f"the deployed model on {100 * deployed_share:.1f} % of them" in shown[0], shown
    checked(app.radio(key="monitor_per").set_value("hour").run())  # the p-chart per hour the frames were written
    assert len(app.get("plotly_chart")) >= 4
