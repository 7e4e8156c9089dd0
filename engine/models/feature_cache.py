"""Frozen backbone features computed once and kept on disk, shared by epochs, seeds and models.

A model's frozen feature extractor gives the same output for the same input tensor every time, so
training epochs after the first, other seeds and other models on the same backbone can read it back
instead of running the backbone again. While a run fits (and while it scores its test set), each
frozen extractor a model's registry entry names is swapped for a caching wrapper:

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

import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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


def input_digests(inputs: torch.Tensor) -> list[str]:
    """One digest per sample of a batch: its shape, dtype and exact bytes."""
    samples = inputs.detach().cpu().contiguous()
    digests = []
    for sample in samples:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(f"{tuple(sample.shape)}|{sample.dtype}|".encode())
        digest.update(sample.numpy().tobytes())
        digests.append(digest.hexdigest())
    return digests


def _key(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=20).hexdigest()


def layer_weight_digests(network: nn.Module, layers: Sequence[str]) -> dict[str, str]:
    """For each layer, a digest of the weights that compute it: the state dict up to its last entry.

    A sequential CNN's output at a layer depends on the modules registered before it and on the layer
    itself; the state dict lists them in that order.
    """
    items = list(network.state_dict().items())
    last = {}
    for layer in layers:
        indices = [i for i, (name, _) in enumerate(items) if name.startswith(f"{layer}.")]
        if not indices:
            raise ValueError(f"{type(network).__name__} has no weights under layer {layer!r}")
        last[layer] = indices[-1]
    running = hashlib.blake2b(digest_size=20)
    snapshots: dict[int, str] = {}
    for index, (name, tensor) in enumerate(items):
        running.update(name.encode())
        running.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if index in last.values():
            snapshots[index] = running.copy().hexdigest()
        if index >= max(last.values()):
            break
    return {layer: snapshots[last[layer]] for layer in layers}


def module_digest(module: nn.Module) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class CachedLayers(nn.Module):
    """A timm feature extractor whose per-layer outputs come from the cache when present.

    `extractor` is anomalib's `TimmFeatureExtractor` (returns {layer: tensor}) or a timm `features_only`
    network (returns a list in `feature_info` order). A sample missing any layer is computed by the
    extractor itself, in one batch with the other missing samples, and every layer is stored.
    """

    def __init__(self, extractor: nn.Module, cache: FeatureCache):
        super().__init__()
        self.extractor, self.cache = extractor, cache
        network: Any = getattr(extractor, "feature_extractor", extractor)
        self.as_dict = network is not extractor
        layers: Any = extractor.layers if self.as_dict else network.feature_info.module_name()
        self.layers: list[str] = list(layers)
        self.network_name = type(network).__qualname__
        self.weights = layer_weight_digests(network, self.layers)

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor] | list[torch.Tensor]:
        keys = [
            {layer: _key(self.network_name, layer, self.weights[layer], digest) for layer in self.layers}
            for digest in input_digests(inputs)
        ]
        found: list[dict[str, torch.Tensor] | None] = []
        for sample_keys in keys:
            tensors = {layer: self.cache.get(key, inputs.device) for layer, key in sample_keys.items()}
            complete = {layer: t for layer, t in tensors.items() if t is not None}
            found.append(complete if len(complete) == len(tensors) else None)
        missing = [i for i, tensors in enumerate(found) if tensors is None]
        if missing:
            computed = self.extractor(inputs[missing])
            named = computed if self.as_dict else dict(zip(self.layers, computed, strict=True))
            for row, index in enumerate(missing):
                sample = {layer: named[layer][row] for layer in self.layers}
                for layer, tensor in sample.items():
                    self.cache.put(keys[index][layer], tensor)
                found[index] = sample
        stacked = {layer: torch.stack([tensors[layer] for tensors in found]) for layer in self.layers}  # type: ignore[index]
        return stacked if self.as_dict else [stacked[layer] for layer in self.layers]


class CachedOutput(nn.Module):
    """Any frozen module returning a tensor or a list of tensors, cached whole per input sample."""

    def __init__(self, module: nn.Module, cache: FeatureCache):
        super().__init__()
        self.module, self.cache = module, cache
        self.identity = module_digest(module)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        keys = [_key(self.identity, digest) for digest in input_digests(inputs)]
        found = [self._read(key, inputs.device) for key in keys]
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            computed = self.module(inputs[missing])
            as_list = isinstance(computed, (list, tuple))
            outputs = list(computed) if as_list else [computed]
            for row, index in enumerate(missing):
                sample = [output[row] for output in outputs]
                for part, tensor in enumerate(sample):
                    self.cache.put(f"{keys[index]}-{part}", tensor)
                self.cache.put(f"{keys[index]}-n", torch.tensor([len(sample), int(as_list)]))
                found[index] = (sample, as_list)
        samples = [entry for entry in found if entry is not None]
        as_list = samples[0][1]
        stacked = [torch.stack([tensors[part] for tensors, _ in samples]) for part in range(len(samples[0][0]))]
        return stacked if as_list else stacked[0]

    def _read(self, key: str, device: torch.device) -> tuple[list[torch.Tensor], bool] | None:
        """(the sample's output tensors on `device`, whether the module returns a list), or None on a miss."""
        meta = self.cache.get(f"{key}-n")
        if meta is None:
            return None
        tensors = [self.cache.get(f"{key}-{part}", device) for part in range(int(meta[0]))]
        if any(tensor is None for tensor in tensors):
            return None
        return [t for t in tensors if t is not None], bool(meta[1])


def wrap(module: nn.Module, cache: FeatureCache) -> nn.Module:
    """The caching wrapper that suits a frozen module."""
    # anomalib's TimmFeatureExtractor marks itself frozen with `requires_grad = False` and runs under no_grad
    frozen = getattr(module, "requires_grad", None) is False or not any(p.requires_grad for p in module.parameters())
    if not frozen:
        raise ValueError(f"{type(module).__name__} has trainable weights; only frozen extractors are cached")
    network = getattr(module, "feature_extractor", module)
    if hasattr(network, "feature_info") and (network is module or hasattr(module, "layers")):
        return CachedLayers(module, cache)
    return CachedOutput(module, cache)


@contextmanager
def cached_submodules(root: nn.Module, paths: Sequence[str], cache: FeatureCache | None) -> Iterator[None]:
    """While the block runs, the frozen submodules of `root` at `paths` (dotted) read and fill `cache`."""
    if cache is None or not paths:
        yield
        return
    swapped = []
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = root.get_submodule(parent_path) if parent_path else root
        original = getattr(parent, name)
        parent._modules[name] = wrap(original, cache)
        swapped.append((parent, name, original))
    try:
        yield
    finally:
        for parent, name, original in reversed(swapped):
            parent._modules[name] = original
