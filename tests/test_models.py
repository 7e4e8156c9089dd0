"""Every model of the study: its state on this machine, one real job each, imports that make a model runnable.

Parametrised over the model registry, so a model added there is checked here without editing this file.
"""

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
from engine.ingest.importer import import_dataset
from engine.ingest.synthetic.plant import generate_part
from engine.jobs import Job, plan_grid
from engine.models.catalogue import MODELS, model_states
from engine.models.names import PACKAGED_BACKBONES
from engine.models.patchcore.model import FastKCenterGreedy
from store.runs import run_metrics, runs
from tests.conftest import crop_to_three_sizes

pytestmark = pytest.mark.heavy  # a real job of every model

IMPORT_COMMAND = "gluelab weights import FILE --name"
# One training batch of two 64x64 images: these jobs check that each model runs end to end, not how well it learns.
TINY = {"image_size": [64, 64], "epochs": 1, "batches_per_epoch": 1, "batch_size": 2}
TINY_EXCEPTIONS = {
    "cflow": {"fiber_batch_size": 4},  # at most the 2x2 stride-32 positions of one image
    "csflow": {"image_size": [128, 128]},  # its flow reads the image at 1/32, 1/64 and 1/128
    "supersimplenet": {"image_size": [128, 128]},  # its Perlin noise needs a stride-8 grid of 16x16
    "draem": {"image_size": [32, 32]},  # the smallest its U-Nets take; 64x64 costs 15 s more
    "dsr": {"epochs": 2},  # one epoch in each of its two training phases
    "efficient_ad": {"image_size": [256, 256]},  # its autoencoder needs 256x256
}
# What a model needs imported before it runs even on its default backbone: every other model runs out of the box.
IMPORT_BEFORE_DEFAULT = {"dsr": "dsr_vq"}
# Models whose end-to-end job another test runs; every other registered model runs in test_a_job_runs_end_to_end.
RUN_ELSEWHERE = {
    "legacy": "tests/test_evaluation.py",
    "padim": "tests/test_evaluation.py and tests/test_parity.py (memory-bank fit)",
    "dfm": "the evaluated dashboard store of tests/conftest.py (memory-bank fit, as PaDiM)",
    "dfkde": "memory-bank fit, the same path as PaDiM and DFM",
    "dsr": "test_dsr_refuses_until_its_codebook_is_imported_then_runs",
}


def registered_models() -> list[str]:
    """Every model of the registry, read when the tests are collected."""
    return list(MODELS)


def end_to_end_models() -> list[str]:
    """The models test_a_job_runs_end_to_end trains: all registered ones but those run elsewhere."""
    return [name for name in MODELS if name not in RUN_ELSEWHERE]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """part1 with 16 images (10 train, 3 good test, 3 defective) cropped to three sizes (`crop_to_three_sizes`), so
    every model is shown to take a part whose images differ in size, registered in a fresh store."""
    root = tmp_path_factory.mktemp("models")
    generate_part("part1", 16, seed=0, out_dir=root / "generated", workers=2)
    store = root / "store.duckdb"
    import_dataset("mvtec", "part1", crop_to_three_sizes(root / "generated" / "part1", root / "part1"), store)
    return store


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


@pytest.mark.parametrize("model", registered_models())
def test_every_model_runs_on_the_packaged_backbone_or_names_the_import_it_needs(model):
    entry, states = MODELS[model], _states()
    assert entry.default_backbone in ("", PACKAGED_BACKBONES[0])
    state = states[(model, entry.default_backbone)]
    if model in IMPORT_BEFORE_DEFAULT:
        assert state.endswith(f"{IMPORT_COMMAND} {IMPORT_BEFORE_DEFAULT[model]}")
    else:
        assert state == "runnable"
    for backbone in entry.backbones:  # the study's ResNets and CS-Flow's EfficientNet-B5 are imported first
        expected = "runnable" if backbone in PACKAGED_BACKBONES else f"{IMPORT_COMMAND} {backbone}"
        assert states[(model, backbone)].endswith(expected)


# Every model the plain training loop trains (DSR below), EfficientAD with its own loop, PatchCore's coreset.
@pytest.mark.parametrize("model", end_to_end_models())
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
    embedding = torch.randn(3000, 400)  # more dimensions than the random projection keeps (198 for 3000 patches)
    selections = []
    for sampler in (KCenterGreedy, FastKCenterGreedy):
        torch.manual_seed(0)
        np.random.seed(0)  # the random projection draws from numpy
        selections.append(sampler(embedding, sampling_ratio=0.05).select_coreset_idxs())
    assert selections[0] == selections[1]


def test_low_dimensional_patches_get_the_exact_greedy_coreset_of_the_patches_themselves():
    embedding = torch.randn(2000, 152)  # EfficientNet-Lite0's patch size; anomalib's projection would give 187
    torch.manual_seed(0)
    selected = FastKCenterGreedy(embedding, sampling_ratio=0.02).select_coreset_idxs()

    expected = [selected[0]]  # the same random start; then each step takes the patch farthest from the chosen ones
    nearest = torch.cdist(embedding, embedding[expected]).min(dim=1).values
    while len(expected) < len(selected):
        expected.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, torch.cdist(embedding, embedding[expected[-1:]])[:, 0])
    assert selected == expected
