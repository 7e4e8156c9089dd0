"""PaDiM through our engine agrees with plain anomalib Engine.fit/test on the same data and setup.

The plain run normalises with the statistics timm gives for the backbone's pretrained weights, not with our
own pre-processing, so a wrong normalisation in the engine shows up as a gap between the two.
"""

from __future__ import annotations

from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.models import Padim
from anomalib.pre_processing import PreProcessor
from lightning.pytorch import seed_everything
from timm import create_model
from torchvision.transforms.v2 import Compose, Normalize, Resize

from engine.cli import main as gluelab
from engine.evaluation.grid import run_grid
from engine.evaluation.jobs import plan_grid
from engine.models.backbones import ensure_offline_backbones
from engine.models.catalog import LAYERS
from engine.models.registry import MODELS
from store.runs import run_metrics


def test_padim_image_and_pixel_auroc_match_plain_anomalib(tmp_path):
    data, store = tmp_path / "data", tmp_path / "store.duckdb"
    assert (
        gluelab(
            ["generate", "--parts", "part1", "--images", "40", "--seed", "4", "--out", str(data), "--store", str(store)]
        )
        == 0
    )

    jobs = plan_grid(["part1"], ["padim"], None, 1, ["baseline"], "cpu", store)
    run_grid(jobs, store, show_progress=False)
    ours = run_metrics(store).set_index("metric")["value"]

    settings = MODELS["padim"].presets["cpu"]
    ensure_offline_backbones()
    weights = create_model("tf_efficientnet_lite0", pretrained=False).pretrained_cfg
    timm_pre_processor = PreProcessor(
        transform=Compose(
            [Resize(tuple(settings["image_size"]), antialias=True), Normalize(weights["mean"], weights["std"])]
        )
    )
    seed_everything(jobs[0].seed)
    model = Padim(
        backbone="tf_efficientnet_lite0",
        layers=list(LAYERS["tf_efficientnet_lite0"][: settings["n_layers"]]),
        n_features=settings["n_features"],
        pre_processor=timm_pre_processor,
        visualizer=False,
    )
    datamodule = MVTecAD(
        root=data,
        category="part1",
        train_batch_size=32,
        eval_batch_size=32,
        num_workers=0,
        val_split_mode="same_as_test",
    )
    engine = Engine(
        accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path / "anomalib", enable_progress_bar=False
    )
    engine.fit(model=model, datamodule=datamodule)
    plain = engine.test(model=model, datamodule=datamodule)[0]

    print(
        f"\nimage AUROC ours {ours['image_auroc']:.4f} plain {plain['image_AUROC']:.4f}; "
        f"pixel AUROC ours {ours['pixel_auroc']:.4f} plain {plain['pixel_AUROC']:.4f}"
    )
    assert abs(ours["image_auroc"] - plain["image_AUROC"]) <= 0.005
    assert abs(ours["pixel_auroc"] - plain["pixel_AUROC"]) <= 0.005
