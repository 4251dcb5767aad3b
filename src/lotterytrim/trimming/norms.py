"""Re-estimating BatchNorm statistics after a step: the running means and variances a trimmed
model keeps were measured on the network before the step, and stale ones cost accuracy that no
weight lost."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from lotterytrim.calls import eval_mode, run_model
from lotterytrim.criteria.batches import model_device, to_device
from lotterytrim.criteria.streaming import split_batch

__all__ = ["recalibrate_norms"]


def recalibrate_norms(
    model: nn.Module, data: Iterable[Any], *, max_batches: int | None = None
) -> int:
    """Re-estimate the running statistics of every BatchNorm layer of ``model`` on ``data``.

    ``data`` yields batches as the data-driven criteria take them, ``(inputs, targets)`` or
    inputs alone (training batches are best). The statistics become the plain average over
    the batches read (at most ``max_batches``); no gradient is taken and no weight changes.
    Every other layer runs in eval mode (no dropout), and every module's mode is restored
    after. Returns the number of batches read (0, reading nothing, when the model has no
    BatchNorm layer).
    """
    if max_batches is not None and (isinstance(max_batches, bool) or max_batches < 1):
        raise ValueError(f"recalibrate_norms: max_batches must be >= 1, got {max_batches!r}")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    norms = [m for m in norms if m.track_running_stats]
    if not norms:
        return 0
    saved = [(m, m.momentum, {k: b.clone() for k, b in m.named_buffers()}) for m in norms]
    device = model_device(model)
    read = 0
    with eval_mode(model), torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches
            norm.train()
        try:
            for batch in data:
                if max_batches is not None and read >= max_batches:
                    break
                run_model(model, to_device(split_batch(batch)[0], device))
                read += 1
        except BaseException:
            _restore(saved)
            raise
        finally:
            for norm, momentum, _ in saved:
                norm.momentum = momentum
    if read == 0:
        _restore(saved)
        raise ValueError("recalibrate_norms got no batches: the data is empty")
    return read


def _restore(saved: Sequence[tuple[nn.Module, Any, dict[str, torch.Tensor]]]) -> None:
    """Put the statistics back as they were (a failed or empty pass changes nothing)."""
    for norm, momentum, buffers in saved:
        norm.momentum = momentum
        with torch.no_grad():
            for name, buffer in norm.named_buffers():
                buffer.copy_(buffers[name])
