"""The trimming plan: which indices of every tensor survive, in the original model's coordinates.

A plan is plain data (JSON-serialisable). It composes across steps, applies to a state_dict of
the original architecture or of any earlier trimmed one, and resizes a freshly built original
model into the trimmed architecture, which is how rewinding and loading work.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TrimPlan"]

Keep = list[np.ndarray | None]


def _runs(idx: np.ndarray) -> list[list[int]]:
    """Encode sorted indices as [start, stop) runs: compact for the long runs trimming leaves."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [idx.size]])
    return [[int(idx[a]), int(idx[b - 1]) + 1] for a, b in zip(starts, stops, strict=True)]


def _unruns(runs: list[list[int]]) -> np.ndarray:
    if not runs:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in runs])


@dataclass
class TrimPlan:
    """Surviving indices per tensor and dim, plus the module attributes that follow from them.

    ``keep[name][d]`` is a sorted int array of surviving indices along dim ``d`` of the original
    tensor ``name`` (a state_dict key), or None when that dim is untouched. ``shapes`` holds the
    original shapes; ``attributes[module]`` the attribute values of the trimmed module.
    """

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    keep: dict[str, Keep] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def identity(cls, model: nn.Module) -> TrimPlan:
        """The plan that keeps everything of ``model`` (the start of every lottery)."""
        return cls(shapes={k: tuple(v.shape) for k, v in _named_tensors(model).items()})

    def copy(self) -> TrimPlan:
        """An independent copy."""
        return copy.deepcopy(self)

    # ---------------------------------------------------------------- queries
    def current_shape(self, name: str) -> tuple[int, ...]:
        """Shape of tensor ``name`` after this plan."""
        shape = list(self.shapes[name])
        for d, k in enumerate(self.keep.get(name, [])):
            if k is not None:
                shape[d] = int(k.size)
        return tuple(shape)

    def current_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of every tensor after this plan."""
        return {name: self.current_shape(name) for name in self.shapes}

    def is_identity(self) -> bool:
        """True when nothing is removed."""
        return not self.attributes and all(
            k is None or k.size == self.shapes[n][d]
            for n, ks in self.keep.items()
            for d, k in enumerate(ks)
        )

    def kept_indices(self, name: str, dim: int) -> np.ndarray:
        """Surviving original indices of ``name`` along ``dim`` (all when untouched)."""
        ks = self.keep.get(name)
        k = ks[dim] if ks is not None else None
        if k is None:
            return np.arange(self.shapes[name][dim], dtype=np.int64)
        return k

    # ---------------------------------------------------------------- algebra
    def then(self, step: TrimPlan) -> TrimPlan:
        """Compose: ``step`` is expressed in this plan's trimmed coordinates; result is original."""
        out = self.copy()
        for name, ks in step.keep.items():
            if name not in out.shapes:
                raise KeyError(f"plan step names tensor {name!r}, unknown to the plan it extends")
            merged: Keep = list(out.keep.get(name, [None] * len(out.shapes[name])))
            for d, k in enumerate(ks):
                if k is not None:
                    merged[d] = self.kept_indices(name, d)[k]
            out.keep[name] = merged
        for mod, attrs in step.attributes.items():
            out.attributes.setdefault(mod, {}).update(attrs)
        return out

    def relative_to(self, earlier: TrimPlan | None) -> TrimPlan:
        """This plan expressed in the coordinates of ``earlier`` (a prefix of the same lottery)."""
        if earlier is None:
            return self.copy()
        out = TrimPlan(
            shapes=dict(earlier.current_shapes()), attributes=copy.deepcopy(self.attributes)
        )
        for name, ks in self.keep.items():
            rel: Keep = []
            for d, k in enumerate(ks):
                if k is None:
                    rel.append(None)
                    continue
                base = earlier.kept_indices(name, d)
                pos = np.searchsorted(base, k)
                if np.any(pos >= base.size) or np.any(base[np.minimum(pos, base.size - 1)] != k):
                    raise ValueError(
                        f"tensor {name!r} dim {d}: this plan keeps indices the earlier plan had "
                        "already removed, so it does not extend it"
                    )
                rel.append(pos.astype(np.int64))
            out.keep[name] = rel
        return out

    # ---------------------------------------------------------------- application
    def apply_to_state_dict(
        self, state: Mapping[str, torch.Tensor], source: TrimPlan | None = None
    ) -> dict[str, torch.Tensor]:
        """Slice a state_dict taken under plan ``source`` (None: the original) to this plan.

        Values are copied with ``index_select``, so survivors are bitwise equal to the source.
        """
        rel = self.relative_to(source)
        out: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            ks = rel.keep.get(name)
            expected = rel.shapes.get(name)
            if expected is not None and tuple(tensor.shape) != tuple(expected):
                raise ValueError(
                    f"state tensor {name!r} has shape {tuple(tensor.shape)}, the plan expects "
                    f"{tuple(expected)}"
                )
            out[name] = _slice(tensor, ks) if ks else tensor
        return out

    def apply_to_model(self, model: nn.Module, source: TrimPlan | None = None) -> None:
        """Resize ``model`` (built under plan ``source``; None: the original) to this plan."""
        rel = self.relative_to(source)
        for name, expected in rel.shapes.items():
            t = _get_tensor(model, name)
            if t is None:
                raise KeyError(f"the model has no tensor {name!r} that the plan names")
            if tuple(t.shape) != tuple(expected):
                raise ValueError(
                    f"tensor {name!r} has shape {tuple(t.shape)}, the plan expects "
                    f"{tuple(expected)}: the model was not built as the plan's source"
                )
        _apply_keep(model, rel.keep)
        _apply_attributes(model, rel.attributes)

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (indices stored as runs)."""
        return {
            "format": 1,
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "keep": {
                n: [None if k is None else _runs(k) for k in ks] for n, ks in self.keep.items()
            },
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, current: Mapping[str, tuple[int, ...]] | None = None
    ) -> TrimPlan:
        """Inverse of :meth:`to_dict`; refuses anything :meth:`to_dict` would not write.

        Shapes are non-negative integers, every ``keep`` entry names a tensor of ``shapes``
        with one entry per dim, and runs are integer ``[start, stop)`` pairs, non-empty,
        sorted, disjoint and inside the dim: indices stay unique and in range. ``current``
        (e.g. the shapes of the tensors a file holds) must be the shapes the plan produces;
        it is checked before any index is materialised, which bounds the memory a crafted
        plan can claim.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"malformed trimming plan: a mapping expected, got {_kind(data)}")
        if data.get("format") != 1:
            raise ValueError(f"unknown plan format {data.get('format')!r}")
        for key in ("shapes", "keep", "attributes"):
            if not isinstance(data.get(key), Mapping):
                raise ValueError(f"malformed trimming plan: {key!r} must be a mapping")
        shapes = {_name(k, "tensor"): _shape(k, v) for k, v in data["shapes"].items()}
        keep: dict[str, Keep] = {}
        for name, ks in data["keep"].items():
            if name not in shapes:
                raise ValueError(f"plan keeps indices of tensor {name!r}, absent from its shapes")
            shape = shapes[name]
            if not isinstance(ks, list) or len(ks) != len(shape):
                raise ValueError(
                    f"plan entry of tensor {name!r} must list one entry per dim of "
                    f"{shape}, got {ks!r:.80}"
                )
            for d, k in enumerate(ks):
                if k is not None:
                    _check_runs(k, shape[d], f"{name!r} dim {d}")
                    if not k and shape[d] > 0:
                        raise ValueError(
                            f"plan keeps no index of dim {d} of tensor {name!r}: a layer "
                            "without units cannot run"
                        )
        if current is not None:
            _check_current(shapes, data["keep"], current)
        for name, ks in data["keep"].items():
            keep[name] = [None if k is None else _unruns(k) for k in ks]
        attributes: dict[str, dict[str, Any]] = {}
        for mod, attrs in data["attributes"].items():
            if not isinstance(attrs, Mapping):
                raise ValueError(f"plan attributes of module {mod!r} must be a mapping")
            attributes[_name(mod, "module")] = {_name(k, "attribute"): v for k, v in attrs.items()}
        return cls(shapes=shapes, keep=keep, attributes=attributes)

    def to_json(self) -> str:
        """The plan as a JSON string."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TrimPlan:
        """Read a plan written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrimPlan):
            return NotImplemented
        return self.to_dict() == other.to_dict()


