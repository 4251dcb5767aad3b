"""Criteria that stream validation data through the model: ``activation`` (paper eq. 4),
``gradient`` and ``taylor``; memory does not grow with the amount of data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lotterytrim.calls import eval_mode, run_model
from lotterytrim.criteria.base import LayerCriterion
from lotterytrim.criteria.batches import batch_errors, model_device, no_batches, to_device
from lotterytrim.criteria.weights import fan_in_sum
from lotterytrim.engine import layers
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.errors import CriterionError

__all__ = [
    "Streaming",
    "Activation",
    "Gradient",
    "Taylor",
    "split_batch",
    "default_loss",
    "producer_modules",
    "first_tensor",
]


def split_batch(batch: Any) -> tuple[Any, Any]:
    """A batch is ``(inputs, targets)`` or inputs alone."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def producer_modules(graph: TrimGraph) -> dict[str, nn.Module]:
    out: dict[str, nn.Module] = {}
    for g in graph.prunable_groups:
        for mem in g.producers():
            out[mem.module] = graph.model.get_submodule(mem.module)
    return out


def first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class Streaming(LayerCriterion):
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

    @contextmanager
    def _outputs(
        self, graph: TrimGraph, record: Callable[[str, torch.Tensor, int], None]
    ) -> Iterator[None]:
        """Within the block, ``record(name, output, channel_dim)`` sees each producer's output.

        One forward hook per producing layer of the prunable groups, removed on exit.
        """

        def hook_for(name: str, module: nn.Module) -> Callable[..., None]:
            ad = layers.adapter_for(module)
            assert ad is not None

            def hook(mod: nn.Module, args: Any, output: Any) -> None:
                y = first_tensor(output)
                record(name, y, ad.channel_dim(mod, y))

            return hook

        producers = producer_modules(graph)
        handles = [m.register_forward_hook(hook_for(n, m)) for n, m in producers.items()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


class Activation(Streaming):
    """Paper eq. 4: sum of |output| of each unit over validation examples and positions.

    Streams batches through forward hooks with one accumulator per channel, so memory does not
    grow with the amount of data. The model runs in eval mode without gradients.
    """

    name = "activation"

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        assert data is not None
        acc: dict[str, torch.Tensor] = {}

        def record(name: str, y: torch.Tensor, dim: int) -> None:
            dims = [d for d in range(y.dim()) if d != dim]
            s = y.detach().abs().double().sum(dim=dims) if dims else y.detach().abs().double()
            acc[name] = acc[name] + s if name in acc else s

        with self._outputs(graph, record), eval_mode(graph.model), torch.no_grad():
            for i, batch in self._batches(data, graph):
                self._run(graph, i, split_batch(batch)[0])
        self._scores = acc


def default_loss(output: Any, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer targets, BCE-with-logits for targets in [0, 1], else MSE."""
    out = first_tensor(output)
    if not target.is_floating_point():
        return F.cross_entropy(out, target)
    if target.shape == out.shape and bool(((target >= 0) & (target <= 1)).all()):
        return F.binary_cross_entropy_with_logits(out, target)
    return F.mse_loss(out, target)


class Gradient(Streaming):
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
        producers = producer_modules(graph)
        params = {id(p): p for m in producers.values() for p in m.parameters() if p.requires_grad}
        plist = list(params.values())
        acc: dict[str, torch.Tensor] = {}
        with eval_mode(graph.model):
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
                    s = fan_in_sum(m, self._term, grads=gmap)
                    if s is not None:
                        acc[name] = acc[name] + s if name in acc else s
        self._scores = acc


class Taylor(Gradient):
    """First-order Taylor estimate: sum of |w * dL/dw| over each unit's incoming weights."""

    name = "taylor"

    def _term(self, w: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        assert g is not None
        return (w * g).abs()
