"""Lottery methods: how a step takes parameters away, and what happens to the survivors.

``trim`` rewinds them to W_k with the schedule (weight rewinding: the structured lottery),
``lrr`` keeps their trained values and restarts the schedule (learning-rate rewinding),
``finetune`` carries on training them as they are, schedule and optimizer state included,
``reinit`` re-initialises them (the random control) and ``mask`` is the original unstructured
lottery (single weights masked by magnitude, then rewound). Subclass :class:`Method`
(override :meth:`Method.remove` for a new kind of removal, :meth:`Method.after_removal` for a
new treatment of the survivors) and register it (``lt.methods.register("name", MyMethod)``)
to use your own by name in ``LotteryTrimmer`` and ``LotteryConfig``; in a
:class:`~lotterytrim.Lottery`, a name ending in ``+kd`` (``"lrr+kd"``) runs that method and
asks ``train`` to distil from the reference, and a pacing after ``@`` (``"lrr@oneshot"``,
``"lrr+kd@earlybird"``) says how the runner reaches each level's size (see :data:`PACINGS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from lotterytrim.registry import Registry
from lotterytrim.trimming.driver import Driver
from lotterytrim.trimming.removal import (
    Removal,
    mask_weights,
    remove_units,
    stored_params,
    unmasked_params,
)

__all__ = [
    "Method",
    "Trim",
    "Lrr",
    "Finetune",
    "Reinit",
    "Mask",
    "METHODS",
    "register",
    "get_method",
    "split_method",
    "split_pacing",
    "check_method_name",
    "reinitialize",
    "DISTILL_SUFFIX",
    "PACING_SEPARATOR",
    "PACINGS",
]

DISTILL_SUFFIX = "+kd"
"""Appended to a method's name in a lottery, it retrains that method with distillation."""

PACING_SEPARATOR = "@"
"""Separates a lottery method's name from its pacing: ``"lrr@oneshot"``."""

PACINGS: dict[str, str] = {
    "iterative": "level L is one step from level L-1 after its retraining (no suffix)",
    "oneshot": "level L is the trained reference trimmed straight to its size, then retrained",
    "earlybird": "level L is the reference when the keep-set of its size settled, trimmed "
    "straight to that size, then retrained",
}
"""How a lottery reaches each level's size; ``iterative`` is the plain name's."""

Schedule = Literal["rewind", "start", "continue"]


class Method:
    """Base class: a step calls :meth:`remove`, counts the level, then calls
    :meth:`after_removal`; the flags tell the driver and the runner what the method needs."""

    name = "custom"
    #: a rewind point must be captured before the first step (the step result says rewound)
    rewinds = False
    #: a step removes whole units (the default :meth:`remove`), so ``trim_to`` and the
    #: one-shot pacings may trim straight to a size with it
    removes_units = True
    #: the model carries ``torch.nn.utils.prune`` masks between steps: the trimmer's checks let
    #: them through, and ``compact()`` may remove the units they emptied
    keeps_masks = False
    #: ``trimmer.attach`` carries optimizer state across steps unless told otherwise
    carries_optimizer_state = False
    #: where an attached schedule goes after a step: back to the rewind point (``"rewind"``),
    #: back to where it was at ``attach`` (``"start"``) or on from where it is (``"continue"``)
    schedule: Schedule = "start"
    #: the one criterion the method ranks by (None: any); the runner runs it once per replicate
    fixed_criterion: str | None = None

    def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
        """Take ``trimmer.amount`` of the parameters away, in place; the default ranks units by
        the trimmer's criterion and removes the weakest whole (the structured step)."""
        return remove_units(trimmer, data)

    def after_removal(self, trimmer: Driver) -> None:
        """Prepare the survivors for the next training round (plan and level are updated)."""

    def live_params(self, model: nn.Module) -> int:
        """Parameters ``model`` holds after this method's steps: those it stores, unless the
        removal leaves removed ones stored (masks)."""
        return stored_params(model)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Trim(Method):
    """Weight rewinding, the structured lottery: survivors go back to W_k bit for bit, and the
    attached schedule to where it was at W_k (optimizer state starts empty)."""

    name = "trim"
    rewinds = True
    schedule: Schedule = "rewind"

    def after_removal(self, trimmer: Driver) -> None:
        trimmer.rewind()


class Lrr(Method):
    """Learning-rate rewinding: survivors keep their trained values; the attached schedule
    starts over from where it was at ``attach`` and the optimizer state starts empty."""

    name = "lrr"
    schedule: Schedule = "start"


