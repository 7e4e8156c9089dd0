"""The caching wrappers of frozen feature extractors (`engine.models.feature_cache` describes what is kept, and
keeps it): `CachedLayers` for timm feature extractors, `CachedOutput` for any other frozen module, and
`cached_submodules`, which swaps a model's frozen modules for them while it fits and scores."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from engine.models.feature_cache import FeatureCache


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
