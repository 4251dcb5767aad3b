"""Inference memory: the measured peak bytes of tensors alive during one forward pass."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

__all__ = ["peak_activation_bytes"]


class _StorageTracker:
    """Live bytes of storages created by ATen operators, with their running peak.

    Each new output storage (deduplicated, so views and in-place results add nothing) adds its
    size; a ``weakref.finalize`` on the storage subtracts it when the storage is freed.
    Storages given as ``external`` (inputs, parameters, buffers) are never counted.
    """

    def __init__(self, external: Iterable[torch.Tensor]) -> None:
        """Remember the external storages, holding them so their ids stay valid."""
        self._external = {id(s): s for s in (_storage(t) for t in external) if s is not None}
        self._live: dict[int, int] = {}
        self._finalizers: list[weakref.finalize] = []
        self.current = 0
        self.peak = 0

    def add(self, output: Any) -> None:
        """Account for the storages of an operator's tensor outputs."""
        for tensor in tree_leaves(output):
            storage = _storage(tensor)
            if storage is None:
                continue
            key = id(storage)
            if key in self._external or key in self._live:
                continue
            size = storage.nbytes()
            if size == 0:
                continue
            self._live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            self._finalizers.append(weakref.finalize(storage, self._release, key))

    def _release(self, key: int) -> None:
        """Storage freed: subtract its size."""
        self.current -= self._live.pop(key, 0)

    def close(self) -> None:
        """Detach the finalizers still pending so the tracker can be collected."""
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()


def _storage(value: Any) -> Any:
    """The untyped storage behind a dense tensor, or None."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        return None
    try:
        return value.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def _tracking_mode(tracker: _StorageTracker) -> Any:
    """A TorchDispatchMode feeding every operator's outputs to ``tracker``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        """Runs each operator and records the storages it returns."""

        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            """Run the operator, then account for its outputs."""
            out = func(*args, **(kwargs or {}))
            tracker.add(out)
            return out

    return _Mode()


def peak_activation_bytes(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """Measured peak bytes of tensors alive during one forward (outputs kept until its end)."""
    inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    tracker = _StorageTracker([*model.parameters(), *model.buffers(), *inputs])
    try:
        with torch.inference_mode(), _tracking_mode(tracker):
            output = model(*args, **kwargs)
            del output
        return tracker.peak
    finally:
        tracker.close()
