"""Criteria: one score per unit of every group; the lowest-scored units are removed first.

Subclass :class:`Criterion` (full control over groups) or :class:`LayerCriterion` (score the
output channels of one layer at a time; lotterytrim maps channels to units and reduces the
scores of coupled layers). Built in: ``magnitude`` (paper eq. 3), ``activation`` (eq. 4),
``batchnorm`` (eq. 5), ``gradient``, ``taylor``, ``information`` and ``random``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _layers
from ._batches import batch_errors, model_device, no_batches, to_device
from .errors import CriterionError
from .graph import Member, TrimGraph, UnitGroup, _Modes, run_model

__all__ = [
    "Criterion",
    "LayerCriterion",
    "Magnitude",
    "Activation",
    "BatchNorm",
    "Gradient",
    "Taylor",
    "Information",
    "Random",
    "get_criterion",
    "CRITERIA",
]

REDUCTIONS = ("mean", "sum", "max")


class Criterion:
    """Base class: map a traced model (and optional data) to one score per unit of each group.

    Override :meth:`score`. Groups left out of the result are not trimmed this step.
    """

    name = "custom"
    #: whether :meth:`score` needs ``data`` (validation batches)
    needs_data = False

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        """Scores per group id: a float tensor with one entry per unit (higher = keep)."""
        raise NotImplementedError

    def _reduce(self, parts: list[np.ndarray]) -> np.ndarray:
        stack = np.stack(parts)
        if self.reduction == "sum":
            return stack.sum(0)
        if self.reduction == "max":
            return stack.max(0)
        return stack.mean(0)

    def _check_data(self, data: Iterable[Any] | None) -> Iterable[Any]:
        if data is None:
            raise CriterionError(
                f"criterion '{self.name}' needs data: pass validation batches, e.g. "
                "trimmer.step(data=val_loader)"
            )
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _units_from_channels(member: Member, channel_scores: np.ndarray, n_units: int) -> np.ndarray:
    """Sum a layer's per-channel scores into per-unit scores."""
    return np.bincount(
        member.units, weights=channel_scores[member.channels], minlength=n_units
    ).astype(np.float64)


class LayerCriterion(Criterion):
    """Score output channels layer by layer; coupled layers' unit scores are reduced.

    Override :meth:`channel_scores`; :attr:`scores_producers` chooses whether it is asked about
    producing layers (conv, linear, recurrent) or about norm layers.
    """

    scores_producers = True

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        """One score per output channel of ``module`` (None: this layer has no opinion)."""
        raise NotImplementedError

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        """Hook for criteria that must look at data before :meth:`channel_scores`."""

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        if self.needs_data:
            data = self._check_data(data)
        self.prepare(graph, data)
        out: dict[int, torch.Tensor] = {}
        missing: list[UnitGroup] = []
        for g in graph.prunable_groups:
            parts = []
            for mem in g.members:
                if mem.side != "out" or mem.producer != self.scores_producers:
                    continue
                module = graph.model.get_submodule(mem.module)
                s = self.channel_scores(mem.module, module)
                if s is None:
                    continue
                s_np = torch.as_tensor(s).detach().double().cpu().numpy().ravel()
                parts.append(_units_from_channels(mem, s_np, g.n_units))
            if parts:
                out[g.id] = torch.from_numpy(self._reduce(parts))
            else:
                missing.append(g)
        self._missing(missing)
        return out

    def _missing(self, groups: list[UnitGroup]) -> None:
        if groups:
            names = "; ".join(f"group '{g.name}' (layers {', '.join(g.layers)})" for g in groups)
            raise CriterionError(f"criterion '{self.name}' cannot score {names}")


class Magnitude(LayerCriterion):
    """Paper eq. 3: L1 norm of each unit's incoming weights (its fan-in)."""

    name = "magnitude"

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        return _fan_in_sum(module, lambda w, g: w.abs(), grads=None)


class BatchNorm(LayerCriterion):
    """Paper eq. 5: |gamma| of the norm layer that follows each unit."""

    name = "batchnorm"
    scores_producers = False

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or isinstance(module, nn.PReLU):
            return None
        return w.detach().abs().reshape(-1)

    def _missing(self, groups: list[UnitGroup]) -> None:
        if groups:
            names = "; ".join(f"'{g.name}' (layers {', '.join(g.layers)})" for g in groups)
            raise CriterionError(
                "criterion 'batchnorm' needs a norm layer with a scale after every trimmed "
                f"unit; these groups have none: {names}. Use another criterion or mark them "
                "unprunable."
            )


