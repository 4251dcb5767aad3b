"""``GridRun``: a lottery as the cell runner sees it, so ``runner.cells`` needs no ``Lottery``.

The cell runner hands out references and cells, places each on a device and rewrites the results
table; it reads the grid's shape from the config and asks the run for nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from lotterytrim.runner.config import LotteryConfig

__all__ = ["GridRun"]


class GridRun(Protocol):
    """What running a grid of cells needs of a lottery (``Lottery`` is one)."""

    @property
    def config(self) -> LotteryConfig:
        """Replicates, methods, criteria and levels: the grid's shape."""

    @property
    def directory(self) -> Path:
        """The run directory every task writes into."""

    @property
    def progress(self) -> bool:
        """Whether progress bars are drawn."""

    @property
    def device(self) -> str | None:
        """The device the run's tasks use (None: not placed)."""

    def placed(self, device: str | None, progress: bool) -> GridRun:
        """The run as one task on ``device`` runs it, with its own progress flag."""

    def reference(self, replicate: int) -> dict[str, Any]:
        """Train (or read back) a replicate's reference."""

    def run_cell(self, replicate: int, method: str, criterion: str, bar: Any = None) -> None:
        """Run or resume one lottery cell."""

    def write_table(self) -> Any:
        """Rewrite the results table from the rows on disk."""
