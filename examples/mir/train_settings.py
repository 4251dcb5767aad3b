"""How one level of an example task trains (``TrainSettings``), and the part of the runner's
level context that the training uses (``LevelContextLike``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

__all__ = ["REFERENCE_FIELDS", "LevelContextLike", "TrainSettings"]


class LevelContextLike(Protocol):
    """The part of ``lt.LevelContext`` that :meth:`TaskRun.train` uses."""

    task: str
    method: str
    criterion: str
    replicate: int
    level: int
    seed: int

    def epochs(self, n: int) -> Iterable[int]:
        """Iterate over ``n`` epoch indices (capturing the rewind point at level 0)."""
        ...

    @property
    def distill(self) -> bool:
        """Whether this level retrains with distillation from the reference."""
        ...

    def teacher(self, device: Any = None) -> nn.Module:
        """The replicate's trained reference, frozen, in eval mode (levels >= 1)."""
        ...

    def capture_rewind(self) -> None:
        """Capture the rewind point W_k now (level 0 only)."""
        ...

    def record(self, **values: float) -> None:
        """Add float columns to the level's result row."""
        ...

    def report_loss(self, loss: float) -> None:
        """This epoch's validation loss (the reference's early-bird monitors read it)."""
        ...


@dataclass(frozen=True)
class TrainSettings:
    """How one level is trained: the paper's optimiser and schedule, with early stopping.

    A level trains until ``patience`` epochs bring no lower validation error (ties: loss), at
    most ``max_epochs``, and keeps its best-validation weights. At level 0 the rewind point
    W_k is taken after ``rewind_epochs`` epochs (keep it <= ``patience``, so that it is taken
    before early stopping can end the reference). ``reference`` holds settings the reference
    (level 0) alone trains with instead, among :data:`REFERENCE_FIELDS`.
    """

    max_epochs: int
    patience: int
    rewind_epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 2e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    transpose: int = 0
    epoch_examples: int | None = None
    #: distillation from the reference, for methods named with ``+kd`` only
    kd_temperature: float = 2.0
    kd_weight: float = 0.7
    #: the reference's own settings, e.g. {"patience": 15}
    reference: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reference) - set(REFERENCE_FIELDS))
        if unknown:
            raise ValueError(
                f"TrainSettings.reference: {unknown} cannot differ for the reference "
                f"(it may set {list(REFERENCE_FIELDS)})"
            )

    def at_level(self, level: int) -> TrainSettings:
        """The settings ``level`` trains with: the reference's own at level 0."""
        if level or not self.reference:
            return self
        return dataclasses.replace(self, **self.reference, reference={})


#: what the reference may train with differently: how long, and how soon the rate is halved
REFERENCE_FIELDS = ("max_epochs", "patience", "plateau_patience")
