"""Early-bird tickets: watch, during training, when the units a trim would keep stop changing.

You et al. (ICLR 2020, "Drawing early-bird tickets") find that the channels a pruning to the
target ratio would keep settle early in training: once the normalised Hamming distance between
the keep-masks of consecutive epochs stays small, the ticket is drawn and training the full
model further buys little. :class:`EarlyBird` computes that keep-set with the trimmer's own
criterion, scope, normalisation and safeguards, without removing anything.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.selection.rank import select_units
from lotterytrim.trimming.target import check_keep, removal_for, score_current, trace_current
from lotterytrim.trimming.trimmer import LotteryTrimmer

__all__ = ["EarlyBird", "keep_masks"]


def keep_masks(
    trimmer: LotteryTrimmer, keep: float, graph: TrimGraph, data: Iterable[Any] | None = None
) -> dict[str, np.ndarray]:
    """Per prunable group (by name), a bool per unit: whether trimming to ``keep`` of the
    original parameters keeps it. A dry run: nothing is removed.

    The selection is the one a single step straight to ``keep`` would make: the trimmer's
    criterion, scope, normalisation, cost weighting, ``min_units`` and ``keep_floor``, but no
    ``step_cap`` (``trim_to`` would need several capped sub-steps, rescored in between, to get
    there; their outcome is not known without doing them, the one-shot choice is its estimate).
    Groups whose removal would break the model are found only by a real trim, so they count
    as prunable here.
    """
    _, _, amount = removal_for(trimmer, keep)
    masks = {g.name: np.ones(g.n_units, dtype=bool) for g in graph.prunable_groups}
    if amount <= 0.0:
        return masks
    draws = getattr(trimmer.criterion, "draws", None)
    try:
        scores = score_current(trimmer, graph, data)
    finally:
        if draws is not None:  # the random criterion: watching must not shift the lottery's draws
            trimmer.criterion.draws = draws  # type: ignore[attr-defined]
    opts = trimmer.options
    uncapped = dataclasses.replace(opts.safeguards, step_cap=1.0)
    sel = select_units(
        graph,
        scores,
        min(amount, 1.0 - 1e-12),
        dataclasses.replace(opts, safeguards=uncapped),
        prior=trimmer.plan,
    )
    for gid, units in sel.removal.items():
        masks[graph.groups[gid].name][units] = False
    return masks


class EarlyBird:
    """Watch the keep-set of a trim to ``keep`` settle during training (early-bird tickets).

    Call :meth:`update` once per epoch (or every N steps). Update ``i`` (counting from 0)
    computes the keep-set and, from ``i = 1`` on, its normalised Hamming distance to the
    keep-set of update ``i - 1``: the share of units, over all prunable groups, whose keep or
    remove decision differs (:attr:`distances`; per group in :attr:`layer_distances`). The
    ticket is drawn (:attr:`settled`) at the first update whose last ``window`` distances are
    all below ``threshold``; :attr:`settled_at` is that update's index, ``window`` at the
    earliest (``window`` distances need ``window + 1`` keep-sets). It stays drawn: later
    updates go on measuring (the curve after the draw) and never move :attr:`settled_at`.

    ``threshold=0.1`` and ``window=5`` are the paper's (You et al., ICLR 2020: epsilon 0.1 over a
    queue of 5 masks); they were not re-measured here. Updates are cheap: one scoring (one pass
    over ``data`` for data-driven criteria) and one selection, on a graph traced once per
    architecture; parameters, buffers, gradients and train flags are left as they were.
    If the model's architecture changes between updates (the trimmer stepped, or loaded a
    state), keep-sets are no longer comparable and the monitor starts over (:meth:`reset`).

    ``min_drop`` guards against a training that starts on a plateau: while nothing moves, the
    keep-set holds still without having settled. With ``min_drop > 0`` every update takes the
    validation ``loss``, the guard opens (:attr:`opened_at`) at the first update whose loss is
    at least ``min_drop`` (a share) below the first update's, and a ticket is drawn only from
    distances between keep-sets taken since then. Distances are measured all along.
    """

    def __init__(
        self,
        trimmer: LotteryTrimmer,
        keep: float = 0.25,
        threshold: float = 0.1,
        window: int = 5,
        min_drop: float = 0.0,
    ) -> None:
        if not isinstance(trimmer, LotteryTrimmer):
            raise TypeError(f"trimmer must be a LotteryTrimmer, got {type(trimmer).__name__}")
        self.keep = check_keep(keep)
        removal_for(trimmer, self.keep)  # a keep above what the model holds fails here
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, numbers.Real)
            or not 0.0 < float(threshold) <= 1.0
        ):
            raise ValueError(f"threshold must be a share in (0, 1], got {threshold!r}")
        if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        if (
            isinstance(min_drop, bool)
            or not isinstance(min_drop, numbers.Real)
            or not 0.0 <= float(min_drop) < 1.0
        ):
            raise ValueError(f"min_drop must be a share in [0, 1), got {min_drop!r}")
        self.min_drop: float = float(min_drop)
        self.trimmer: LotteryTrimmer = trimmer
        self.threshold: float = float(threshold)
        self.window: int = int(window)
        self._graph: TrimGraph | None = None
        self._plan: TrimPlan | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every keep-set and distance: the next update is update 0."""
        self.updates = 0
        self.distances: list[float] = []
        self.layer_distances: dict[str, list[float]] = {}
        self.settled_at: int | None = None
        #: the loss passed to each update (None where none was passed)
        self.losses: list[float | None] = []
        #: the first update from which keep-sets count towards a draw (0 without ``min_drop``)
        self.opened_at: int | None = None if self.min_drop else 0
        self._last: dict[str, np.ndarray] | None = None

    @property
    def settled(self) -> bool:
        """Whether the ticket is drawn: ``window`` distances in a row below ``threshold``."""
        return self.settled_at is not None

    @property
    def keep_set(self) -> dict[str, np.ndarray]:
        """Indices of the units the last update would keep, per prunable group (current
        coordinates of the model); empty before the first update."""
        return {name: np.flatnonzero(m) for name, m in (self._last or {}).items()}

    def update(self, data: Iterable[Any] | None = None, loss: float | None = None) -> bool:
        """Compute the keep-set now and its distance to the previous one; return
        :attr:`settled`. Data-driven criteria need ``data`` (validation batches); a monitor
        with ``min_drop`` needs the validation ``loss`` of this epoch."""
        value = _check_loss(loss, self.min_drop)
        trimmer = self.trimmer
        trimmer.check_model()
        moved = self._plan is not None and self._plan is not trimmer.plan
        if moved and self._plan != trimmer.plan:
            self.reset()  # another architecture: keep-sets are not comparable
            self._graph = None
        if self._graph is None:
            self._graph = trace_current(trimmer)
        self._plan = trimmer.plan
        masks = keep_masks(trimmer, self.keep, self._graph, data)
        if self._last is not None:
            self._compare(self._last, masks)
        self._last = masks
        self.losses.append(value)
        self.updates += 1
        now = self.updates - 1
        if self.opened_at is None and value is not None:
            first = self.losses[0]
            if first is not None and value <= first - self.min_drop * abs(first):
                self.opened_at = now
        recent = self.distances[-self.window :]
        opened = self.opened_at is not None and now - self.window >= self.opened_at
        if self.settled_at is None and opened and len(recent) == self.window:
            if max(recent) < self.threshold:
                self.settled_at = now
        return self.settled

    def _compare(self, old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> None:
        """Append the overall and per-group shares of units whose decision changed."""
        changed = total = 0
        for name, mask in new.items():
            flips = int(np.count_nonzero(mask != old[name]))
            changed += flips
            total += mask.size
            share = flips / mask.size if mask.size else 0.0
            self.layer_distances.setdefault(name, []).append(share)
        self.distances.append(changed / total if total else 0.0)

    def __repr__(self) -> str:
        state = f"settled at update {self.settled_at}" if self.settled else "not settled"
        guard = f", min_drop={self.min_drop:g}" if self.min_drop else ""
        return (
            f"EarlyBird(keep={self.keep:g}, threshold={self.threshold:g}, "
            f"window={self.window}{guard}, updates={self.updates}, {state})"
        )


def _check_loss(loss: Any, min_drop: float) -> float | None:
    """``loss`` as a float (None when not given); a guarded monitor needs a finite one."""
    if loss is None:
        if min_drop:
            raise ValueError(
                f"this EarlyBird has min_drop={min_drop:g}: pass the epoch's validation loss, "
                "update(data, loss=...)"
            )
        return None
    if hasattr(loss, "item") and getattr(loss, "numel", lambda: 1)() == 1:
        loss = loss.item()
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real) or not math.isfinite(loss):
        raise ValueError(f"update(loss=...) must be a finite number, got {loss!r}")
    return float(loss)
