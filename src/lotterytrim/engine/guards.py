"""Models lotterytrim refuses to trim, with what to do instead.

Two kinds of model would otherwise fail obscurely: weights wrapped by ``torch.nn.utils.prune``
(their ``weight`` is a computed attribute, not a tensor the plan can slice) and models on the
``meta`` device (no values, so every score is zero and the ranking is arbitrary).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from lotterytrim.errors import ModelStateError

__all__ = ["pruned_weights", "check_trimmable"]


def pruned_weights(model: nn.Module) -> list[tuple[str, str]]:
    """``(module name, weight name)`` of every weight reparametrised by ``torch.nn.utils.prune``."""
    out = []
    for mod_name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                names = [h._tensor_name for h in getattr(hook, "_pruning_methods", [hook])]
                out += [(mod_name, n) for n in names]
    return sorted(set(out))


def check_trimmable(model: nn.Module, what: str = "lotterytrim", masks_ok: bool = False) -> None:
    """Refuse models with ``torch.nn.utils.prune`` masks (unless ``masks_ok``) or meta tensors."""
    if not isinstance(model, nn.Module):
        return  # the type error is raised by the caller's own checks
    masked = [] if masks_ok else pruned_weights(model)
    if masked:
        mod, name = masked[0]
        listing = ", ".join(f"'{m}'.{n}" for m, n in masked[:5])
        raise ModelStateError(
            f"{what} cannot trim weights wrapped by torch.nn.utils.prune ({listing}): call "
            f"torch.nn.utils.prune.remove(model.get_submodule('{mod}'), '{name}') for each to "
            "make the masks permanent first, or use LotteryTrimmer(..., method='mask') for "
            "unstructured masking"
        )
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_meta:
            raise ModelStateError(
                f"{what} cannot trim a model on the meta device (tensor {name!r} has no values, "
                "so every unit would score zero): materialise it first, e.g. "
                "model.to_empty(device='cpu') and load or initialise its weights"
            )
