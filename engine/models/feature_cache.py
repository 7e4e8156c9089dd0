"""Frozen backbone features computed once and kept on disk, shared by epochs, seeds and models.

A model's frozen feature extractor gives the same output for the same input tensor every time, so
training epochs after the first, other seeds and other models on the same backbone can read it back
instead of running the backbone again. While a run fits (and while it scores its test set), each
frozen extractor a model's registry entry names is swapped for a caching wrapper
(`engine.models.cached_features`; this module is the folder they keep their files in):

- `CachedLayers` wraps a timm feature extractor (anomalib's `TimmFeatureExtractor`, or a timm
  `features_only` network) and keeps one file per (input, layer). Its key hashes the backbone's
  class, the layer's name, the weights that compute that layer (the state dict up to and including
  it, so PaDiM's `blocks.2` and PatchCore's `blocks.2` on the same weights share an entry, while other
  weights never do), the input tensor's shape and dtype, and the exact bytes of the input tensor. The
  input is the image after the model's own pre-processing, so the image's content, the input size, the
  normalisation and any augmentation draw are all part of the key: cached features are never reused for
  different pixels.
- `CachedOutput` wraps any other frozen module (CS-Flow's multi-scale trunk, a distilled teacher) and
  keeps its whole output per input, keyed by the module's class, all of its weights and the input bytes.

Files live in a folder beside the store (`feature_cache_dir`), one `.npy` per entry, written to a
temporary name and renamed into place, so a reader in another process sees a whole file or none. A
read refreshes the file's modification time; `FeatureCache.evict` deletes the least recently used
files once the folder exceeds its size limit. An entry deleted or damaged under a reader is a miss and
is computed again. Features are kept on disk as CPU arrays and handed back on the device of the input they
were asked for (a CUDA model gets CUDA tensors). Inference timing never goes through the cache: the evaluation
runner measures latency and throughput on the plain model.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_LIMIT_GB = 10.0
LIMIT_ENV = "GLUELAB_FEATURE_CACHE_GB"
EVICT_TO = 0.9  # eviction leaves the folder at 90 % of its limit, so it does not run on every write


def feature_cache_dir(store: Path | str) -> Path:
    """Folder beside the store file that holds cached backbone features."""
    return Path(f"{store}.features")


def limit_from_environment() -> float:
    """The cache's size limit in GB from `$GLUELAB_FEATURE_CACHE_GB` (0 turns the cache off)."""
    value = os.environ.get(LIMIT_ENV)
    if value is None or value == "":
        return DEFAULT_LIMIT_GB
    try:
        limit = float(value)
    except ValueError:
        raise ValueError(f"{LIMIT_ENV}={value!r} is not a number of gigabytes") from None
    if limit < 0:
        raise ValueError(f"{LIMIT_ENV}={value!r} must be 0 (no cache) or more")
    return limit


class FeatureCache:
    """A folder of cached feature tensors with a size limit and least-recently-used eviction."""

    def __init__(self, folder: Path | str, limit_gb: float = DEFAULT_LIMIT_GB):
        self.folder = Path(folder)
        self.limit_bytes = int(limit_gb * 2**30)
        self.hits = self.misses = 0
        self._write_failed = False

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The tensor kept under `key`, on `device`; None when there is none (or it is damaged)."""
        path = self._path(key)
        try:
            array = np.load(path, allow_pickle=False)
            os.utime(path)  # least recently used = oldest modification time
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError):  # damaged (a full disk, a crash mid-copy): drop it and compute again
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        import torch  # here, not at the top: the grid process makes a cache for its jobs and never loads torch

        return torch.from_numpy(array).to(device)

    def put(self, key: str, tensor: torch.Tensor) -> None:
        path, temporary = self._path(key), None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
                temporary = Path(handle.name)
                np.save(handle, tensor.detach().cpu().contiguous().numpy(), allow_pickle=False)
            os.replace(temporary, path)
        except OSError as error:  # the cache only saves time: a failed write must not fail the run
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            if not self._write_failed:
                warnings.warn(
                    f"feature cache {self.folder}: cannot write ({error}); computing without it", stacklevel=2
                )
                self._write_failed = True

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def evict(self) -> int:
        """Delete least recently used entries until the folder is within its limit; returns how many went."""
        entries = sorted(self._entries(), key=lambda entry: entry[2])
        total = sum(size for _, size, _ in entries)
        if total <= self.limit_bytes:
            return 0
        target, removed = EVICT_TO * self.limit_bytes, 0
        for path, size, _ in entries:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def _entries(self) -> Iterator[tuple[Path, int, float]]:
        if not self.folder.is_dir():
            return
        for sub in os.scandir(self.folder):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if entry.name.endswith(".npy"):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    yield Path(entry.path), stat.st_size, stat.st_mtime
