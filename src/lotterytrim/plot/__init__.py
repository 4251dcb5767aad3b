"""The paper's Figure 2 and Table 1 from the results of a lottery experiment (needs matplotlib,
loaded only when ``lt.plot`` is first used)."""

from lotterytrim.plot.figure import figure2
from lotterytrim.plot.table import Table1, table1

__all__ = ["Table1", "figure2", "table1"]
