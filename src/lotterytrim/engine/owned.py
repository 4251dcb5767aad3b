"""Tensors that modules hold directly (class tokens, positions, mask embeddings, scales).

No adapter owns them, yet they often lie along a trimmed width: a class token is concatenated
with the embedded frames, a positional table or a layer-scale vector is broadcast against
them. Such a parameter is sliced along its last non-singleton dim with the units it meets,
when every use of it is a broadcasting op (add, multiply, concat along another dim, masked
write). A parameter used any other way (as a matrix, a conv kernel) needs an adapter; one the
example inputs never reach has no known coupling, and groups of its width are protected.

Floating-point buffers (a sinusoidal position table) follow the same rules: while tracing each
stands in as a parameter sharing its storage, so the tracer sees where it meets the units. A
buffer used any other way (a filterbank as a matrix, a window in ``stft``) raises nothing: the
groups that reach it are protected. A table broadcast across the channels it meets (a window
over time against (batch, channels, time)) does not follow them and is never sliced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch_pruning as tp
from torch import nn

from lotterytrim.engine import layers
from lotterytrim.engine.flattens import channel_dim_of
from lotterytrim.errors import UnsupportedLayerError

__all__ = ["OwnedParams"]

_PASS_OPS = frozenset(
    {
        "ExpandBackward0",
        "UnsqueezeBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "RepeatBackward0",
        "CloneBackward0",
        "ToCopyBackward0",
        "SliceBackward0",
    }
)
"""Ops that move a parameter without mixing its width (followed to the op that uses it)."""

_VIEW_OPS = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"})
"""Reshapes: harmless for a parameter with one non-singleton dim only."""

_BROADCAST_OPS = frozenset(
    {
        "AddBackward0",
        "AddBackward1",
        "SubBackward0",
        "SubBackward1",
        "MulBackward0",
        "DivBackward0",
        "CatBackward0",
        "IndexPutBackward0",
        "WhereBackward0",
        "MaskedScatterBackward0",
        "AddcmulBackward0",
    }
)
"""Ops that combine a parameter with activations index by index along the width."""


@dataclass
class _Owned:
    """One module-owned parameter: its names, the dim that follows the width, what uses it."""

    name: str  # canonical state_dict name
    owner: str  # module that holds it ("" for the model)
    attr: str  # its attribute name on the owner
    param: nn.Parameter = field(repr=False)
    dim: int | None  # last non-singleton dim (None: a scalar-like parameter, never sliced)
    unprunable: bool = False
    problem: str | None = None  # why it cannot be sliced with the units it meets
    used: bool = True
    places: tuple[tuple[nn.Module, str], ...] = ()  # a buffer's owners and names (else empty)
    across: bool = False  # broadcast across the channels it meets: follows no unit

    @property
    def buffer(self) -> bool:
        return bool(self.places)

    def describe(self) -> str:
        return f"'{self.name}' {tuple(self.param.shape)}"


class OwnedParams:
    """The model's module-owned parameters and how each can follow a trim."""

    def __init__(self, model: nn.Module, is_unprunable: Callable[[nn.Module], bool]) -> None:
        known: set[int] = set()
        for m in model.modules():
            if layers.adapter_for(m) is not None:
                known.update(id(p) for p in m.parameters())
        self.model = model
        self.by_id: dict[int, _Owned] = {}
        for owner, m in model.named_modules():
            for attr, p in m.named_parameters(recurse=False):
                if id(p) in known or id(p) in self.by_id:
                    continue
                dims = [d for d, s in enumerate(p.shape) if s > 1]
                self.by_id[id(p)] = _Owned(
                    name=f"{owner}.{attr}" if owner else attr,
                    owner=owner,
                    attr=attr,
                    param=p,
                    dim=dims[-1] if dims else None,
                    unprunable=is_unprunable(m),
                )
        self._add_buffers(model, known, is_unprunable)

    def _add_buffers(
        self, model: nn.Module, known: set[int], is_unprunable: Callable[[nn.Module], bool]
    ) -> None:
        """Floating-point buffers of modules without an adapter, each with a stand-in leaf."""
        real: dict[int, _Owned] = {}
        for m in model.modules():
            if layers.adapter_for(m) is not None:
                known.update(id(b) for b in m.buffers())
        for name, b in model.named_buffers(remove_duplicate=False):
            if b is None or id(b) in known or not b.is_floating_point() or b.dim() == 0:
                continue
            owner, _, attr = name.rpartition(".")
            m = model.get_submodule(owner) if owner else model
            if id(b) in real:
                real[id(b)].places += ((m, attr),)
                continue
            dims = [d for d, s in enumerate(b.shape) if s > 1]
            stand_in = nn.Parameter(b.detach(), requires_grad=True)
            o = _Owned(name, owner, attr, stand_in, dims[-1] if dims else None)
            o.unprunable, o.places = is_unprunable(m), ((m, attr),)
            real[id(b)] = self.by_id[id(stand_in)] = o

    @contextlib.contextmanager
    def standing_in(self) -> Iterator[None]:
        """Put every buffer's stand-in in its place while the model is traced, then restore."""
        saved = [(m, a, m._buffers[a]) for o in self.by_id.values() for m, a in o.places]
        try:
            for o in self.by_id.values():
                for m, a in o.places:
                    m._buffers[a] = o.param
            yield
        finally:
            for m, a, b in saved:
                m._buffers[a] = b

    def drop_buffers(self) -> bool:
        """Forget the buffers (to trace without them); whether there were any."""
        gone = [k for k, o in self.by_id.items() if o.buffer]
        for k in gone:
            del self.by_id[k]
        return bool(gone)

    def unwrapped(self) -> list[Any]:
        """The parameters the tracer must show as graph nodes, with the dim that follows units."""
        return [
            tp.dependency.graph._helpers.UnwrappedParameters(parameters=o.param, pruning_dim=o.dim)
            for o in self.by_id.values()
            if o.dim is not None
        ]

    def classify(
        self, dg: Any, on_unsupported: str, shapes: Mapping[int, tuple[int, ...]]
    ) -> dict[str, list[str]]:
        """Find how each parameter is used; raise (or report) those no rule can slice.

        ``shapes`` are the traced ops' output shapes by ``id(grad_fn)``. Returns the custom
        layers: owner module -> names of parameters it uses in ways that need an adapter.
        """
        custom: dict[str, list[str]] = {}
        for o in self.by_id.values():
            if o.dim is None:
                continue
            node = dg.module2node.get(o.param)
            if node is None:
                o.used = False
                continue
            o.problem, o.across = _use_problem(node, o, shapes)
            if o.problem is not None and not o.buffer:
                custom.setdefault(o.owner, []).append(o.attr)
        bad = {
            n: [a for a in attrs if not self._by_name(n, a).unprunable]
            for n, attrs in custom.items()
        }
        bad = {n: attrs for n, attrs in bad.items() if attrs}
        if bad and on_unsupported == "error":
            desc = "; ".join(
                f"'{n or '<model>'}' ({type(self.model.get_submodule(n)).__name__}) owns "
                + ", ".join(f"{a} (used by {self._by_name(n, a).problem})" for a in attrs)
                for n, attrs in bad.items()
            )
            raise UnsupportedLayerError(
                f"lotterytrim cannot slice these parameters: {desc}. Mark the layer with "
                "lt.unprunable(layer) or pass on_unsupported='protect' to keep the units that "
                "touch it, or register an adapter with "
                "lt.adapters.register_adapter(layer_type, adapter)."
            )
        return custom

    def _by_name(self, owner: str, attr: str) -> _Owned:
        return next(o for o in self.by_id.values() if o.owner == owner and o.attr == attr)

    def piece(self, param: Any, idx: np.ndarray) -> tuple[tuple[str, int, str] | None, str | None]:
        """(tensor, dim, owner) to slice for channels ``idx`` of ``param``, or why it cannot be."""
        o = self.by_id.get(id(param))
        if o is None or o.dim is None:
            return None, "it reaches a parameter that no layer owns"
        if o.across and o.problem is None:
            return None, None  # the same values for every channel: nothing to slice
        if o.unprunable:
            return None, f"it reaches parameter {o.describe()} of an unprunable layer"
        if o.problem is not None:
            return None, (
                f"it reaches parameter {o.describe()}, used by {o.problem}: which of its "
                "indices follow the units is unknown"
            )
        size = o.param.shape[o.dim]
        if idx.size and int(idx.max()) >= size:
            return None, (
                f"parameter {o.describe()} has {size} entries along dim {o.dim}, fewer than "
                "the units it meets"
            )
        return (o.name, o.dim, o.owner), None

    def protect_unused(self, groups: Iterable[Any]) -> None:
        """Protect groups as wide as a parameter the example inputs never used."""
        unused = [o for o in self.by_id.values() if not o.used and not o.unprunable]
        if not unused:
            return
        for g in groups:
            widths = set()
            for mem in g.producers():
                m = self.model.get_submodule(mem.module)
                ad = layers.adapter_for(m)
                if ad is not None and (width := ad.out_channels(m)):
                    widths.add(int(width))
            reasons = [
                f"parameter {o.describe()} is not used on the example inputs, so which units "
                f"it follows is unknown, and it has this group's width {o.param.shape[o.dim]}"
                for o in unused
                if o.dim is not None and o.param.shape[o.dim] in widths
            ]
            if reasons:
                g.protected = "; ".join([*([g.protected] if g.protected else []), *reasons])


