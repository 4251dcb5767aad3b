"""How a trimming step chooses units: the options dataclasses, their defaults and their checks.

``trim``, :class:`~lotterytrim.trimming.trimmer.LotteryTrimmer` and
:class:`~lotterytrim.runner.config.LotteryConfig` all take a :class:`TrimOptions` (``options=``)
and accept its fields as keywords for short (``scope="local"``). The defaults live here only.
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import numpy as np

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # Python 3.10
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "TrimOptions",
    "Safeguards",
    "OptionKeywords",
    "Unpack",
    "COSTS",
    "RESIDUAL",
    "OPTION_NAMES",
    "SCOPES",
    "NORMALIZATIONS",
    "ON_UNSUPPORTED",
    "DEFAULT_MIN_UNITS",
    "DEFAULT_ON_UNSUPPORTED",
    "check_amount",
    "check_on_unsupported",
    "field_help",
    "option_keywords",
    "expose_options",
]

COSTS = ("none", "params", "macs")
RESIDUAL = ("rank", "last", "keep")


@dataclass(frozen=True)
class Safeguards:
    """Per-layer limits on what one step may remove, and how unit cost enters the ranking.

    ``step_cap``: the largest share of a group's current units that one step may remove
    (1.0: no cap). ``keep_floor``: the share of a group's *original* units (before the first
    step) that always survives (0.0: no floor); ``min_units`` still applies on top.
    ``cost``: rank units by score per parameter (``"params"``) or per multiply-accumulate
    (``"macs"``) they cost instead of by score alone (``"none"``). Per-parameter ranking spares
    thin layers whose units are cheap (waveform front ends); the floor stops it from hollowing
    a layer whose units are costly (a conv feeding a flatten). The defaults were measured
    together (``docs/selection.md``). The floor also bounds how small repeated steps can make a
    model (layers that each keep a quarter of their units keep about a sixteenth of the
    weights between them): lower it for lotteries that go further.

    ``residual``: what a step does with a residual width that a LayerNorm normalises (the
    embedding width of a transformer, and with it the heads of ``nn.MultiheadAttention``):
    ``"rank"`` ranks its units with the rest, ``"last"`` takes them only once every other
    group is at its limit, ``"keep"`` never takes them. One unit of that width costs a large
    share of the model, and cutting it changes what every LayerNorm computes.
    """

    step_cap: float = 0.5
    keep_floor: float = 0.25
    cost: str = "params"
    residual: str = "last"

    def __post_init__(self) -> None:
        for name, low_open in (("step_cap", True), ("keep_floor", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
            value = float(value)
            if not (0.0 <= value <= 1.0) or (low_open and value == 0.0) or value != value:
                bounds = "(0, 1]" if low_open else "[0, 1)"
                raise ValueError(f"{name} must lie in {bounds}, got {value}")
            object.__setattr__(self, name, value)
        if self.keep_floor >= 1.0:
            raise ValueError(f"keep_floor must lie in [0, 1), got {self.keep_floor}")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {self.cost!r}")
        if self.residual not in RESIDUAL:
            raise ValueError(f"residual must be one of {RESIDUAL}, got {self.residual!r}")

    @classmethod
    def off(cls) -> Safeguards:
        """No cap, no floor, plain scores, residual widths ranked: the unguarded ranking."""
        return cls(step_cap=1.0, keep_floor=0.0, cost="none", residual="rank")

    @classmethod
    def coerce(cls, value: Safeguards | Mapping[str, Any] | bool | None) -> Safeguards:
        """Accept a ``Safeguards``, a mapping of its fields, ``True`` (defaults) or ``False``/None
        (off)."""
        if isinstance(value, Safeguards):
            return value
        if value is True:
            return cls()
        if value is False or value is None:
            return cls.off()
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"unknown safeguard option(s): {sorted(unknown)}")
            return cls(**value)
        raise TypeError(
            f"safeguards must be a Safeguards, a mapping of its fields, or a bool; "
            f"got {type(value).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return asdict(self)

    @property
    def active(self) -> bool:
        """Whether any limit or cost weighting is in force."""
        return (
            self.step_cap < 1.0
            or self.keep_floor > 0.0
            or self.cost != "none"
            or self.residual != "rank"
        )


SCOPES = ("global", "local")
NORMALIZATIONS = ("none", "max", "l2", "mean", "fan_in")
ON_UNSUPPORTED = ("error", "protect")
DEFAULT_MIN_UNITS = 1
"""Units every layer keeps at least, unless the options say otherwise."""
DEFAULT_ON_UNSUPPORTED = "error"
"""What a parameter only an adapter could slice does, unless the options say otherwise."""


def check_on_unsupported(value: str) -> None:
    """Validate the ``on_unsupported`` choice: ``'error'`` raises, ``'protect'`` keeps units."""
    if value not in ON_UNSUPPORTED:
        choices = " or ".join(map(repr, ON_UNSUPPORTED))
        raise ValueError(f"on_unsupported must be {choices}, got {value!r}")


def field_help(cls: DataclassInstance | type[DataclassInstance]) -> dict[str, str]:
    """Each field of the dataclass ``cls`` mapped to its description (``metadata["help"]``),
    e.g. for a command-line parser or documentation."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _help(text: str) -> dict[str, str]:
    """Field metadata holding the field's description, read back by :func:`field_help`."""
    return {"help": text}


