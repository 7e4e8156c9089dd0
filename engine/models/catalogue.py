"""Every model gluelab evaluates, in the order they are listed: importing this module imports each model's package
(`CATALOGUE`), whose entry registers itself (`engine.models.registry.register`).

Whoever asks for the models imports them from here: `MODELS`, `get_model`, `model_states` (what runs on this
machine) and `model_name` (the study's name of a model). Importable without torch, like every entry: builders import
torch, anomalib and gluelab's anomalib subclasses only when a model is built, and the weights checks only when
they run.
"""

from __future__ import annotations

import importlib

from engine.models.registry import ModelEntry, registered

# Packages under engine.models, one per model, in the order `gluelab models` and the dashboard list them.
CATALOGUE = (
    "legacy",
    "padim",
    "patchcore",
    "dfm",
    "dfkde",
    "efficient_ad",
    "fastflow",
    "stfpm",
    "cfa",
    "cflow",
    "csflow",
    "draem",
    "dsr",
    "ganomaly",
    "reverse_distillation",
    "uflow",
    "supersimplenet",
)

for _package in CATALOGUE:
    importlib.import_module(f"engine.models.{_package}")

MODELS: dict[str, ModelEntry] = registered()


def get_model(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def model_name(model: str) -> str:
    """The study's name of a registered model; other names (the published figures' own) as they are."""
    return MODELS[model].paper_name if model in MODELS else model


def model_states() -> list[dict]:
    """Every model x backbone with `runnable` or exactly what is missing on this machine."""
    rows = []
    for entry in MODELS.values():
        for backbone in entry.backbones or ("",):
            problem = entry.missing(backbone)
            rows.append(
                {
                    "model": entry.name,
                    "paper_name": entry.paper_name,
                    "backbone": backbone,
                    "state": problem or "runnable",
                }
            )
    return rows
