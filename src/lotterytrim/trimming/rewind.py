"""The rewind point W_k: every parameter and buffer captured once, sliced and written back exactly.

The state is captured under the cumulative plan in force at that moment; after later steps it is
sliced by the newer plan (``plan.apply_to_state_dict(state, source=captured_plan)``) and copied
into the survivors bit for bit (design invariant 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lotterytrim.engine.masknames import model_tensors
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.storage.files import read_tensors, write_tensors

__all__ = ["RewindPoint"]


@dataclass
class RewindPoint:
    """A frozen copy of the model's tensors, and the cumulative plan it was taken under."""

    plan: TrimPlan  # cumulative plan in force when the state was captured
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # in-memory copy
    path: Path | None = None  # safetensors file holding the copy (when kept on disk)

    @classmethod
    def capture(
        cls, model: nn.Module, plan: TrimPlan, path: str | Path | None = None
    ) -> RewindPoint:
        """Clone every parameter and buffer of ``model``; on disk when ``path`` is given."""
        state = {k: v.detach().clone().contiguous() for k, v in model_tensors(model).items()}
        if path is None:
            return cls(plan=plan.copy(), state=state)
        target = Path(path)
        write_tensors(target, state, {"lotterytrim_rewind": plan.to_json()})
        return cls(plan=plan.copy(), path=target)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The captured tensors (read from disk when they are kept there)."""
        if self.state is not None:
            return self.state
        if self.path is None:
            raise RuntimeError("rewind point holds neither tensors nor a file")
        tensors, _ = read_tensors(self.path)
        return tensors

    def sliced(self, plan: TrimPlan) -> dict[str, torch.Tensor]:
        """The captured state cut down to the architecture of cumulative ``plan``."""
        return plan.apply_to_state_dict(self.tensors(), source=self.plan)

    def restore(self, model: nn.Module, plan: TrimPlan) -> None:
        """Write the captured values of every surviving tensor into ``model`` in place."""
        target = model_tensors(model)
        values = self.sliced(plan)
        missing = sorted(set(target) - set(values))
        extra = sorted(set(values) - set(target))
        if missing or extra:
            raise KeyError(
                "rewind point and model hold different tensors: "
                f"missing from the rewind point {missing[:5]}, unknown to the model {extra[:5]}"
            )
        for name, t in target.items():
            v = values[name]
            if tuple(t.shape) != tuple(v.shape) or t.dtype != v.dtype:
                raise ValueError(
                    f"tensor {name!r}: model has {tuple(t.shape)} {t.dtype}, rewind point "
                    f"sliced by the plan gives {tuple(v.shape)} {v.dtype}"
                )
        with torch.no_grad():
            for name, t in target.items():
                t.copy_(values[name])

    @staticmethod
    def restored(
        plan: TrimPlan, tensors: Mapping[str, torch.Tensor], path: str | Path | None = None
    ) -> RewindPoint:
        """Rebuild a rewind point from saved tensors (kept in memory or written to ``path``)."""
        state = {k: v.clone() for k, v in tensors.items()}
        if path is None:
            return RewindPoint(plan=plan.copy(), state=state)
        write_tensors(Path(path), state, {"lotterytrim_rewind": plan.to_json()})
        return RewindPoint(plan=plan.copy(), path=Path(path))
