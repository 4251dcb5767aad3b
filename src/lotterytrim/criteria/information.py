"""The ``information`` criterion: mutual information between a unit and the target class."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from lotterytrim.calls import eval_mode
from lotterytrim.criteria.streaming import Streaming, split_batch
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.errors import CriterionError

__all__ = ["Information", "default_target"]


def default_target(target: torch.Tensor) -> torch.Tensor:
    """One class label per example: integer labels as they are, else argmax over features."""
    if not target.is_floating_point() and target.dim() == 1:
        return target.long()
    flat = target.reshape(target.shape[0], -1)
    return flat.argmax(dim=1)


class Information(Streaming):
    """Mutual information between each unit's activation and the target class.

    Estimator: each example's activation is summarised by its mean over positions, binned into
    ``bins`` equal-width bins between the unit's observed min and max (first pass), and the
    plug-in estimate of I(A; Y) from the joint histogram (second pass) is corrected for bias
    with the Miller-Madow term. Memory is one histogram of units x bins x classes, whatever the
    amount of data. Targets become one class per example through ``target_fn``.

    With ``positions=True`` every position is a sample of its own: targets are integer classes
    of shape (batch, positions), e.g. a class per frame of a sequence model, and each layer's
    activation at a position is paired with that position's class. Every ranked layer must then
    have as many positions as the target; one that has not is named.
    """

    name = "information"

    def __init__(
        self,
        reduction: str = "mean",
        max_batches: int | None = None,
        bins: int = 16,
        target_fn: Callable[[Any], torch.Tensor] | None = None,
        positions: bool = False,
    ) -> None:
        super().__init__(reduction, max_batches)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = bins
        self.positions = positions
        self.target_fn = target_fn or (_position_target if positions else default_target)

    def _summaries(
        self, graph: TrimGraph, data: Iterable[Any]
    ) -> Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        cur: dict[str, torch.Tensor] = {}

        def record(name: str, output: torch.Tensor, dim: int) -> None:
            y = output.detach().double()
            y = y.movedim(dim, -1).reshape(y.shape[0], -1, y.shape[dim])
            cur[name] = y if self.positions else y.mean(dim=1)

        with self._outputs(graph, record), eval_mode(graph.model), torch.no_grad():
            for i, batch in self._batches(data, graph):
                inputs, target = split_batch(batch)
                if target is None:
                    raise CriterionError("criterion 'information' needs (inputs, targets) batches")
                cur.clear()
                self._run(graph, i, inputs)
                y = self.target_fn(target).long().cpu()
                if not self.positions:
                    yield {k: v.cpu() for k, v in cur.items()}, y.reshape(-1)
                    continue
                acts = {}
                for k, v in cur.items():
                    if tuple(v.shape[:2]) != tuple(y.shape):
                        raise CriterionError(
                            f"criterion 'information' with positions=True: layer '{k}' has "
                            f"{v.shape[1]} positions per example but the targets have shape "
                            f"{tuple(y.shape)}; give one class per example and position"
                        )
                    acts[k] = v.reshape(-1, v.shape[-1]).cpu()
                yield acts, y.reshape(-1)

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
                if not torch.isfinite(a).all():
                    raise CriterionError(
                        f"criterion 'information': layer '{k}' gave non-finite activations "
                        "(NaN or inf) on the data; its units cannot be ranked"
                    )
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


def _position_target(target: torch.Tensor) -> torch.Tensor:
    """Classes per example and position, (batch, positions): integer targets only."""
    if target.is_floating_point() or target.dim() != 2:
        raise CriterionError(
            "criterion 'information' with positions=True wants integer targets of shape "
            f"(batch, positions), got {target.dtype} of shape {tuple(target.shape)}"
        )
    return target


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
