"""lotterytrim: structured lottery-ticket trimming for PyTorch.

Rank whole units (channels, hidden units), remove them for real together with everything that
consumed them, rewind the survivors, retrain, repeat: the result is a smaller, faster model.
``docs/architecture.md`` maps the modules; ``plot``, ``export_onnx``, the reports and the
experiment runner (pandas) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lotterytrim import adapters, criteria, errors
from lotterytrim.adapters import register_adapter
from lotterytrim.criteria import Criterion
from lotterytrim.distillation import distillation_loss
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.engine.tags import unprunable
from lotterytrim.errors import LotteryTrimError
from lotterytrim.options import Safeguards, TrimOptions
from lotterytrim.storage.io import load, save
from lotterytrim.trimming import methods
from lotterytrim.trimming.earlybird import EarlyBird
from lotterytrim.trimming.step import StepResult, TrimResult, layer_units, trim
from lotterytrim.trimming.trimmer import LotteryTrimmer

if TYPE_CHECKING:
    from lotterytrim import plot
    from lotterytrim.export import export_onnx
    from lotterytrim.measure.report import Report, compare, report
    from lotterytrim.runner.config import LotteryConfig
    from lotterytrim.runner.context import LevelContext
    from lotterytrim.runner.lottery import Lottery
    from lotterytrim.runner.results import load_results, select

__version__ = "0.1.0"

__all__ = [
    # one trimming step, and the lottery driver
    "trim",
    "TrimOptions",
    "Safeguards",
    "TrimResult",
    "LotteryTrimmer",
    "StepResult",
    "EarlyBird",
    "criteria",
    "Criterion",
    "methods",
    "unprunable",
    "layer_units",
    "TrimPlan",
    # teaching the engine a layer type
    "adapters",
    "register_adapter",
    # retraining
    "distillation_loss",
    # files
    "save",
    "load",
    # measuring
    "report",
    "compare",
    "Report",
    # the experiment runner and its results
    "Lottery",
    "LotteryConfig",
    "LevelContext",
    "load_results",
    "select",
    "plot",
    "export_onnx",
    # errors (every one is in lotterytrim.errors)
    "errors",
    "LotteryTrimError",
]

# heavy modules, imported on first use: matplotlib (plot), onnx (export_onnx), and the
# reports and the experiment runner with pandas: trimming in a training script needs none
_LAZY = {
    "plot": ("lotterytrim.plot", None),
    "export_onnx": ("lotterytrim.export", "export_onnx"),
    "report": ("lotterytrim.measure.report", "report"),
    "compare": ("lotterytrim.measure.report", "compare"),
    "Report": ("lotterytrim.measure.report", "Report"),
    "Lottery": ("lotterytrim.runner.lottery", "Lottery"),
    "LotteryConfig": ("lotterytrim.runner.config", "LotteryConfig"),
    "LevelContext": ("lotterytrim.runner.context", "LevelContext"),
    "load_results": ("lotterytrim.runner.results", "load_results"),
    "select": ("lotterytrim.runner.results", "select"),
}

# names that left the top level, still importable from here (and from the module named)
_MOVED = {
    "Adapter": "lotterytrim.adapters",
    "Piece": "lotterytrim.adapters",
    "TrimGraph": "lotterytrim.engine.graph",
    "UnitGroup": "lotterytrim.engine.groups",
    "LayerCriterion": "lotterytrim.criteria",
    "Selection": "lotterytrim.selection.rank",
    "RewindPoint": "lotterytrim.trimming.rewind",
    "CompactResult": "lotterytrim.trimming.step",
    "rebuild_optimizer": "lotterytrim.trimming.optimizer",
    "load_state": "lotterytrim.storage.io",
    "load_trimmer_state": "lotterytrim.trimming.state",
    "ReportTable": "lotterytrim.measure.tables",
    "layer_table": "lotterytrim.measure.layers",
    "layer_diff": "lotterytrim.measure.layers",
    "OnnxExport": "lotterytrim.export",
    **{name: "lotterytrim.errors" for name in errors.__all__ if name != "LotteryTrimError"},
}


def __getattr__(name: str) -> Any:
    """Load ``plot``, ``export_onnx`` and the runner on first use; resolve moved names."""
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        value = value if attr is None else getattr(value, attr)
    elif name == "select_units":
        value = importlib.import_module("lotterytrim.selection.rank").select_units
    elif name in _MOVED:
        value = getattr(importlib.import_module(_MOVED[name]), name)
    else:
        raise AttributeError(f"module 'lotterytrim' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
