"""lotterytrim: structured lottery-ticket trimming for PyTorch.

Rank whole units (channels, hidden units), remove them for real together with everything that
consumed them, rewind the survivors, retrain, repeat: the result is a smaller, faster model.
"""

from __future__ import annotations

from . import criteria, plot
from ._handover import StaleOptimizerWarning
from ._layers import Adapter, Piece, register_adapter
from ._lock import CellBusyError
from .criteria import Criterion, LayerCriterion
from .errors import (
    CriterionError,
    ExampleInputError,
    LotteryError,
    LotteryTrimError,
    ModelStateError,
    TrimVerificationError,
    UnsupportedLayerError,
)
from .export import ExportError, OnnxExport, export_onnx
from .functional import TrimResult, layer_units, trim
from .graph import TrimGraph, UnitGroup, unprunable
from .io import LoadError, load, load_state, load_trimmer_state, save
from .lottery import LevelContext, Lottery, LotteryConfig
from .optim import rebuild_optimizer
from .plan import TrimPlan
from .report import Report, ReportTable, compare, layer_diff, layer_table, report
from .results import load_results, select
from .rewind import RewindPoint
from .safeguards import Safeguards
from .selection import Selection
from .selection import select as select_units
from .trimmer import CompactResult, LotteryTrimmer, StepResult, TrimmerStateError

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "CompactResult",
    "Criterion",
    "CellBusyError",
    "CriterionError",
    "ExampleInputError",
    "ExportError",
    "LayerCriterion",
    "LevelContext",
    "LoadError",
    "LotteryTrimError",
    "Lottery",
    "LotteryConfig",
    "LotteryError",
    "LotteryTrimmer",
    "ModelStateError",
    "OnnxExport",
    "Piece",
    "Report",
    "ReportTable",
    "RewindPoint",
    "Safeguards",
    "Selection",
    "StaleOptimizerWarning",
    "StepResult",
    "TrimGraph",
    "TrimPlan",
    "TrimResult",
    "TrimVerificationError",
    "TrimmerStateError",
    "UnitGroup",
    "UnsupportedLayerError",
    "compare",
    "criteria",
    "export_onnx",
    "layer_diff",
    "layer_table",
    "layer_units",
    "load",
    "load_results",
    "load_state",
    "load_trimmer_state",
    "plot",
    "rebuild_optimizer",
    "register_adapter",
    "report",
    "save",
    "select",
    "select_units",
    "trim",
    "unprunable",
]
