"""Devices: `--device auto` is the CPU where there is no CUDA, every run records what it computed on, and runs on
different devices are never averaged together. CUDA tests run only where torch sees a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from benchmarks.gpu_check import agreement
from engine.cli import main as gluelab
from engine.devices import cpu_model, gpu_driver_present, parse_device, resolve_device
from engine.evaluation.evaluate import evaluate_job
from engine.ingest.part_data import load_part
from engine.jobs import Job
from engine.models.catalogue import MODELS
from store.runs import leaderboard, runs
from tests.conftest import file_digest, generated_store, run_key, write_finished_run

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="no CUDA device on this machine")
CUDA_BUDGET_MINUTES = 0.5  # training budget of a gradient-trained model in the CUDA tests, on either device
without_cuda = pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return generated_store(tmp_path_factory.mktemp("devices"), images=12)


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:1", " CUDA:0 "])
def test_the_device_flag_takes_auto_cpu_cuda_and_cuda_n(text):
    assert parse_device(text) == text.strip().lower()


def test_a_device_flag_that_names_no_device_is_refused_naming_the_value(store, capsys):
    with pytest.raises(ValueError, match="--device 'gpu' is not a device"):
        parse_device("gpu")
    with pytest.raises(SystemExit):
        gluelab(["evaluate", "--parts", "part1", "--models", "legacy", "--device", "gpu", "--store", str(store)])
    assert "--device 'gpu' is not a device" in capsys.readouterr().err


@without_cuda
def test_auto_runs_on_the_cpu_here_and_the_run_records_the_cpu_it_ran_on(store):
    assert resolve_device("auto") == "cpu"
    command = ["evaluate", "--parts", "part1", "--models", "padim", "--device", "auto", "--store", str(store)]
    assert gluelab(command) == 0
    run = runs(store).query("model == 'padim'").iloc[0]
    assert (run.device, run.device_name) == ("cpu", cpu_model())
    hardware = json.loads(run.environment)["hardware"]
    assert hardware["device"] == "cpu" and hardware["gpu"] is None


@pytest.mark.skipif(gpu_driver_present(), reason="this machine has a GPU driver: torch is asked")
def test_auto_is_the_cpu_without_importing_torch_where_no_gpu_driver_is_installed():
    code = (
        "import sys; from engine.devices import resolve_device; print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["cpu", "False"]
    assert not torch.cuda.is_available()  # what torch itself says here


@without_cuda
def test_cuda_asked_for_where_there_is_none_is_refused_before_anything_runs(store, capsys):
    before = file_digest(store)
    command = ["evaluate", "--parts", "part1", "--models", "dfm", "--device", "cuda", "--store", str(store)]
    assert gluelab(command) == 2
    assert "--device cuda: torch sees no CUDA device" in capsys.readouterr().err
    assert file_digest(store) == before


def test_seeds_run_on_different_devices_are_never_averaged_together(tmp_path):
    store = tmp_path / "store.duckdb"
    gpu = {"hardware": {"processor": "Intel Xeon", "cpu_count": 8, "gpu": "NVIDIA RTX A4000"}}
    cpu = {"hardware": {"processor": "Intel Xeon", "cpu_count": 8, "gpu": None}}
    for seed, device, environment in ((0, "cpu", cpu), (1, "cpu", cpu), (2, "cuda:0", gpu)):
        metrics = {"image_auroc": 0.80 + seed / 100}
        key = run_key(seed=seed)
        write_finished_run(store, f"run{seed}", key, [0.1], [0.9], 0.5, metrics, environment=environment, device=device)
    for by_hardware in (False, True):
        board = leaderboard(store, "part1", by_hardware=by_hardware).query("metric == 'image_auroc'")
        by_device = board.set_index("device")
        assert by_device.loc["cpu", "n_seeds"] == 2 and by_device.loc["cpu", "mean"] == pytest.approx(0.805)
        assert by_device.loc["cuda:0", "n_seeds"] == 1 and by_device.loc["cuda:0", "mean"] == pytest.approx(0.82)


@pytest.mark.cuda
@needs_cuda
def test_a_job_on_cuda_records_the_gpu_and_scores_as_on_the_cpu(store):
    job = Job("part1", "padim", "tf_efficientnet_lite0", "cpu", 0, "baseline")
    data = load_part("part1", store)
    on_cpu = evaluate_job(job, data, store.parent / "cpu", device="cpu")
    on_gpu = evaluate_job(job, data, store.parent / "gpu", device=resolve_device("cuda"))
    assert on_gpu.device == "cuda:0" and on_gpu.device_name == torch.cuda.get_device_name(0)
    assert on_gpu.environment["hardware"]["gpu"] == torch.cuda.get_device_name(0)
    assert on_gpu.metrics["image_auroc"] == pytest.approx(on_cpu.metrics["image_auroc"], abs=0.02)
    assert on_gpu.metrics["pixel_auroc"] == pytest.approx(on_cpu.metrics["pixel_auroc"], abs=0.01)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_evaluates_a_job_on_cuda_records_the_gpu_and_agrees_with_the_cpu(model, store, tmp_path):
    """Frozen-feature models: image AUROC within 0.01 of the CPU run's. Gradient-trained models (capped at
    `CUDA_BUDGET_MINUTES` of training): within the seed spread where both runs converged; otherwise the two trained
    for different epochs and `agreement` says so in words. The legacy check runs on the CPU and records it."""
    entry = MODELS[model]
    missing = entry.missing(entry.default_backbone)
    if missing:
        pytest.skip(missing)
    settings = dict(entry.presets["cpu"])
    if "budget_minutes" in settings:
        settings["budget_minutes"] = CUDA_BUDGET_MINUTES
    job = Job("part1", model, entry.default_backbone, "cpu", 0, "baseline")
    data = load_part("part1", store)
    on_gpu = evaluate_job(job, data, tmp_path / "gpu", settings=settings, device=resolve_device("cuda"))
    if model == "legacy":
        assert on_gpu.device == "cpu" and on_gpu.device_name == cpu_model()
        return
    assert on_gpu.device == "cuda:0" and on_gpu.device_name == torch.cuda.get_device_name(0)
    assert on_gpu.environment["hardware"]["gpu"] == torch.cuda.get_device_name(0)
    on_cpu = evaluate_job(job, data, tmp_path / "cpu", settings=settings, device="cpu")
    agrees, words = agreement(on_cpu, on_gpu)
    assert agrees is not False, words
    if agrees is None:
        assert "not comparable" in words and "epochs" in words
