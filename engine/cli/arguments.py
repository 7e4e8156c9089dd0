"""Argument types and flags more than one command takes."""

from __future__ import annotations

import argparse
from pathlib import Path

from store import DEFAULT_STORE

STORE_HELP = f"results store, a DuckDB file (default: $GLUELAB_STORE or {DEFAULT_STORE})"
SECRETS_FILE = Path(__file__).resolve().parents[2] / ".streamlit" / "secrets.toml"


def add_store(parser: argparse.ArgumentParser) -> None:
    """`--store FILE`, defaulting to `$GLUELAB_STORE` or the default store."""
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def train_size(text: str) -> int | None:
    """A number of training images, or `all` (None)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a whole number of images or all (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 image, or all (got {value})")
    return value


def _number(text: str, allowed, must: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if not allowed(value):
        raise argparse.ArgumentTypeError(f"must be {must} (got {text})")
    return value


def positive_float(text: str) -> float:
    return _number(text, lambda value: value > 0, "more than 0")


def non_negative_float(text: str) -> float:
    return _number(text, lambda value: value >= 0, "0 or more")


def png_path(text: str) -> Path:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"must be a file name ending in .png (got {text!r})")
    return Path(text)


def device(text: str) -> str:
    from engine.devices import parse_device

    try:
        return parse_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_grid_flags(parser: argparse.ArgumentParser) -> None:
    """Where and how jobs run: shared by `gluelab evaluate` and `gluelab worker`."""
    from engine.devices import DEVICE_HELP

    parser.add_argument("--device", type=device, help=f"{DEVICE_HELP} (default auto)")
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one job at a time on this machine (default); ray: every job as a task on a Ray cluster"
        " (pip install -e '.[ray]')",
    )
    parser.add_argument(
        "--address", help="with --executor ray: the cluster's address, HOST:PORT (default: a local Ray)"
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=positive_float,
        help="memory one job may use before it is stopped and recorded failed"
        " (default: $GLUELAB_MEMORY_BUDGET_GB, else total RAM minus 4 GB)",
    )
    parser.add_argument(
        "--feature-cache-gb",
        type=non_negative_float,
        help="size limit of the frozen-feature cache kept beside the store (STORE.features/), least recently"
        " used files evicted first; 0 turns it off (default: $GLUELAB_FEATURE_CACHE_GB, else 10)",
    )


def grid_options(args: argparse.Namespace) -> dict:
    """`run_grid`'s options from the flags of `add_grid_flags`."""
    if args.address and args.executor != "ray":
        raise ValueError("--address names a Ray cluster: add --executor ray")
    return {
        "memory_budget_gb": args.memory_budget_gb,
        "feature_cache_gb": args.feature_cache_gb,
        "device": args.device or "auto",
        "executor": args.executor,
        "address": args.address,
    }