# -------------------------------------------------------------------- helpers
def _kind(value: Any) -> str:
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"plan {what} names must be strings, got {value!r:.80}")
    return value


def _shape(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(x) and x >= 0 for x in value):
        raise ValueError(f"plan shape of tensor {name!r} must list sizes >= 0, got {value!r:.80}")
    return tuple(value)


def _check_current(
    shapes: Mapping[str, tuple[int, ...]],
    keep: Mapping[str, list[Any]],
    current: Mapping[str, tuple[int, ...]],
) -> None:
    """The shapes a (validated) raw plan produces must be ``current``; bounds index counts."""
    for name, shape in shapes.items():
        if name not in current:
            raise ValueError(f"plan names tensor {name!r}, which the file does not hold")
        ks = keep.get(name) or [None] * len(shape)
        got = tuple(shape[d] if k is None else sum(b - a for a, b in k) for d, k in enumerate(ks))
        want = tuple(current[name])
        if got != want:
            raise ValueError(f"plan makes tensor {name!r} {got}, the file holds it as {want}")
        limit = max(int(np.prod(want, dtype=np.float64)), 1 << 20)
        if any(k is not None and n > limit for k, n in zip(ks, got, strict=True)):
            raise ValueError(f"plan keeps more indices of tensor {name!r} than it holds")