def _use_problem(
    node: Any, owned: _Owned, shapes: Mapping[int, tuple[int, ...]]
) -> tuple[str | None, bool]:
    """(None or the op name of a use that does not broadcast it along the width, whether it is
    broadcast across the channels it meets)."""
    assert owned.dim is not None  # classify traces only parameters that follow the width
    single = sum(s > 1 for s in owned.param.shape) == 1
    stack, seen = [(n, node) for n in node.outputs], set()
    across = False
    while stack:
        n, prev = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        op = type(n.grad_fn).__name__
        if op in _PASS_OPS or (op in _VIEW_OPS and single):
            stack.extend((o, n) for o in n.outputs)
        elif op == "CatBackward0":
            dim = int(getattr(n.grad_fn, "_saved_dim", 0))
            dim = dim - 2**64 if dim >= 2**63 else dim  # autograd stores it unsigned
            if dim % owned.param.dim() == owned.dim:
                return "a concatenation along its sliced dim", False
        elif op not in _BROADCAST_OPS:
            return op.removesuffix("Backward0").removesuffix("Backward1") or op, False
        elif op != "IndexPutBackward0":
            align = _aligned(n, prev, owned, shapes)
            if align is not None and align == 1:
                across = True
            elif align is not None and align != owned.param.shape[owned.dim]:
                return f"{op.removesuffix('Backward0')} along another dim", False
    return None, across


def _aligned(n: Any, prev: Any, owned: _Owned, shapes: Mapping[int, tuple[int, ...]]) -> int | None:
    """The size, in the tensor ``prev`` hands to op ``n``, of the dim that meets the channels of
    the op's other operand (None when the traced shapes do not tell)."""
    out = shapes.get(id(n.grad_fn))
    mine = tuple(owned.param.shape) if prev.module is owned.param else shapes.get(id(prev.grad_fn))
    if out is None or mine is None:
        return None
    for other in n.inputs:
        if other is prev:
            continue
        cd = channel_dim_of(other, shapes)
        if cd is None:
            continue
        at = cd - (len(out) - len(mine))  # broadcasting aligns shapes on the right
        return 1 if at < 0 else int(mine[at])
    return None
