"""How models and backbones are named for people, read from the model catalogue.

The catalogue is light (its builders import torch only when a model is built), so the dashboard reaches
display names through this module without loading torch; a test imports every page with torch unimportable.
"""

from __future__ import annotations

from engine.models.catalogue import MODELS, model_name
from engine.models.names import backbone_name as backbone_name


def model_choices() -> dict[str, str]:
    """Command-line name -> display name of every registered model, in registry order."""
    return {name: model_name(name) for name in MODELS}


__all__ = ["backbone_name", "model_choices", "model_name"]
