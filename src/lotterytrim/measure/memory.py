"""Inference memory: the peak bytes of tensors one forward pass needs, from each tensor's
first writer to its last reader."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._pytree import tree_leaves

__all__ = ["peak_activation_bytes"]


class _StorageTracker:
    """Storages created by ATen operators, each with the step that made it and the last step
    that read it; the peak is the largest total of storages live at one step.

    A storage is live from the operator that returns it to the last operator that takes it as
    input (views and in-place results share a storage, so they extend its life and add
    nothing). Lifetimes come from the operator sequence alone, not from when Python drops a
    reference: a sampling profiler or debugger that holds a frame for a moment, or the garbage
    collector's timing, would otherwise change the result from one process to the next.
    Storages are known by a weak reference to the C++ storage (torch's ``StorageWeakRef``),
    which also keeps a freed storage's address from being taken for a new one while the
    reference is held. Storages given as ``external`` (inputs, parameters, buffers) are never
    counted.
    """

    def __init__(self, external: Iterable[torch.Tensor]) -> None:
        """Remember the external storages (a weak reference keeps a storage's identity)."""
        self._external = {StorageWeakRef(s) for s in map(_storage, external) if s is not None}
        self._open: dict[StorageWeakRef, int] = {}
        self._sizes: list[int] = []
        self._born: list[int] = []
        self._last: list[int] = []
        self._step = 0

    def add(self, output: Any, inputs: Any = ()) -> None:
        """Record one operator: the storages it reads, then the ones it returns."""
        self._step += 1
        for ref in [r for r in self._open if r.expired()]:
            del self._open[ref]
        for tensor in tree_leaves(inputs):
            self._read(tensor)
        for tensor in tree_leaves(output):
            if self._read(tensor):
                continue
            storage = _storage(tensor)
            if storage is None or storage.nbytes() == 0:
                continue
            ref = StorageWeakRef(storage)
            if ref in self._external:
                continue
            self._open[ref] = len(self._sizes)
            self._sizes.append(storage.nbytes())
            self._born.append(self._step)
            self._last.append(self._step)

    def keep(self, output: Any) -> None:
        """Keep the storages of ``output`` (the forward's result) live to the end."""
        self._step += 1
        for tensor in tree_leaves(output):
            self._read(tensor)

    def _read(self, tensor: Any) -> bool:
        """Extend a tracked storage's life to this step; False when it is not tracked."""
        storage = _storage(tensor)
        index = None if storage is None else self._open.get(StorageWeakRef(storage))
        if index is None:
            return False
        self._last[index] = self._step
        return True

    @property
    def current(self) -> int:
        """Bytes of the storages live at the latest step."""
        return self._live_at()[-1]

    @property
    def peak(self) -> int:
        """The largest total bytes of storages live at one step."""
        return max(self._live_at())

    def _live_at(self) -> list[int]:
        """Total live bytes at each step, 0 through the latest."""
        change = [0] * (self._step + 2)
        for size, born, last in zip(self._sizes, self._born, self._last, strict=True):
            change[born] += size
            change[last + 1] -= size
        total, live = 0, []
        for delta in change[:-1]:
            total += delta
            live.append(total)
        return live

    def close(self) -> None:
        """Let go of the weak references the tracker holds."""
        self._open.clear()
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
            tracker.add(out, (args, kwargs))
            return out

    return _Mode()


def peak_activation_bytes(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """Peak bytes of the tensors one forward needs at once (outputs kept until its end)."""
    inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    tracker = _StorageTracker([*model.parameters(), *model.buffers(), *inputs])
    try:
        with torch.inference_mode(), _tracking_mode(tracker):
            output = model(*args, **kwargs)
            tracker.keep(output)
            del output
        return tracker.peak
    finally:
        tracker.close()