@dataclass(frozen=True)
class TrimOptions:
    """The options of unit selection, validated once when built (frozen afterwards)."""

    scope: str = field(
        default="global",
        metadata=_help("'global' ranks units across the whole network, 'local' per layer"),
    )
    normalize: str = field(
        default="max",
        metadata=_help(
            f"per-layer score normalisation before ranking: {' | '.join(NORMALIZATIONS)}"
        ),
    )
    min_units: int = field(
        default=DEFAULT_MIN_UNITS, metadata=_help("units every layer keeps at least")
    )
    safeguards: Safeguards = field(
        default_factory=Safeguards,
        metadata=_help(
            "per-layer limits of a step (step_cap, keep_floor) and cost-aware ranking (cost); "
            "a Safeguards, a mapping of its fields, True (defaults) or False (off)"
        ),
    )
    on_unsupported: str = field(
        default=DEFAULT_ON_UNSUPPORTED,
        metadata=_help(
            "'error' raises on a parameter only an adapter could slice; 'protect' keeps its units"
        ),
    )

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        m = self.min_units
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"min_units must be an integer >= 1, got {m!r}")
        object.__setattr__(self, "safeguards", Safeguards.coerce(self.safeguards))
        check_on_unsupported(self.on_unsupported)

    @classmethod
    def resolve(
        cls, options: TrimOptions | None = None, **shorthand: Unpack[OptionKeywords]
    ) -> TrimOptions:
        """``options`` (or the defaults) with the fields named in ``shorthand`` replaced."""
        if options is not None and not isinstance(options, TrimOptions):
            raise TypeError(f"options must be a TrimOptions, got {type(options).__name__}")
        unknown = sorted(set(shorthand) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {unknown}; the trim options are {OPTION_NAMES}"
            )
        base = options if options is not None else cls()
        changes: dict[str, Any] = dict(shorthand)  # safeguards are coerced by __post_init__
        return dataclasses.replace(base, **changes) if changes else base

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each field's description, e.g. for a command-line parser."""
        return field_help(cls)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (safeguards as a dict of theirs)."""
        return dataclasses.asdict(self)


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TrimOptions))


class OptionKeywords(TypedDict, total=False):
    """The fields of :class:`TrimOptions` as keywords (``**shorthand``), for type checkers."""

    scope: str
    normalize: str
    min_units: int
    safeguards: Safeguards | Mapping[str, Any] | bool | None
    on_unsupported: str


def check_amount(amount: object) -> float:
    """Validate ``amount``: a fraction strictly between 0 and 1 (a 0-d tensor or array too)."""
    item = getattr(amount, "item", None)
    if getattr(amount, "ndim", None) == 0 and callable(item):
        amount = item()  # a 0-d torch tensor or numpy array
    if isinstance(amount, (bool, np.bool_)) or not isinstance(amount, numbers.Real):
        raise TypeError(f"amount must be a number in (0, 1), got {type(amount).__name__}")
    if not 0.0 < float(amount) < 1.0:
        raise ValueError(f"amount must lie strictly between 0 and 1, got {amount}")
    return float(amount)


T = TypeVar("T")


def option_keywords(cls: type[T]) -> type[T]:
    """Class decorator for a dataclass with an ``options`` field: take and show option fields.

    ``Cls(scope="local")`` becomes ``Cls(options=TrimOptions(scope="local"))`` (keywords win
    over ``options=``), and ``obj.scope`` reads ``obj.options.scope``. Type checkers do not see
    the keywords: the class declares its ``__init__`` for them (``**Unpack[OptionKeywords]``).
    """
    init: Callable[..., None] = cls.__init__

    def __init__(self: Any, *args: Any, options: TrimOptions | None = None, **kwargs: Any) -> None:
        short = {k: kwargs.pop(k) for k in OPTION_NAMES if k in kwargs}
        init(self, *args, options=TrimOptions.resolve(options, **short), **kwargs)

    __init__.__doc__ = init.__doc__
    setattr(cls, "__init__", __init__)  # noqa: B010 (type checkers refuse assigning a method)
    return expose_options(cls)


def expose_options(cls: type[T]) -> type[T]:
    """Class decorator: one read-only attribute per option field, reading ``self.options``."""
    notes = TrimOptions.help()
    for name in OPTION_NAMES:
        setattr(cls, name, _option_property(name, notes[name]))
    return cls


def _option_property(name: str, doc: str) -> property:
    """A read-only property returning ``self.options.<name>``."""

    def read(self: Any) -> Any:
        return getattr(self.options, name)

    return property(read, doc=doc)
