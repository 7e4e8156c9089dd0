"""Checkpoint files a user imports: read without running pickled code, checked against a model, stored atomically."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file as load_safetensors


def import_state_dict(file: Path, expected: dict[str, torch.Tensor], target: Path, model: str) -> Path:
    """Store `file` at `target` if its state dict has exactly the keys and shapes of `expected`.

    Raises ValueError naming the file, `model` and the first problem found; nothing is written then.
    """
    state_dict = read_state_dict(file)
    problems = [f"missing key {key!r}" for key in expected if key not in state_dict]
    problems += [f"unexpected key {key!r}" for key in state_dict if key not in expected]
    problems += [
        f"shape mismatch for {key!r}: {tuple(state_dict[key].shape)} in the file, {tuple(value.shape)} wanted"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    if problems:
        summary = f"{problems[0]} ({len(problems)} problems in all)"
        raise ValueError(f"{file} does not fit {model}: {summary}.")
    save_state_dict(state_dict, target)
    return target


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Load a raw state dict, or one held under "state_dict"/"model", without unpickling arbitrary objects."""
    if not file.is_file():
        raise ValueError(f"{file}: no such file.")
    try:
        checkpoint: object
        if file.suffix == ".safetensors":
            checkpoint = load_safetensors(file)
        else:
            checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - loaders fail in many ways (pickle, zip, EOF, disallowed globals)
        # For pickled objects torch's useful line ("Unsupported global: ...") follows this marker.
        detail = (str(error).partition("WeightsUnpickler error: ")[2] or str(error)).strip()
        reason = type(error).__name__ + (f": {detail.splitlines()[0].split('. ')[0]}" if detail else "")
        raise ValueError(f"{file} is not a weights-only PyTorch checkpoint ({reason}).") from None
    if isinstance(checkpoint, dict):
        checkpoint = checkpoint.get("state_dict", checkpoint.get("model", checkpoint))  # common wrappers
    if not isinstance(checkpoint, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in checkpoint.items()
    ):
        raise ValueError(f"{file} holds no state dict (a mapping of parameter names to tensors).")
    return checkpoint


def save_state_dict(state_dict: dict[str, torch.Tensor], target: Path) -> None:
    """Write via a temporary file so a concurrent reader never sees half a checkpoint."""
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
    torch.save(state_dict, partial)
    os.replace(partial, target)
