"""Early stopping on a validation score, keeping the best-validation weights (as the paper does).

A level trains until ``patience`` epochs in a row bring no better validation score, or until
its cap on epochs; a run that reaches the cap while still improving is flagged, because its
reference was not trained to convergence.
"""

from __future__ import annotations

from torch import nn

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Track validation scores epoch by epoch; remember the best model state; say when to stop.

    Scores are tuples compared in order (e.g. ``(error, loss)``: the loss breaks ties of the
    error); lower is better. ``curve`` holds each epoch's first score component.
    """

    def __init__(self, patience: int, max_epochs: int) -> None:
        if patience < 1 or max_epochs < 1:
            raise ValueError("patience and max_epochs must be >= 1")
        self.patience = patience
        self.max_epochs = max_epochs
        self.best: tuple[float, ...] | None = None
        self.best_epoch = -1
        self.curve: list[float] = []
        self._state: dict[str, object] = {}

    @property
    def epochs(self) -> int:
        """Epochs seen so far."""
        return len(self.curve)

    def update(self, score: tuple[float, ...], model: nn.Module) -> bool:
        """Record one epoch's validation ``score``; keep ``model``'s state if it is the best."""
        self.curve.append(float(score[0]))
        if self.best is None or tuple(score) < self.best:
            self.best, self.best_epoch = tuple(score), self.epochs - 1
            self._state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        return False

    @property
    def stalled(self) -> bool:
        """``patience`` epochs in a row without a better score: the curve has flattened."""
        return self.best is not None and self.epochs - 1 - self.best_epoch >= self.patience

    @property
    def should_stop(self) -> bool:
        """Whether to stop now: stalled, or at the cap."""
        return self.stalled or self.epochs >= self.max_epochs

    @property
    def still_falling(self) -> bool:
        """The cap was reached before the curve stalled: more epochs would likely help."""
        return self.epochs >= self.max_epochs and not self.stalled

    def restore(self, model: nn.Module) -> None:
        """Load the best-validation state back into ``model`` (no-op before any epoch)."""
        if self._state:
            model.load_state_dict(self._state)
