"""lotterytrim: structured lottery-ticket trimming for PyTorch.

Rank whole units (channels, hidden units), remove them for real together with everything that
consumed them, rewind the survivors, retrain, repeat: the result is a smaller, faster model.
"""

from __future__ import annotations

from . import criteria
from ._layers import Adapter, Piece, register_adapter
from .criteria import Criterion, LayerCriterion
from .errors import (
    CriterionError,
    ExampleInputError,
    LotteryTrimError,
    TrimVerificationError,
    UnsupportedLayerError,
)
from .functional import TrimResult, layer_units, trim
from .graph import TrimGraph, UnitGroup, unprunable
from .plan import TrimPlan
from .selection import Selection, select

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "Criterion",
    "CriterionError",
    "ExampleInputError",
    "LayerCriterion",
    "LotteryTrimError",
    "Piece",
    "Selection",
    "TrimGraph",
    "TrimPlan",
    "TrimResult",
    "TrimVerificationError",
    "UnitGroup",
    "UnsupportedLayerError",
    "criteria",
    "layer_units",
    "register_adapter",
    "select",
    "trim",
    "unprunable",
]
