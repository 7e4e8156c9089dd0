"""Shared fixtures: an isolated GLUELAB_HOME and small generated parts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from engine.synthetic.plant import generate_part


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Keep converted and imported weights out of the user's ~/.gluelab."""
    home = tmp_path_factory.mktemp("gluelab_home")
    previous = os.environ.get("GLUELAB_HOME")
    os.environ["GLUELAB_HOME"] = str(home)
    yield home
    if previous is None:
        del os.environ["GLUELAB_HOME"]
    else:
        os.environ["GLUELAB_HOME"] = previous


@pytest.fixture(scope="session")
def small_plant(tmp_path_factory) -> Path:
    """part1 and part16 with 30 images each (18 train, 6 good test, 6 defective), seed 3."""
    out = tmp_path_factory.mktemp("plant")
    for part in ("part1", "part16"):
        generate_part(part, 30, seed=3, out_dir=out, workers=2)
    return out


def generated_store(root: Path, images: int = 25) -> Path:
    """A fresh store at `root/store.duckdb` holding part1 generated with `images` images, via the CLI."""
    from engine.cli import main as gluelab

    store = root / "store.duckdb"
    assert gluelab(["generate", "--parts", "part1", "--images", str(images), "--out", str(root / "data"), "--store", str(store)]) == 0
    return store


def file_digest(path: Path) -> str | None:
    """sha256 of a file, or None when it does not exist (a store that was never created)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