class Finetune(Method):
    """Fine-tuning: survivors keep their trained values, the optimizer its state (sliced) and
    the attached schedule its position, as if training had never stopped."""

    name = "finetune"
    carries_optimizer_state = True
    schedule: Schedule = "continue"


class Reinit(Method):
    """The random control: survivors are re-initialised, seeded by the trimmer and level."""

    name = "reinit"

    def after_removal(self, trimmer: Driver) -> None:
        reinitialize(trimmer.model, trimmer.seed * 1_000_003 + trimmer.level)


class Mask(Method):
    """The original lottery: mask the smallest weights globally, rewind the rest to W_k."""

    name = "mask"
    rewinds = True
    removes_units = False
    keeps_masks = True
    schedule: Schedule = "rewind"
    fixed_criterion = "magnitude"

    def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
        return mask_weights(trimmer, data)

    def live_params(self, model: nn.Module) -> int:
        return unmasked_params(model)

    def after_removal(self, trimmer: Driver) -> None:
        trimmer.rewind()


def reinitialize(model: nn.Module, seed: int) -> None:
    """Re-initialise every layer with its own ``reset_parameters()``, under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset) and any(True for _ in m.parameters(recurse=False)):
                reset()


METHODS: Registry[str, Method] = Registry("method", Method)
"""Every lottery method usable by name: the built-in ones and those users register."""

for _cls in (Trim, Lrr, Finetune, Reinit, Mask):
    METHODS.register(_cls.name, _cls)

register = METHODS.register


def get_method(method: str | Method) -> Method:
    """A method instance from a registered name, or an instance (returned as is)."""
    if isinstance(method, Method):
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)} or registered, got {method!r}")
    return METHODS.build(method)


def split_pacing(name: str) -> tuple[str, str]:
    """A lottery's method name as (method with its ``+kd``, pacing): ``"lrr+kd@oneshot"`` ->
    ("lrr+kd", "oneshot"), ``"lrr"`` -> ("lrr", "iterative"). The pacing is not checked."""
    method, sep, pacing = name.partition(PACING_SEPARATOR)
    return (method, pacing) if sep else (name, "iterative")


def split_method(name: str) -> tuple[str, bool]:
    """A lottery's method name as (registered method, distils): ``"lrr+kd"`` -> ("lrr", True);
    a pacing (``"lrr+kd@oneshot"``) is cut off first."""
    name = split_pacing(name)[0]
    if name.endswith(DISTILL_SUFFIX):
        return name[: -len(DISTILL_SUFFIX)], True
    return name, False


def check_method_name(name: object) -> str:
    """Refuse a lottery method name whose method, ``+kd`` or pacing is unknown, naming the part.

    The grammar is ``METHOD[+kd][@PACING]``: the pacing comes last. ``iterative`` is what a
    name without a pacing means, so it is not written; a method that does not remove whole
    units (``mask``) can only be paced iteratively, since trimming straight to a size does.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a lottery method name must be a non-empty string, got {name!r}")
    head, pacing = split_pacing(name)
    method, _ = split_method(head)
    if method not in METHODS:
        hint = f" ({DISTILL_SUFFIX} once, before any {PACING_SEPARATOR}PACING)"
        part = "" if method == name else f" ({method!r} is not registered)"
        raise ValueError(
            f"unknown method {name!r}{part}; choose from {sorted(METHODS)}"
            + (hint if DISTILL_SUFFIX in method else "")
        )
    if pacing == "iterative" and PACING_SEPARATOR in name:
        raise ValueError(f"{name!r}: iterative is the default pacing, write {head!r}")
    if pacing not in PACINGS:
        hint = ""
        if pacing.endswith(DISTILL_SUFFIX):
            fixed = f"{head}{DISTILL_SUFFIX}{PACING_SEPARATOR}{pacing[: -len(DISTILL_SUFFIX)]}"
            hint = f" (the pacing comes last: {fixed!r})"
        choices = sorted(set(PACINGS) - {"iterative"})
        raise ValueError(
            f"unknown pacing {pacing!r} in method {name!r}; choose from {choices} "
            f"(no {PACING_SEPARATOR}suffix: iterative){hint}"
        )
    if pacing != "iterative" and not get_method(method).removes_units:
        raise ValueError(
            f"{name!r}: method {method!r} does not remove whole units and can only be paced "
            f"iteratively; {pacing} trims whole units straight to a size"
        )
    return name
