"""The dependency graph: which units are coupled, what one unit costs, and how to remove them.

torch-pruning's ``DependencyGraph`` links layers; we walk the links with one index array per
layer, merge units the model couples (gated halves, recurrent directions), protect groups that
cannot be trimmed safely (saying why) and turn a removal into a :class:`~lotterytrim.plan.TrimPlan`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from lotterytrim.calls import eval_mode, kept_modes, output_signature, run_model, tensor_leaves
from lotterytrim.engine import attention, layers, recurrent
from lotterytrim.engine.adapter import OWNED
from lotterytrim.engine.flattens import fix_flattens
from lotterytrim.engine.groups import Entry, Member, TensorAliases, UnitGroup, protect_ties
from lotterytrim.engine.indexmap import UnionFind, Unmappable, dedupe, fix_glu, map_indices
from lotterytrim.engine.owned import OwnedParams
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.engine.slices import channel_slices, fix_slice_bounds, fix_time_slices
from lotterytrim.engine.tags import is_unprunable
from lotterytrim.errors import ExampleInputError
from lotterytrim.options import DEFAULT_ON_UNSUPPORTED, check_on_unsupported

__all__ = ["TrimGraph"]


class TrimGraph:
    """The model traced once: its unit groups, their exact parameter costs, and plan building."""

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        unprunable: Iterable[nn.Module] = (),
        on_unsupported: str = DEFAULT_ON_UNSUPPORTED,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        check_on_unsupported(on_unsupported)
        self.model = model
        self.example_inputs = example_inputs
        self._names = {m: n for n, m in model.named_modules()}
        declared = list(unprunable)
        for m in declared:
            if not isinstance(m, nn.Module) or m not in self._names:
                raise ValueError(f"unprunable entry {m!r} is not a module of this model")
        # a declared or tagged container protects every layer inside it
        declared += [m for m in model.modules() if is_unprunable(m)]
        self._unprunable = {id(inner) for m in declared for inner in m.modules()}
        self._aliases = TensorAliases(model)
        self.signature = self._check_runs()
        self._owned = OwnedParams(model, self._is_unprunable)
        self._heads = attention.find_heads(model)
        self._dg = self._trace()
        self._custom = self._owned.classify(self._dg, on_unsupported, self._shapes)
        self.groups = self._discover()
        protect_ties(self.groups, self._aliases)
        self._owned.protect_unused(self.groups)

    # ---------------------------------------------------------------- checks
    def _check_runs(self) -> Any:
        try:
            with eval_mode(self.model), torch.no_grad():
                out = run_model(self.model, self.example_inputs)
        except Exception as exc:  # noqa: BLE001 - any failure means the inputs do not fit
            raise ExampleInputError(
                f"example_inputs could not be run through {type(self.model).__name__}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not tensor_leaves(out):
            raise ExampleInputError(
                f"{type(self.model).__name__} returned no tensor for the example inputs"
            )
        return output_signature(out)

    def _is_unprunable(self, module: nn.Module) -> bool:
        return id(module) in self._unprunable

    # ---------------------------------------------------------------- tracing
    def _trace(self) -> tp.DependencyGraph:
        for with_buffers in (True, False):
            try:
                return self._trace_once()
            except Exception as exc:  # noqa: BLE001
                if with_buffers and self._owned.drop_buffers():
                    continue  # a buffer written in place cannot stand in as a leaf: without them
                raise ExampleInputError(
                    f"tracing {type(self.model).__name__} failed: {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    def _trace_once(self) -> tp.DependencyGraph:
        dg = tp.DependencyGraph()
        pruners: dict[Any, Any] = recurrent.recurrent_pruners(self.model)
        outputs: list[torch.Tensor] = []
        self._dead_fns: set[int] = set()

        def _outputs(out: Any) -> list[torch.Tensor]:
            outputs.extend(tensor_leaves(out))
            dead = recurrent.dead_ends(outputs, rec.tensors)  # unused branches are traced too
            self._dead_fns = {id(t.grad_fn) for t in dead}
            return outputs + dead

        with (
            kept_modes(self.model),
            warnings.catch_warnings(),
            torch.enable_grad(),
            recurrent.traceable(self.model),
            self._owned.standing_in(),
            recurrent.recording() as rec,
        ):
            warnings.simplefilter("ignore")
            dg.build_dependency(
                self.model,
                example_inputs=self.example_inputs,
                forward_fn=run_model,
                output_transform=_outputs,
                customized_pruners=pruners,
                unwrapped_parameters=self._owned.unwrapped(),
                verbose=False,
            )
        self._shapes = {id(t.grad_fn): tuple(t.shape) for t in rec.tensors}
        recurrent.fix_recurrent_states(dg)
        fix_glu(dg)
        fix_slice_bounds(dg)
        fix_time_slices(dg)
        self._channel_slices = channel_slices(dg)
        fix_flattens(dg, self._shapes)
        out_fns = {id(t.grad_fn) for t in outputs if t.grad_fn is not None}
        self._output_nodes = {id(n) for n in dg.module2node.values() if id(n.grad_fn) in out_fns}
        return dg

    # ---------------------------------------------------------------- group discovery
    def _propagate(
        self, node: Any, fn: Any, idx: np.ndarray, root: np.ndarray, uf: UnionFind
    ) -> tuple[dict[tuple[Any, Any], tuple[np.ndarray, np.ndarray]], str | None]:
        members: dict[tuple[Any, Any], tuple[np.ndarray, np.ndarray]] = {(node, fn): (idx, root)}
        stack = [(node, fn, idx, root)]
        problem: str | None = None
        while stack:
            cur, cur_fn, cidx, croot = stack.pop()
            for dep in cur.dependencies:
                if not dep.is_triggered_by(cur_fn):
                    continue
                nidx, nroot = cidx, croot
                try:
                    for mp in dep.index_mapping:
                        if mp is not None:
                            nidx, nroot = map_indices(mp, nidx, nroot)
                except Unmappable as exc:
                    problem = f"index mapping {exc} at {dep.target.name} is not supported"
                    continue
                if nidx.size == 0:
                    continue
                target = dep.target
                nidx, nroot = self._close(target, dep.handler, nidx, nroot)
                key = (target, dep.handler)
                if key in members:
                    oidx, oroot = members[key]
                    pos = np.searchsorted(oidx, nidx)
                    pos_c = np.minimum(pos, oidx.size - 1)
                    seen = oidx[pos_c] == nidx
                    if seen.any():
                        uf.union_arrays(oroot[pos_c[seen]], nroot[seen])
                    if seen.all():
                        continue
                    nidx, nroot = nidx[~seen], nroot[~seen]
                    allidx = np.concatenate([oidx, nidx])
                    order = np.argsort(allidx, kind="stable")
                    members[key] = (allidx[order], np.concatenate([oroot, nroot])[order])
                else:
                    members[key] = (nidx, nroot)
                stack.append((target, dep.handler, nidx, nroot))
        return members, problem

    def _close(
        self, node: Any, handler: Any, idx: np.ndarray, root: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sort and dedupe; a recurrent output feature brings its siblings in other directions."""
        m = node.module
        if isinstance(m, nn.RNNBase) and self._dg.is_out_channel_pruning_fn(handler):
            h = m.hidden_size
            dirs = 2 if m.bidirectional else 1
            k = np.arange(dirs) * h
            idx = ((idx % h)[:, None] + k[None, :]).ravel()
            root = np.repeat(root, dirs)
        elif isinstance(m, nn.MultiheadAttention) and m._qkv_same_embed_dim:
            idx, root = attention.whole_heads(idx, root, m.head_dim)
        elif (
            isinstance(m, nn.Linear)
            and self._names.get(m) in self._heads
            and self._dg.is_out_channel_pruning_fn(handler)
        ):
            idx, root = attention.whole_heads(idx, root, self._heads[self._names[m]].head_dim)
        return dedupe(idx, root)

    def _discover(self) -> list[UnitGroup]:
        dg = self._dg
        covered: set[int] = set()
        groups: list[UnitGroup] = []
        for name, m in self.model.named_modules():
            ad = layers.adapter_for(m)
            if ad is None or not ad.producer or m not in dg.module2node or id(m) in covered:
                continue
            n = ad.out_channels(m)
            if not n:
                continue
            node = dg.module2node[m]
            fn = dg.get_pruner_of_module(m).prune_out_channels
            idx = np.arange(n, dtype=np.int64)
            root = idx % m.hidden_size if isinstance(m, nn.RNNBase) else idx.copy()
            uf = UnionFind(int(root.max()) + 1)
            members, problem = self._propagate(node, fn, idx, root, uf)
            group = self._make_group(len(groups), name, members, uf, problem)
            for mem in group.members:
                if mem.side == "out":
                    covered.add(id(self.model.get_submodule(mem.module)))
            groups.append(group)
        return groups

    def _make_group(
        self,
        gid: int,
        name: str,
        members: Mapping[tuple[Any, Any], tuple[np.ndarray, np.ndarray]],
        uf: UnionFind,
        problem: str | None,
    ) -> UnitGroup:
        dg = self._dg
        reasons: list[str] = [problem] if problem else []
        raw: list[tuple[str, str, str, np.ndarray, np.ndarray, bool]] = []
        pieces: list[tuple[str, int, np.ndarray, np.ndarray, str, str]] = []
        for (node, handler), (idx, root) in members.items():
            m = node.module
            side = "out" if dg.is_out_channel_pruning_fn(handler) else "in"
            if node.type == tp.ops.OPTYPE.OUTPUT:
                if id(node.grad_fn) not in self._dead_fns:  # an unused branch is no output
                    reasons.append("its units reach a model output")
                continue
            if side == "out" and id(node) in self._output_nodes:
                reasons.append("its units reach a model output")
            if isinstance(m, nn.Parameter) or node.type == tp.ops.OPTYPE.PARAMETER:
                piece, why = self._owned.piece(m, idx)
                if why is not None:
                    reasons.append(why)
                elif piece is not None:
                    tensor, dim, owner = piece
                    pieces.append((tensor, dim, idx, root, OWNED, owner))
                continue
            if id(node) in self._channel_slices:
                reasons.append(self._channel_slices[id(node)])
            if not isinstance(m, nn.Module) or m not in self._names:
                continue  # an operation (add, cat, reshape ...) with no tensors of its own
            mod_name = self._names[m]
            ad = layers.adapter_for(m)
            if ad is None:
                reasons.append(f"layer '{mod_name}' ({type(m).__name__}) has no adapter")
                continue
            why = ad.unsupported(m)
            if why:
                reasons.append(f"layer '{mod_name}': {why}")
            if side == "out" and self._is_unprunable(m):
                reasons.append(f"layer '{mod_name}' is unprunable")
            if mod_name in self._custom:
                reasons.append(
                    f"layer '{mod_name}' owns parameters that cannot be sliced "
                    f"({', '.join(self._custom[mod_name])})"
                )
            raw.append((mod_name, type(m).__name__, side, idx, root, ad.producer))
            got = ad.out_pieces(m, idx) if side == "out" else ad.in_pieces(m, idx)
            for p in got:
                k = p.rows.shape[1]
                full = f"{mod_name}.{p.tensor}" if mod_name else p.tensor
                canon = self._aliases.canonical.get(full, full)
                pieces.append((canon, p.dim, p.rows.ravel(), np.repeat(root, k), p.role, mod_name))
        # indices reached from two roots make those roots one unit
        by_key: dict[tuple[str, int], list[int]] = {}
        for i, (t, d, *_rest) in enumerate(pieces):
            by_key.setdefault((t, d), []).append(i)
        for ids in by_key.values():
            ind = np.concatenate([pieces[i][2] for i in ids])
            rts = np.concatenate([pieces[i][3] for i in ids])
            order = np.argsort(ind, kind="stable")
            ind, rts = ind[order], rts[order]
            dup = np.flatnonzero(ind[1:] == ind[:-1])
            if dup.size:
                uf.union_arrays(rts[dup], rts[dup + 1])
        labels, n_units = uf.labels()
        entries = []
        for (t, d), ids in by_key.items():
            ind = np.concatenate([pieces[i][2] for i in ids])
            rts = np.concatenate([pieces[i][3] for i in ids])
            ind, rts = dedupe(ind, rts)
            entries.append(Entry(t, d, ind, labels[rts], pieces[ids[0]][4], pieces[ids[0]][5]))
        mems = tuple(
            Member(mn, lt, side, idx, labels[root], prod) for mn, lt, side, idx, root, prod in raw
        )
        unit_params = self._unit_params(entries, n_units)
        return UnitGroup(
            id=gid,
            name=name,
            n_units=n_units,
            members=mems,
            unit_params=unit_params,
            protected="; ".join(dict.fromkeys(reasons)) or None,
            entries=tuple(entries),
        )

    def _unit_params(self, entries: Sequence[Entry], n_units: int) -> np.ndarray:
        out = np.zeros(n_units, dtype=np.float64)
        shapes = self._aliases.param_shapes
        for e in entries:
            shape = shapes.get(e.tensor)
            if shape is None:
                continue
            per_index = int(np.prod(shape)) // shape[e.dim]
            out += np.bincount(e.units, minlength=n_units) * per_index
        return out

    # ---------------------------------------------------------------- public queries
    @property
    def prunable_groups(self) -> list[UnitGroup]:
        """Groups that may lose units."""
        return [g for g in self.groups if g.protected is None]

    @property
    def total_params(self) -> int:
        """Parameters of the model, each shared tensor counted once."""
        return int(sum(int(np.prod(s)) for s in self._aliases.param_shapes.values()))

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every parameter tensor by canonical name (tied weights listed once)."""
        return self._aliases.param_shapes

    def plan_for(self, removal: Mapping[int, np.ndarray]) -> TrimPlan:
        """The step plan (relative to the model as traced) that removes the given units."""
        plan = TrimPlan.identity(self.model)
        removed: dict[tuple[str, int], list[np.ndarray]] = {}
        lost: dict[tuple[str, str], int] = {}
        for gid, units in removal.items():
            units = np.asarray(units, dtype=np.int64)
            if units.size == 0:
                continue
            g = self.groups[gid]
            for e in g.entries:
                hit = np.isin(e.units, units)
                if hit.any():
                    removed.setdefault((e.tensor, e.dim), []).append(e.indices[hit])
            for mem in g.members:
                n = int(np.isin(mem.units, units).sum())
                lost[(mem.module, mem.side)] = lost.get((mem.module, mem.side), 0) + n
        for (t, d), parts in removed.items():
            rem = np.unique(np.concatenate(parts))
            size = plan.shapes[t][d]
            keep = np.setdiff1d(np.arange(size, dtype=np.int64), rem, assume_unique=True)
            for alias in self._aliases.names.get(t, [t]):
                ks = plan.keep.setdefault(alias, [None] * len(plan.shapes[alias]))
                ks[d] = keep
        touched = sorted({mod for mod, _ in lost})
        for mod_name in touched:
            m = self.model.get_submodule(mod_name) if mod_name else self.model
            ad = layers.adapter_for(m)
            assert ad is not None
            out_n = in_n = None
            if (mod_name, "out") in lost:
                out_n = (ad.out_channels(m) or 0) - lost[(mod_name, "out")]
            if (mod_name, "in") in lost:
                in_n = (ad.in_channels(m) or 0) - lost[(mod_name, "in")]
            for key, value in ad.attributes(m, out_n, in_n).items():
                child, _, attr = key.rpartition(".")
                owner = ".".join(p for p in (mod_name, child) if p)
                plan.attributes.setdefault(owner, {})[attr] = value
        for proj, spec in self._heads.items():
            rows = plan.keep.get(f"{proj}.weight")
            if rows is not None and rows[0] is not None:
                attrs = attention.head_attributes(spec, int(rows[0].size))
                plan.attributes.setdefault(spec.module, {}).update(attrs)
        return plan

    def describe(self) -> list[dict[str, Any]]:
        """One row per group: name, units, params per unit, member layers, protection."""
        return [
            {
                "group": g.name,
                "units": g.n_units,
                "params_per_unit": round(g.unit_cost, 2),
                "layers": ", ".join(g.layers),
                "protected": g.protected or "",
            }
            for g in self.groups
        ]
