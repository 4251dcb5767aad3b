"""Which parameter elements a trimming step may remove: those in a unit of an unprotected group.

A report counts them from the same traced graph the trimmer uses, so its ``prunable_params``
covers exactly what trimming can shrink (attention heads and module-owned parameters included)
and leaves out what it protects (unprunable layers' outputs, model outputs, unsupported layers).
"""

from __future__ import annotations

import math

from lotterytrim.engine.graph import TrimGraph

__all__ = ["prunable_param_count", "prunable_param_elements"]


def prunable_param_elements(graph: TrimGraph) -> dict[str, int]:
    """Per parameter (canonical name), the elements some unprotected group's units own.

    An element is removable when its index along any one dim belongs to such a unit, so the
    elements that always stay are the product, over dims, of the indices no group can remove.
    """
    removable: dict[tuple[str, int], set[int]] = {}
    for group in graph.prunable_groups:
        for entry in group.entries:
            removable.setdefault((entry.tensor, entry.dim), set()).update(
                int(i) for i in entry.indices
            )
    counts: dict[str, int] = {}
    for name, shape in graph.param_shapes.items():
        kept = [size - len(removable.get((name, dim), ())) for dim, size in enumerate(shape)]
        counts[name] = math.prod(shape) - math.prod(kept)
    return counts


def prunable_param_count(graph: TrimGraph) -> int:
    """Parameter elements the trimmer may remove from the traced model, each tensor once."""
    return sum(prunable_param_elements(graph).values())
