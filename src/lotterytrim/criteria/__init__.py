"""Criteria: one score per unit of every group; the lowest-scored units are removed first.

Built in: ``magnitude`` (paper eq. 3), ``activation`` (eq. 4), ``batchnorm`` (eq. 5),
``gradient``, ``taylor``, ``information``, ``group_norm`` (torch-pruning's group norm) and
``random``. Write your own by subclassing :class:`Criterion` or :class:`LayerCriterion` and make
it usable by name everywhere (``trim``, ``LotteryTrimmer``, ``LotteryConfig``) with
``lt.criteria.register("name", MyCriterion)``.
"""

from __future__ import annotations

from typing import Any

from lotterytrim.criteria.base import Criterion, LayerCriterion
from lotterytrim.criteria.group import GroupNorm
from lotterytrim.criteria.information import Information
from lotterytrim.criteria.random import Random
from lotterytrim.criteria.streaming import Activation, Gradient, Taylor
from lotterytrim.criteria.weights import BatchNorm, Magnitude
from lotterytrim.registry import Registry

__all__ = [
    "Criterion",
    "LayerCriterion",
    "Magnitude",
    "Activation",
    "BatchNorm",
    "Gradient",
    "Taylor",
    "Information",
    "GroupNorm",
    "Random",
    "CRITERIA",
    "register",
    "get_criterion",
]

CRITERIA: Registry[str, Criterion] = Registry("criterion", Criterion)
"""Every criterion usable by name: the built-in ones and those users register."""

for _cls in (Magnitude, Activation, BatchNorm, Gradient, Taylor, Information, GroupNorm, Random):
    CRITERIA.register(_cls.name, _cls)

register = CRITERIA.register


def get_criterion(
    criterion: str | Criterion, *, seed: int | None = None, **options: Any
) -> Criterion:
    """A criterion instance from a registered name (built with ``options``) or an instance.

    ``seed`` reaches criteria that take one (``takes_seed``), unless ``options`` sets it.
    """
    if isinstance(criterion, Criterion):
        return criterion
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(
            f"unknown criterion {criterion!r}: use one of {sorted(CRITERIA)}, a "
            "lotterytrim.criteria.Criterion instance, or register your own with "
            "lt.criteria.register(name, cls)"
        )
    if seed is not None and getattr(CRITERIA[criterion], "takes_seed", False):
        options.setdefault("seed", seed)
    return CRITERIA.build(criterion, **options)
