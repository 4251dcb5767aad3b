"""Errors lotterytrim raises; each names the layer, argument or value at fault."""

from __future__ import annotations

__all__ = [
    "LotteryTrimError",
    "ExampleInputError",
    "UnsupportedLayerError",
    "CriterionError",
    "TrimVerificationError",
    "LotteryError",
    "ModelStateError",
]


class LotteryTrimError(Exception):
    """Base class of every lotterytrim error."""


class ExampleInputError(LotteryTrimError, ValueError):
    """The example inputs cannot be run through the model (or traced)."""


class UnsupportedLayerError(LotteryTrimError, TypeError):
    """A layer owns parameters that lotterytrim does not know how to slice."""


class CriterionError(LotteryTrimError, ValueError):
    """A criterion cannot score this model (e.g. ``batchnorm`` without norm layers)."""


class TrimVerificationError(LotteryTrimError, RuntimeError):
    """No unit could be removed without breaking the model."""


class LotteryError(LotteryTrimError, RuntimeError):
    """A lottery cannot go on: the user's functions broke a rule the runner relies on."""


class ModelStateError(LotteryTrimError, ValueError):
    """The model is in a state lotterytrim cannot trim (pruning masks, meta tensors)."""
