"""lotterytrim: structured lottery-ticket trimming for PyTorch.

Rank whole units (channels, hidden units), remove them for real together with everything that
consumed them, rewind the survivors, retrain, repeat: the result is a smaller, faster model.
``docs/architecture.md`` maps the modules; ``plot``, ``export_onnx``, the reports and the
experiment runner (pandas, tqdm, filelock) load on first use. Every other public name lives in
the module that owns it (``lt.errors``, ``lt.criteria``, ``lt.adapters``, ``lt.methods``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lotterytrim import adapters, criteria, errors
from lotterytrim.distillation import distillation_loss
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.engine.split import SplitAttention, split_attention
from lotterytrim.engine.tags import unprunable
from lotterytrim.options import Safeguards, TrimOptions
from lotterytrim.storage.io import load, save
from lotterytrim.trimming import methods
from lotterytrim.trimming.earlybird import EarlyBird
from lotterytrim.trimming.norms import recalibrate_norms
from lotterytrim.trimming.step import StepResult, TrimResult, trim
from lotterytrim.trimming.trimmer import LotteryTrimmer

if TYPE_CHECKING:
    from lotterytrim import plot
    from lotterytrim.export import export_onnx
    from lotterytrim.measure.report import Report, compare, report
    from lotterytrim.runner.config import LotteryConfig
    from lotterytrim.runner.context import LevelContext
    from lotterytrim.runner.lottery import Lottery
    from lotterytrim.runner.pool import process_pool
    from lotterytrim.runner.results import load_results, pick_models

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
    "unprunable",
    "TrimPlan",
    "split_attention",
    "SplitAttention",
    # criteria, methods and layer adapters: the built-in ones, and registering your own
    "criteria",
    "methods",
    "adapters",
    # retraining, and repairing a step's norm statistics
    "distillation_loss",
    "recalibrate_norms",
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
    "pick_models",
    "process_pool",
    "plot",
    "export_onnx",
    # every exception and warning lotterytrim raises, as lt.errors.<Name>
    "errors",
]

# imported on first use: the plots, onnx (export_onnx), and the reports and the experiment
# runner with pandas, tqdm and filelock: trimming in a training script needs none of them
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
    "pick_models": ("lotterytrim.runner.results", "pick_models"),
    "process_pool": ("lotterytrim.runner.pool", "process_pool"),
}


def __getattr__(name: str) -> Any:
    """Load ``plot``, ``export_onnx``, the reports and the runner on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'lotterytrim' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value: Any = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
