"""The paper's Figure 2 and Table 1 from the results of a lottery experiment.

``table1`` needs only pandas; ``figure2`` draws with matplotlib, which the ``plot`` extra
installs (``pip install "lotterytrim[plot]"``) and which is imported only when it draws.
"""

from lotterytrim.plot.figure import figure2
from lotterytrim.plot.table import Table1, table1

__all__ = ["Table1", "figure2", "table1"]
