"""Inference memory: the measured peak bytes of tensors alive during one forward pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._pytree import tree_leaves

__all__ = ["peak_activation_bytes"]


class _StorageTracker:
    """Live bytes of storages created by ATen operators, with their running peak.

    Each new output storage (deduplicated, so views and in-place results add nothing) adds its
    size; it is subtracted once the storage is found freed, which is checked before every
    operator's outputs are counted. Storages are known by a weak reference to the C++ storage
    (torch's ``StorageWeakRef``), not by the Python object: a storage's Python wrapper can be
    dropped and made anew while the storage lives, and its ``id`` then changes with garbage
    collection timing, which made the count differ between processes. Storages given as
    ``external`` (inputs, parameters, buffers) are never counted.
    """

    def __init__(self, external: Iterable[torch.Tensor]) -> None:
        """Remember the external storages (a weak reference keeps a storage's identity)."""
        self._external = {StorageWeakRef(s) for s in map(_storage, external) if s is not None}
        self._live: dict[StorageWeakRef, int] = {}
        self.current = 0
        self.peak = 0

    def add(self, output: Any) -> None:
        """Drop the storages freed since the last operator, then count this one's outputs."""
        for ref in [r for r in self._live if r.expired()]:
            self.current -= self._live.pop(ref)
        for tensor in tree_leaves(output):
            storage = _storage(tensor)
            if storage is None:
                continue
            size = storage.nbytes()
            if size == 0:
                continue
            ref = StorageWeakRef(storage)
            if ref in self._external or ref in self._live:
                continue
            self._live[ref] = size
            self.current += size
            self.peak = max(self.peak, self.current)

    def close(self) -> None:
        """Let go of the weak references the tracker holds."""
        self._live.clear()
        self._external.clear()


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