# ---------------------------------------------------------------------------- helpers
def _logical_weight(module: nn.Module, name: str) -> torch.Tensor | None:
    """The weight the layer computes with (resolving parametrizations and weight norm)."""
    parts = _layers._underlying(module, name)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    t = getattr(module, name, None)
    if isinstance(t, torch.Tensor) and all(t.shape[d] >= 1 for d in range(t.dim())):
        shape = _layers._logical_shape(module, name)
        if tuple(t.shape) == tuple(shape):
            return t
    g, v = parts[0][1], parts[1][1]
    dims = [d for d in range(v.dim()) if g.shape[d] == 1]
    return v * (g / v.norm(dim=dims, keepdim=True))


def _fan_in_sum(
    module: nn.Module,
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    grads: dict[int, torch.Tensor] | None,
) -> torch.Tensor | None:
    """Sum ``fn(weight, grad)`` over each output channel's incoming weights."""
    ad = _layers.adapter_for(module)
    if ad is None or not ad.producer:
        return None
    n = ad.out_channels(module)
    if not n:
        return None
    total = torch.zeros(n, dtype=torch.float64)
    seen: set[tuple[str, int]] = set()
    for p in ad.out_pieces(module, np.arange(n)):
        if p.role != _layers.FAN_IN:
            continue
        if grads is None:
            logical = p.tensor.split(".")[1] if p.tensor.startswith("parametrizations.") else None
            if logical is None and p.tensor.endswith(("_g", "_v")):
                logical = p.tensor[:-2]
            key = (logical or p.tensor, p.dim)
            if key in seen:
                continue
            seen.add(key)
            w = _logical_weight(module, logical) if logical else _get(module, p.tensor)
            g = None
        else:
            w = _get(module, p.tensor)
            g = grads.get(id(w)) if w is not None else None
            if g is None:
                continue
        if w is None:
            continue
        with torch.no_grad():
            vals = fn(w.detach(), g).double()
            dims = [d for d in range(vals.dim()) if d != p.dim]
            per_index = (vals.sum(dim=dims) if dims else vals).cpu()
        rows = torch.as_tensor(p.rows, dtype=torch.long)
        total += per_index[rows].sum(dim=1)
    return total


def _get(module: nn.Module, dotted: str) -> torch.Tensor | None:
    obj: Any = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, torch.Tensor) else None


def split_batch(batch: Any) -> tuple[Any, Any]:
    """A batch is ``(inputs, targets)`` or inputs alone."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def _producer_modules(graph: TrimGraph) -> dict[str, nn.Module]:
    out: dict[str, nn.Module] = {}
    for g in graph.prunable_groups:
        for mem in g.producers():
            out[mem.module] = graph.model.get_submodule(mem.module)
    return out


def _first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class _Streaming(LayerCriterion):
    """Shared machinery for criteria that stream validation data through forward hooks."""

    needs_data = True

    def __init__(self, reduction: str = "mean", max_batches: int | None = None) -> None:
        super().__init__(reduction)
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
        self.max_batches = max_batches
        self._scores: dict[str, torch.Tensor] = {}

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        return self._scores.get(name)

    def _batches(self, data: Iterable[Any], graph: TrimGraph) -> Iterator[tuple[int, Any]]:
        """``(index, batch)`` pairs, each batch on the model's device; empty data is refused."""
        device = model_device(graph.model)
        n = 0
        for i, batch in enumerate(data):
            if self.max_batches is not None and i >= self.max_batches:
                break
            n += 1
            yield i, to_device(batch, device)
        if n == 0:
            raise no_batches(self.name)

    def _run(self, graph: TrimGraph, index: int, inputs: Any) -> Any:
        """Run the model on one batch's inputs; a batch that does not fit is named."""
        with batch_errors(self.name, index, inputs, graph.example_inputs):
            return run_model(graph.model, inputs)


