"""Every error and warning lotterytrim raises; each names the layer, argument or value at fault."""

from __future__ import annotations

__all__ = [
    "LotteryTrimError",
    "ExampleInputError",
    "UnsupportedLayerError",
    "CriterionError",
    "TrimVerificationError",
    "LotteryError",
    "ModelStateError",
    "TrimmerStateError",
    "LoadError",
    "ExportError",
    "CellBusyError",
    "CellFailedError",
    "FileReportError",
    "StaleOptimizerWarning",
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


class TrimmerStateError(LotteryTrimError, RuntimeError):
    """The trimmer cannot step: no rewind point yet, or the model changed outside the trimmer."""


class LoadError(LotteryTrimError, ValueError):
    """A file cannot be read as a lotterytrim model, or does not fit the model built for it."""


class ExportError(LotteryTrimError, RuntimeError):
    """A model could not be exported, or the exported graph does not compute what torch does."""


class CellBusyError(LotteryError):
    """Another process runs this lottery cell (or reference) now."""


class CellFailedError(LotteryError):
    """Tasks of a lottery grid failed where they ran; ``failures`` maps each to its error.

    The finished levels of every cell, the failed ones' included, stay on disk for a rerun.
    """

    failures: dict[str, BaseException]


class FileReportError(LotteryTrimError):
    """``lotterytrim report`` cannot describe the file; the message is one line for the user."""


class StaleOptimizerWarning(UserWarning):
    """An optimizer steps parameters a trimming step removed: it no longer trains the model."""
