"""What the user's ``train`` function knows about the level it trains, and its hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lotterytrim.errors import LotteryError
from lotterytrim.runner.results import RESERVED
from lotterytrim.trimming.methods import split_method

if TYPE_CHECKING:
    from lotterytrim.trimming.trimmer import LotteryTrimmer

__all__ = ["LevelContext", "as_number", "evaluation_row"]


class LevelContext:
    """What the user's ``train`` function knows about the level it trains, and its hooks."""

    def __init__(
        self,
        *,
        task: str,
        method: str,
        criterion: str,
        replicate: int,
        level: int,
        seed: int,
        trimmer: LotteryTrimmer | None,
        rewind_fraction: float,
        capture: Callable[[], object] | None,
        progress: bool,
        device: str | None = None,
        reference: Callable[[], nn.Module] | None = None,
        on_epoch: Callable[[int, float | None], None] | None = None,
    ) -> None:
        self.task, self.method, self.criterion = task, method, criterion
        self.replicate, self.level, self.seed = replicate, level, seed
        self.trimmer = trimmer
        self.device = device  # where run(devices=...) placed this cell; None when not placed
        #: the cell's method asks for distillation from the reference (a name ending in +kd)
        self.distill = split_method(method)[1]
        self.records: dict[str, float] = {}
        self._rewind_fraction = rewind_fraction
        self._capture = capture
        self._progress = progress
        self._reference = reference
        self._teacher: nn.Module | None = None
        self._on_epoch = on_epoch
        self._loss: float | None = None  # the loss reported for the epoch running now
        self.captured = False
        #: epochs ``ctx.epochs`` has handed out so far, over all its loops (a row's train_epochs)
        self.epochs_run = 0

    def teacher(self, device: str | torch.device | None = None) -> nn.Module:
        """The replicate's trained reference (level 0), frozen and in eval mode, on ``device``
        (default: the cell's device, else the CPU); loaded once per level, whatever the method.

        Use its outputs under ``torch.no_grad()`` as the targets of
        :func:`lotterytrim.distillation_loss`.
        """
        if self._reference is None:
            raise LotteryError(
                f"level {self.level} of {self.method!r} has no teacher: the reference (level 0) "
                "is the teacher of the levels after it"
            )
        if self._teacher is None:
            model = self._reference()
            model.eval()
            model.requires_grad_(False)
            self._teacher = model
        where = device if device is not None else (self.device or "cpu")
        return self._teacher.to(where)

    def capture_rewind(self) -> None:
        """Capture the rewind point W_k now (level 0 only; later levels reuse it)."""
        if self._capture is None:
            raise LotteryError(
                f"capture_rewind() is for the reference training (level 0); this is level "
                f"{self.level}, whose rewind point was captured at level 0"
            )
        self._capture()
        self.captured = True

    def epochs(self, n: int) -> Iterator[int]:
        """Epoch indices 0..n-1 with a progress bar; at level 0 captures W_k on schedule.

        The capture happens once ``round(n * rewind_fraction)`` epochs have completed, unless
        :meth:`capture_rewind` was called already. Each epoch handed out counts in
        :attr:`epochs_run`; the runner's end-of-epoch hook (early-bird monitors of the
        reference) runs when the loop asks for the next epoch or ends.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ctx.epochs(n) needs a positive integer, got {n!r}")
        at = round(n * self._rewind_fraction) if self._capture is not None else None
        desc = f"{self.method}/{self.criterion} r{self.replicate} L{self.level}"
        bar = tqdm(range(n), desc=desc, leave=False, disable=not self._progress, unit="epoch")
        for epoch in bar:
            if at == epoch and not self.captured:
                self.capture_rewind()
            self.epochs_run += 1
            self._loss = None
            yield epoch
            if self._on_epoch is not None:
                self._on_epoch(self.epochs_run, self._loss)
        if at == n and not self.captured:
            self.capture_rewind()

    def report_loss(self, loss: float) -> None:
        """Tell the runner this epoch's validation loss (call it inside a ``ctx.epochs`` loop).

        The reference's early-bird monitors read it: with an ``earlybird`` ``min_drop`` they
        draw no ticket before the loss has fallen by that share (a plateau holds the keep-set
        still before anything is learnt). Elsewhere it is kept for nothing and costs nothing.
        """
        self._loss = as_number(loss, "ctx.report_loss(loss)")

    @property
    def reported_loss(self) -> float | None:
        """The loss :meth:`report_loss` gave for the epoch running now, or last (None: none)."""
        return self._loss

    def record(self, **values: float) -> None:
        """Add extra numeric columns to this level's row (e.g. ``best_epoch=7``)."""
        for key, value in values.items():
            if key in RESERVED:
                raise ValueError(f"ctx.record({key}=...) would overwrite the runner's column")
            self.records[key] = as_number(value, f"ctx.record({key}=...)")


def as_number(value: Any, what: str) -> float:
    """``value`` as a float: a number or a one-element tensor; anything else is refused."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise LotteryError(f"{what} must be a number, got {value!r}")
    return float(value)


def evaluation_row(outcome: Any) -> dict[str, float]:
    """The row values of ``evaluate``'s answer: a number, or a mapping with ``"error"``."""
    if isinstance(outcome, Mapping):
        if "error" not in outcome:
            raise LotteryError(
                f"evaluate() returned a mapping without the key 'error': {sorted(outcome)}"
            )
        values = {str(k): as_number(v, f"evaluate()[{k!r}]") for k, v in outcome.items()}
        clash = sorted(set(values) & (RESERVED - {"error"}))
        if clash:
            raise LotteryError(f"evaluate() returned keys that clash with the runner's: {clash}")
        return values
    return {"error": as_number(outcome, "evaluate()")}
