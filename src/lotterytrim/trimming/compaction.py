"""Compaction: physically remove the units that unstructured masking left without weights.

After masking steps, a unit whose every incoming weight is masked computes a constant; removing
it changes nothing but the model's size. The removal is verified like any trim step, and the
masks and stored values of the survivors are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.layers import layer_units
from lotterytrim.engine.masknames import model_tensors
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.options import TrimOptions
from lotterytrim.trimming import masking
from lotterytrim.trimming.step import apply_verified, breaking_groups, units_lost

__all__ = ["compact_masks"]


def compact_masks(
    model: nn.Module, example_inputs: Any, unprunable: Iterable[nn.Module], options: TrimOptions
) -> tuple[TrimPlan, dict[str, int], dict[str, str]]:
    """Remove the emptied units of a masked model in place.

    Returns the step plan, the units removed per group (counted in its named layer, as
    ``layer_units`` counts them), and the groups whose empty units had to stay (with why).
    On failure the model, its masks and stored values are put back.
    """
    origs = {n: t.detach().clone() for n, t in model_tensors(model).items()}
    masks = masking.strip_masks(model)
    skipped: dict[str, str] = {}
    try:
        graph = TrimGraph(
            model, example_inputs, unprunable=unprunable, on_unsupported=options.on_unsupported
        )
        removal = masking.zero_fan_in_removal(graph, masks, options.min_units)
        units_before = layer_units(model)
        step_plan = TrimPlan.identity(model)
        while removal:
            step_plan, problem = apply_verified(graph, removal)
            if problem is None:
                break
            for gid, why in breaking_groups(graph, removal, problem).items():
                skipped[graph.groups[gid].name] = why
                removal.pop(gid, None)
            step_plan = TrimPlan.identity(model)
        removed = units_lost(graph, removal, units_before, layer_units(model))
    except Exception:
        masking.apply_masks(model, masks)
        masking.write_stored(model, origs)
        raise
    masking.apply_masks(model, step_plan.apply_to_state_dict(masks))
    masking.write_stored(model, step_plan.apply_to_state_dict(origs))
    return step_plan, removed, skipped