class Activation(_Streaming):
    """Paper eq. 4: sum of |output| of each unit over validation examples and positions.

    Streams batches through forward hooks with one accumulator per channel, so memory does not
    grow with the amount of data. The model runs in eval mode without gradients.
    """

    name = "activation"

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        assert data is not None
        producers = _producer_modules(graph)
        acc: dict[str, torch.Tensor] = {}

        def hook_for(name: str, module: nn.Module) -> Callable[..., None]:
            ad = _layers.adapter_for(module)
            assert ad is not None

            def hook(mod: nn.Module, args: Any, output: Any) -> None:
                y = _first_tensor(output)
                dim = ad.channel_dim(mod, y)
                dims = [d for d in range(y.dim()) if d != dim]
                s = y.detach().abs().double().sum(dim=dims) if dims else y.detach().abs().double()
                acc[name] = acc[name] + s if name in acc else s

            return hook

        handles = [m.register_forward_hook(hook_for(n, m)) for n, m in producers.items()]
        modes = _Modes(graph.model)
        graph.model.eval()
        try:
            with torch.no_grad():
                for i, batch in self._batches(data, graph):
                    self._run(graph, i, split_batch(batch)[0])
        finally:
            for h in handles:
                h.remove()
            modes.restore()
        self._scores = acc


