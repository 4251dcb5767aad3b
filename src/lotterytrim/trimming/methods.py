"""Lottery methods: what a step does to the survivors once the weakest units are gone.

``trim`` rewinds them to W_k (the structured lottery), ``finetune`` keeps training them as they
are, ``reinit`` re-initialises them (the random control) and ``mask`` is the original
unstructured lottery (single weights masked by magnitude, then rewound). Subclass
:class:`Method` and register it (``lt.methods.register("name", MyMethod)``) to use your own by
name in ``LotteryTrimmer`` and ``LotteryConfig``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from lotterytrim.registry import Registry

if TYPE_CHECKING:
    from lotterytrim.trimming.trimmer import LotteryTrimmer

__all__ = [
    "Method",
    "Trim",
    "Finetune",
    "Reinit",
    "Mask",
    "METHODS",
    "register",
    "get_method",
    "reinitialize",
]


class Method:
    """Base class: override :meth:`after_removal`; the flags tell the driver and the runner."""

    name = "custom"
    #: a rewind point must be captured before the first step (the step result says rewound)
    rewinds = False
    #: masks single weights with ``torch.nn.utils.prune`` instead of removing units
    masks = False
    #: ``trimmer.attach`` carries optimizer state across steps unless told otherwise
    carries_optimizer_state = False
    #: the one criterion the method ranks by (None: any); the runner runs it once per replicate
    fixed_criterion: str | None = None

    def after_removal(self, trimmer: LotteryTrimmer) -> None:
        """Prepare the survivors for the next training round (the plan is already updated)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Trim(Method):
    """The structured lottery: survivors are rewound to W_k, bit for bit."""

    name = "trim"
    rewinds = True

    def after_removal(self, trimmer: LotteryTrimmer) -> None:
        trimmer.rewind()


class Finetune(Method):
    """No rewind: survivors keep their trained values (and the optimizer its state)."""

    name = "finetune"
    carries_optimizer_state = True


class Reinit(Method):
    """The random control: survivors are re-initialised, seeded by the trimmer and level."""

    name = "reinit"

    def after_removal(self, trimmer: LotteryTrimmer) -> None:
        reinitialize(trimmer.model, trimmer.seed * 1_000_003 + trimmer.level)


class Mask(Method):
    """The original lottery: mask the smallest weights globally, rewind the rest to W_k."""

    name = "mask"
    rewinds = True
    masks = True
    fixed_criterion = "magnitude"

    def after_removal(self, trimmer: LotteryTrimmer) -> None:
        trimmer.rewind()


def reinitialize(model: nn.Module, seed: int) -> None:
    """Re-initialise every layer with its own ``reset_parameters()``, under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset) and any(True for _ in m.parameters(recurse=False)):
                reset()


METHODS: Registry[Method] = Registry("method", Method)
"""Every lottery method usable by name: the built-in ones and those users register."""

for _cls in (Trim, Finetune, Reinit, Mask):
    METHODS.register(_cls.name, _cls)

register = METHODS.register


def get_method(method: str | Method) -> Method:
    """A method instance from a registered name, or an instance (returned as is)."""
    if isinstance(method, Method):
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)} or registered, got {method!r}")
    return METHODS.build(method)
