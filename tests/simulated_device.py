"""A second torch device on a machine that has only its CPU, for tests of where tensors are made.

On a GPU, a tensor made on the CPU inside a model's code (a `torch.full` without `device=`, say) meets the
model's CUDA tensors and torch refuses: "Expected all tensors to be on the same device". On a CPU-only machine
everything is on the CPU and such a mistake never shows. Inside `simulated_device()`, a tensor moved to
`SIMULATED` (torch's `meta` device) keeps its values on the CPU but reports `meta` as its device, and any
operation that mixes it with a tensor really on the CPU raises torch's own error, under the rules CUDA
follows: zero-dimensional CPU tensors may join (as CPU scalars do), index tensors may stay on the CPU, and
copies between devices are allowed. Everything else computes on the CPU with the same values, so a model run
on the simulated device must score exactly as on the CPU.

    with simulated_device():
        detector.to(SIMULATED.type)    # the module's parameters and buffers now report `meta`
        detector.fit(train, None)      # raises where a tensor made on the CPU meets the model's
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torchvision import tv_tensors

SIMULATED = torch.device("meta")
_aten = torch.ops.aten
_INDEXING = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}


def _on_simulated(device: object) -> bool:
    return device is not None and torch.device(device).type == SIMULATED.type  # type: ignore[arg-type]


class Simulated(tv_tensors.Image):
    """A CPU tensor that reports `SIMULATED` as its device.

    It derives from torchvision's `Image` only so that anomalib's batches, which wrap their images as `Image`,
    can hold it; its operations are plain tensor operations.
    """

    data_: torch.Tensor

    @staticmethod
    def __new__(cls, data: torch.Tensor, *args, **kwargs):
        self = torch.Tensor._make_wrapper_subclass(
            cls,
            data.shape,
            strides=data.stride(),
            storage_offset=data.storage_offset(),
            dtype=data.dtype,
            device=SIMULATED,
            requires_grad=data.requires_grad,
        )
        self.data_ = data
        return self

    def __init__(self, *args, **kwargs):
        """Everything is set in `__new__` (torchvision calls `Image(tensor, dtype=...)` on an `Image` again)."""

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"Simulated({self.data_!r})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        with _Dispatch():
            return func(*args, **(kwargs or {}))


def _unwrap(value):
    return value.data_ if isinstance(value, Simulated) else value


def _wrap(value):
    if not isinstance(value, torch.Tensor) or isinstance(value, Simulated):
        return value
    with torch.inference_mode(False):  # a view of a tensor made outside inference mode must not be an inference tensor
        return Simulated(value)


def _by_name(func, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """`args` and `kwargs` with a positional `device` argument passed by name instead."""
    names = [argument.name for argument in func._schema.arguments]
    if "device" in names[: len(args)]:
        position = names.index("device")
        return args[:position], {**dict(zip(names[position:], args[position:], strict=False)), **kwargs}
    return args, kwargs


class _Dispatch(TorchDispatchMode):
    """Each aten operation: checked for a device mix, computed on the CPU, its results on the device they belong."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        args, kwargs = _by_name(func, args, kwargs or {})
        device = kwargs.get("device")
        if func.overloadpacket in (_aten._to_copy, _aten.to) and device is not None:  # a move between devices
            result = func(*tree_map(_unwrap, args), **{**kwargs, "device": torch.device("cpu")})
            return _wrap(result) if _on_simulated(device) else result
        if func is _aten.copy_.default:  # copying between devices is allowed
            _unwrap(args[0]).copy_(_unwrap(args[1]))
            return args[0]
        checked = args[:1] if func in _INDEXING else (args, kwargs)
        tensors = [value for value in tree_flatten(checked)[0] if isinstance(value, torch.Tensor)]
        simulated = any(isinstance(tensor, Simulated) for tensor in tensors)
        if simulated and any(not isinstance(t, Simulated) and t.dim() > 0 and t.device.type == "cpu" for t in tensors):
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but found at least two devices, {SIMULATED} and cpu!"
                f" ({func})"
            )
        if _on_simulated(device):  # a tensor made on the simulated device
            return tree_map(_wrap, func(*args, **{**kwargs, "device": torch.device("cpu")}))
        if not simulated and not any(isinstance(v, Simulated) for v in tree_flatten((args, kwargs))[0]):
            return func(*args, **kwargs)
        result = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        if func._schema.is_mutable and args and isinstance(args[0], Simulated) and result is args[0].data_:
            return args[0]
        return tree_map(_wrap, result)


class _Functions(TorchFunctionMode):
    """What torch does below the dispatcher, where a wrapper cannot see it, done where it can.

    `torch.tensor(data, device=...)` and a list index (`x[[1, 2]]`) copy Python values (or the values of tensors in
    a list) straight onto a device; here they are made on the CPU first and moved through the dispatcher.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and _on_simulated(kwargs.get("device")):
            return func(*tree_map(_unwrap, args), **{**kwargs, "device": "cpu"}).to(SIMULATED)
        if func is torch.Tensor.new_tensor and isinstance(args[0], Simulated) and kwargs.get("device") is None:
            return func(args[0].data_, *args[1:], **kwargs).to(SIMULATED)
        if (
            func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__)
            and isinstance(args[0], Simulated)
            and isinstance(args[1], list)
        ):
            args = (args[0], torch.tensor(args[1]), *args[2:])
        return func(*args, **kwargs)


@contextmanager
def simulated_device() -> Iterator[None]:
    """While the block runs, `SIMULATED` behaves as a second device whose tensors compute on the CPU."""
    with _Functions(), _Dispatch():
        yield


def on_cpu(value):
    """`value` (a tensor or a nest of them) with simulated tensors as the plain CPU tensors they hold."""
    return tree_map(_unwrap, value)