def default_loss(output: Any, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer targets, BCE-with-logits for targets in [0, 1], else MSE."""
    out = _first_tensor(output)
    if not target.is_floating_point():
        return F.cross_entropy(out, target)
    if target.shape == out.shape and bool(((target >= 0) & (target <= 1)).all()):
        return F.binary_cross_entropy_with_logits(out, target)
    return F.mse_loss(out, target)


class Gradient(_Streaming):
    """Sum over validation batches of |dL/dw| over each unit's incoming weights.

    Gradients come from ``torch.autograd.grad``, so the model's ``.grad`` fields are untouched.
    The model runs in eval mode (no dropout, running statistics frozen).
    """

    name = "gradient"

    def __init__(
        self,
        reduction: str = "mean",
        max_batches: int | None = None,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(reduction, max_batches)
        self.loss_fn = loss_fn or default_loss

    def _term(self, w: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        assert g is not None
        return g.abs()

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        assert data is not None
        producers = _producer_modules(graph)
        params = {id(p): p for m in producers.values() for p in m.parameters() if p.requires_grad}
        plist = list(params.values())
        acc: dict[str, torch.Tensor] = {}
        modes = _Modes(graph.model)
        graph.model.eval()
        try:
            for i, batch in self._batches(data, graph):
                inputs, target = split_batch(batch)
                if target is None:
                    raise CriterionError(
                        f"criterion '{self.name}' needs (inputs, targets) batches to compute a loss"
                    )
                with torch.enable_grad():
                    out = self._run(graph, i, inputs)
                    with batch_errors(self.name, i, batch, graph.example_inputs):
                        loss = self.loss_fn(out, target)
                    grads = torch.autograd.grad(loss, plist, allow_unused=True)
                gmap = {id(p): g for p, g in zip(plist, grads, strict=True) if g is not None}
                for name, m in producers.items():
                    s = _fan_in_sum(m, self._term, grads=gmap)
                    if s is not None:
                        acc[name] = acc[name] + s if name in acc else s
        finally:
            modes.restore()
        self._scores = acc


class Taylor(Gradient):
    """First-order Taylor estimate: sum of |w * dL/dw| over each unit's incoming weights."""

    name = "taylor"

    def _term(self, w: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        assert g is not None
        return (w * g).abs()


def default_target(target: torch.Tensor) -> torch.Tensor:
    """One class label per example: integer labels as they are, else argmax over features."""
    if not target.is_floating_point() and target.dim() == 1:
        return target.long()
    flat = target.reshape(target.shape[0], -1)
    return flat.argmax(dim=1)


class Information(_Streaming):
    """Mutual information between each unit's activation and the target class.

    Estimator: each example's activation is summarised by its mean over positions, binned into
    ``bins`` equal-width bins between the unit's observed min and max (first pass), and the
    plug-in estimate of I(A; Y) from the joint histogram (second pass) is corrected for bias
    with the Miller-Madow term. Memory is one histogram of units x bins x classes, whatever the
    amount of data. Targets become one class per example through ``target_fn``.
    """

    name = "information"

    def __init__(
        self,
        reduction: str = "mean",
        max_batches: int | None = None,
        bins: int = 16,
        target_fn: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(reduction, max_batches)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = bins
        self.target_fn = target_fn or default_target

    def _summaries(
        self, graph: TrimGraph, data: Iterable[Any]
    ) -> Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        producers = _producer_modules(graph)
        cur: dict[str, torch.Tensor] = {}

        def hook_for(name: str, module: nn.Module) -> Callable[..., None]:
            ad = _layers.adapter_for(module)
            assert ad is not None

            def hook(mod: nn.Module, args: Any, output: Any) -> None:
                y = _first_tensor(output).detach().double()
                dim = ad.channel_dim(mod, y)
                y = y.movedim(dim, -1).reshape(y.shape[0], -1, y.shape[dim])
                cur[name] = y.mean(dim=1)

            return hook

        handles = [m.register_forward_hook(hook_for(n, m)) for n, m in producers.items()]
        modes = _Modes(graph.model)
        graph.model.eval()
        try:
            with torch.no_grad():
                for i, batch in self._batches(data, graph):
                    inputs, target = split_batch(batch)
                    if target is None:
                        raise CriterionError(
                            "criterion 'information' needs (inputs, targets) batches"
                        )
                    cur.clear()
                    self._run(graph, i, inputs)
                    acts = {k: v.cpu() for k, v in cur.items()}
                    yield acts, self.target_fn(target).long().reshape(-1).cpu()
        finally:
            for h in handles:
                h.remove()
            modes.restore()

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        assert data is not None
        if iter(data) is data:  # a generator or iterator would be empty on the second pass
            raise CriterionError(
                "criterion 'information' reads the data twice (value ranges, then counts): "
                f"pass a list or a DataLoader, not a one-shot {type(data).__name__}"
            )
        lo: dict[str, torch.Tensor] = {}
        hi: dict[str, torch.Tensor] = {}
        n_classes = 0
        for acts, y in self._summaries(graph, data):
            n_classes = max(n_classes, int(y.max()) + 1)
            for k, a in acts.items():
                lo[k] = torch.minimum(lo[k], a.min(0).values) if k in lo else a.min(0).values
                hi[k] = torch.maximum(hi[k], a.max(0).values) if k in hi else a.max(0).values
        counts: dict[str, torch.Tensor] = {}
        for acts, y in self._summaries(graph, data):
            for k, a in acts.items():
                width = (hi[k] - lo[k]).clamp_min(1e-12)
                b = ((a - lo[k]) / width * self.bins).long().clamp(0, self.bins - 1)
                c = counts.setdefault(k, torch.zeros(a.shape[1], self.bins * n_classes))
                flat = b * n_classes + y[:, None]
                c.scatter_add_(1, flat.T.contiguous(), torch.ones_like(flat.T, dtype=c.dtype))
        self._scores = {
            k: _mutual_information(c.reshape(c.shape[0], self.bins, n_classes))
            for k, c in counts.items()
        }


def _entropy(p_counts: torch.Tensor, n: torch.Tensor, dim: int) -> torch.Tensor:
    """Miller-Madow corrected entropy (nats) of histograms along ``dim``."""
    p = p_counts / n
    h = -(torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))).sum(dim)
    nonzero = (p_counts > 0).sum(dim).double()
    return h + (nonzero - 1) / (2 * n.squeeze(dim))


def _mutual_information(joint: torch.Tensor) -> torch.Tensor:
    """I(A; Y) = H(A) + H(Y) - H(A, Y) per unit, from a (units, bins, classes) histogram."""
    joint = joint.double()
    n = joint.sum(dim=(1, 2), keepdim=True).clamp_min(1)
    ha = _entropy(joint.sum(2), n.squeeze(2), 1)
    hy = _entropy(joint.sum(1), n.squeeze(2), 1)
    hay = _entropy(joint.reshape(joint.shape[0], -1), n.squeeze(2), 1)
    return (ha + hy - hay).clamp_min(0)


class Random(Criterion):
    """Seeded random scores: the control baseline."""

    name = "random"

    def __init__(self, seed: int = 0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.seed = seed
        self._draws = 0

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._draws)
        self._draws += 1
        return {
            g.id: torch.rand(g.n_units, generator=gen, dtype=torch.float64)
            for g in graph.prunable_groups
        }


CRITERIA: dict[str, type[Criterion]] = {
    "magnitude": Magnitude,
    "activation": Activation,
    "batchnorm": BatchNorm,
    "gradient": Gradient,
    "taylor": Taylor,
    "information": Information,
    "random": Random,
}


def get_criterion(criterion: str | Criterion, **kwargs: Any) -> Criterion:
    """A criterion instance from a name or an instance (returned as is)."""
    if isinstance(criterion, Criterion):
        return criterion
    if isinstance(criterion, str) and criterion in CRITERIA:
        return CRITERIA[criterion](**kwargs)
    raise ValueError(
        f"unknown criterion {criterion!r}: use one of {sorted(CRITERIA)} or a "
        "lotterytrim.criteria.Criterion instance"
    )
