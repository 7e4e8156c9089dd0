"""Every model of the study: its state on this machine, one real job each, imports that make a model runnable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from anomalib.models.components import KCenterGreedy
from anomalib.models.image.dsr.torch_model import DsrModel

from engine.cli import main as gluelab
from engine.evaluation.grid import run_grid
from engine.evaluation.jobs import Job, plan_grid
from engine.models.patchcore import FastKCenterGreedy
from engine.models.registry import MODELS, model_states
from store.runs import run_metrics, runs
from tests.conftest import generated_store

IMPORT_COMMAND = "gluelab weights import FILE --name"
# One 64x64 training batch: these jobs check that each model runs end to end, not how well it learns.
TINY = {"image_size": [64, 64], "epochs": 1, "batches_per_epoch": 1}
TINY_EXCEPTIONS = {
    "cflow": {"fiber_batch_size": 4},  # at most the 2x2 stride-32 positions of one image
    "csflow": {"image_size": [128, 128]},  # its flow reads the image at 1/32, 1/64 and 1/128
    "supersimplenet": {"image_size": [128, 128]},  # its Perlin noise needs a stride-8 grid of 16x16
    "draem": {"image_size": [32, 32]},  # the smallest its U-Nets take; 64x64 costs 15 s more
    "dsr": {"epochs": 2},  # one epoch in each of its two training phases
    "efficient_ad": {"image_size": [256, 256], "steps": 2},  # its autoencoder needs 256x256
}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """part1 with 25 images (15 train, 5 good test, 5 defective), registered in a fresh store."""
    return generated_store(tmp_path_factory.mktemp("models"))


@pytest.fixture
def tiny_presets(monkeypatch):
    for name, entry in MODELS.items():
        if name != "legacy":
            for key, value in {**TINY, **TINY_EXCEPTIONS.get(name, {})}.items():
                monkeypatch.setitem(entry.presets["cpu"], key, value)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """An empty GLUELAB_HOME, for tests that import weights."""
    home = tmp_path / "home"
    monkeypatch.setenv("GLUELAB_HOME", str(home))
    return home


def _run(jobs: list[Job], store: Path) -> dict[str, str]:
    """Run `jobs`; each job's run status, with the error of a failed run."""
    run_grid(jobs, store, show_progress=False)
    table = runs(store).set_index("run_id")
    statuses = {}
    for job in jobs:
        run = table.loc[job.run_id]
        statuses[job.label] = f"failed: {run.error}" if run.status == "failed" else run.status
    return statuses


def _states() -> dict[tuple[str, str], str]:
    return {(row["model"], row["backbone"]): row["state"] for row in model_states()}


def test_every_model_runs_on_the_packaged_backbone_or_names_the_import_it_needs():
    states = _states()
    on_lite0 = {
        name: states[(name, "tf_efficientnet_lite0" if entry.backbones else "")] for name, entry in MODELS.items()
    }
    assert set(on_lite0) == {"legacy", "padim", "patchcore", "dfm", "dfkde", "efficient_ad", "fastflow", "stfpm", "cfa",
                             "cflow", "csflow", "draem", "dsr", "ganomaly", "reverse_distillation", "uflow", "supersimplenet"}  # fmt: skip
    assert all(state == "runnable" or IMPORT_COMMAND in state for state in on_lite0.values()), on_lite0
    assert {name for name, state in on_lite0.items() if state != "runnable"} == {"dsr"}
    assert on_lite0["dsr"].endswith(f"{IMPORT_COMMAND} dsr_vq")
    for name in ("reverse_distillation", "uflow", "cflow", "cfa", "supersimplenet"):
        assert states[(name, "resnet18")].endswith(f"{IMPORT_COMMAND} resnet18")
    assert states[("csflow", "tf_efficientnet_b5")].endswith(f"{IMPORT_COMMAND} tf_efficientnet_b5")


# Every model the plain training loop trains (DSR below), EfficientAD with its own loop, PatchCore's coreset.
@pytest.mark.parametrize(
    "model",
    ["cfa", "cflow", "csflow", "draem", "efficient_ad", "fastflow", "ganomaly", "patchcore"]
    + ["reverse_distillation", "stfpm", "supersimplenet", "uflow"],
)
def test_a_job_runs_end_to_end(model, small_store, tiny_presets):
    jobs = plan_grid(["part1"], [model], None, 1, ["baseline"], "cpu", small_store)
    assert set(_run(jobs, small_store).values()) == {"finished"}
    metrics = run_metrics(small_store).query("run_id == @jobs[0].run_id").set_index("metric")["value"]
    from sklearn.metrics import roc_auc_score

    from store.runs import run_image_scores

    scores = run_image_scores(jobs[0].run_id, small_store)
    assert scores["score"].nunique() > 1, "a model scoring every image alike has learnt nothing to rank by"
    expected_auroc = roc_auc_score(scores["label"] == "anomalous", scores["score"])
    assert abs(metrics["image_auroc"] - expected_auroc) <= 1e-6
    assert np.isnan(metrics["pixel_auroc"]) == (model == "ganomaly")  # GANomaly scores whole images only
    config = json.loads(runs(small_store).set_index("run_id").loc[jobs[0].run_id].config)
    assert "batches_per_epoch 1" in " ".join(config["deviations"])  # the tiny preset is on record


def test_dsr_refuses_until_its_codebook_is_imported_then_runs(small_store, fresh_home, tiny_presets, tmp_path):
    job = Job("part1", "dsr", "", "cpu", 0, "baseline")
    status = _run([job], small_store)[job.label]
    assert status.startswith("failed") and f"{IMPORT_COMMAND} dsr_vq" in status

    not_a_codebook = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), not_a_codebook)
    assert gluelab(["weights", "import", str(not_a_codebook), "--name", "dsr_vq"]) == 2
    assert _states()[("dsr", "")] != "runnable"

    codebook = tmp_path / "vq_model_pretrained_128_4096.pckl"  # random, in the format anomalib loads
    torch.save(DsrModel().discrete_latent_model.state_dict(), codebook)
    assert gluelab(["weights", "import", str(codebook), "--name", "dsr_vq"]) == 0
    assert _states()[("dsr", "")] == "runnable"
    assert _run([job], small_store)[job.label] == "finished"


def test_resnet_only_models_run_once_resnet18_is_imported(small_store, fresh_home, tiny_presets, tmp_path):
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), checkpoint)
    assert gluelab(["weights", "import", str(checkpoint), "--name", "resnet18"]) == 0
    jobs = plan_grid(["part1"], ["reverse_distillation", "uflow"], ["resnet18"], 1, ["baseline"], "cpu", small_store)
    assert set(_run(jobs, small_store).values()) == {"finished"}
    classes = {
        json.loads(config)["anomalib_class"]
        for config in runs(small_store).set_index("run_id").loc[[j.run_id for j in jobs]].config
    }
    assert classes == {"ReverseDistillation", "TimmUflow"}  # anomalib's own Reverse Distillation for a ResNet


def test_fast_coreset_selects_the_same_patches_as_anomalibs():
    embedding = torch.randn(3000, 152)
    selections = []
    for sampler in (KCenterGreedy, FastKCenterGreedy):
        torch.manual_seed(0)
        np.random.seed(0)  # the random projection draws from numpy
        selections.append(sampler(embedding, sampling_ratio=0.05).select_coreset_idxs())
    assert selections[0] == selections[1]