def _check_runs(runs: Any, size: int, where: str) -> list[list[int]]:
    """Validate ``[start, stop)`` runs of one dim without materialising their indices."""
    if not isinstance(runs, list):
        raise ValueError(f"plan runs of tensor {where} must be a list, got {_kind(runs)}")
    prev = 0
    for run in runs:
        if not (isinstance(run, list) and len(run) == 2 and all(_is_int(x) for x in run)):
            raise ValueError(
                f"plan run {run!r:.80} of tensor {where} is not a pair of integers [start, stop)"
            )
        start, stop = run
        if start < prev or stop <= start or stop > size:
            raise ValueError(
                f"plan run {run!r} of tensor {where} is empty, unsorted, overlapping or "
                f"outside the dim of size {size}"
            )
        prev = stop
    return runs


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by state_dict name (tied tensors under each of their names)."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out[name] = p
    for name, b in model.named_buffers(remove_duplicate=False):
        if b is not None and b.dim() > 0:
            out[name] = b
    return out


def _get_tensor(model: nn.Module, name: str) -> torch.Tensor | None:
    mod_name, _, attr = name.rpartition(".")
    try:
        mod = model.get_submodule(mod_name) if mod_name else model
    except AttributeError:
        return None
    t: torch.Tensor | None = mod._parameters.get(attr)
    if t is None:
        t = mod._buffers.get(attr)
    return t


def _slice(tensor: torch.Tensor, ks: Keep) -> torch.Tensor:
    out = tensor
    for d, k in enumerate(ks):
        if k is not None:
            out = torch.index_select(out, d, torch.as_tensor(k, dtype=torch.long))
    return out.contiguous() if out is tensor else out


def _apply_keep(model: nn.Module, keep: Mapping[str, Keep]) -> None:
    """Replace every listed tensor by its sliced copy; tied tensors stay tied."""
    done: dict[int, torch.Tensor] = {}
    for name, ks in keep.items():
        if all(k is None for k in ks):
            continue
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name) if mod_name else model
        if attr in mod._parameters:
            old: torch.Tensor | None = mod._parameters[attr]
            assert old is not None
            new = done.get(id(old))
            if new is None:
                with torch.no_grad():
                    new = nn.Parameter(_slice(old.detach(), ks), requires_grad=old.requires_grad)
                done[id(old)] = new
            setattr(mod, attr, new)
        else:
            old = mod._buffers[attr]
            assert old is not None
            new = done.get(id(old))
            if new is None:
                new = _slice(old, ks)
                done[id(old)] = new
            setattr(mod, attr, new)
    for mod in model.modules():
        if isinstance(mod, nn.RNNBase):
            mod._init_flat_weights()


def _apply_attributes(model: nn.Module, attributes: Mapping[str, Mapping[str, Any]]) -> None:
    for mod_name, attrs in attributes.items():
        mod = model.get_submodule(mod_name) if mod_name else model
        for key, value in attrs.items():
            current = getattr(mod, key)
            if isinstance(current, tuple):
                value = tuple(value)
            setattr(mod, key, value)
