"""The settings of a lottery experiment that change its results (all of them are hashed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from lotterytrim.criteria import CRITERIA
from lotterytrim.options import (
    OptionKeywords,
    TrimOptions,
    Unpack,
    check_amount,
    field_help,
    option_keywords,
)
from lotterytrim.registry import Registry
from lotterytrim.trimming.methods import (
    METHODS,
    check_method_name,
    get_method,
    split_method,
    split_pacing,
)

__all__ = ["LotteryConfig", "unprunable_modules"]


def _describe(text: str) -> dict[str, str]:
    return {"help": text}


@option_keywords
@dataclass(frozen=True)
class LotteryConfig:
    """Settings of a lottery experiment that change its results (all of them are hashed).

    The trim options (scope, normalize, min_units, safeguards, on_unsupported) are given as
    ``options=TrimOptions(...)`` or as keywords for short; ``config.scope`` reads them back.
    Methods and criteria are names from ``lt.methods.METHODS`` and ``lt.criteria.CRITERIA``,
    built in or registered.
    """

    task: str = field(default="task", metadata=_describe("name of the task, used in rows"))
    levels: int = field(default=15, metadata=_describe("trimming levels after the reference"))
    amount: float = field(default=0.3, metadata=_describe("share of remaining weights per level"))
    replicates: int = field(default=5, metadata=_describe("independent lotteries (seeds)"))
    methods: tuple[str, ...] = field(
        default=("trim",),
        metadata=_describe(
            "lottery methods by name: trim | lrr | finetune | ...; +kd distils; "
            "@oneshot or @earlybird (last) trims straight to each level's size"
        ),
    )
    criteria: tuple[str, ...] = field(
        default=("magnitude",), metadata=_describe("unit criteria by name; mask ignores them")
    )
    options: TrimOptions = field(
        default_factory=TrimOptions,
        metadata=_describe("how a step chooses units (see TrimOptions.help())"),
    )
    rewind_fraction: float = field(
        default=0.5, metadata=_describe("share of level-0 epochs after which W_k is captured")
    )
    seed: int = field(default=0, metadata=_describe("replicate r uses seed + r"))
    unprunable: tuple[str, ...] = field(
        default=(), metadata=_describe("names of modules whose output units are kept")
    )
    criterion_options: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict,
        metadata=_describe("keyword arguments per criterion name, e.g. {'information': {...}}"),
    )
    earlybird: Mapping[str, float] = field(
        default_factory=dict,
        metadata=_describe(
            "threshold, window and min_drop of the @earlybird monitors (default 0.1, 5, 0)"
        ),
    )

    if TYPE_CHECKING:  # the __init__ option_keywords makes, for type checkers (defaults above)

        def __init__(
            self,
            task: str = ...,
            levels: int = ...,
            amount: float = ...,
            replicates: int = ...,
            methods: tuple[str, ...] = ...,
            criteria: tuple[str, ...] = ...,
            options: TrimOptions | None = ...,
            rewind_fraction: float = ...,
            seed: int = ...,
            unprunable: tuple[str, ...] = ...,
            criterion_options: Mapping[str, Mapping[str, Any]] = ...,
            earlybird: Mapping[str, float] = ...,
            **shorthand: Unpack[OptionKeywords],
        ) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "criteria", tuple(self.criteria))
        object.__setattr__(self, "unprunable", tuple(self.unprunable))
        object.__setattr__(self, "criterion_options", dict(self.criterion_options))
        object.__setattr__(self, "earlybird", dict(self.earlybird))
        if not isinstance(self.task, str) or not self.task or "/" in self.task:
            raise ValueError(f"task must be a non-empty name without '/', got {self.task!r}")
        if len(self.task.encode("utf-8")) > 200:  # the run directory adds 13 to its name
            raise ValueError(
                f"task names the run directory and must be at most 200 bytes, got "
                f"{len(self.task.encode('utf-8'))}: {self.task[:40]!r}..."
            )
        for name in ("levels", "replicates", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        if self.levels < 0:
            raise ValueError(f"levels must be >= 0, got {self.levels}")
        if self.replicates < 1:
            raise ValueError(f"replicates must be >= 1, got {self.replicates}")
        check_amount(self.amount)
        if not 0.0 <= float(self.rewind_fraction) <= 1.0:
            raise ValueError(f"rewind_fraction must lie in [0, 1], got {self.rewind_fraction}")
        _check_names("methods", self.methods, METHODS, split=True)
        _check_names("criteria", self.criteria, CRITERIA)
        _check_earlybird(self.earlybird, self.pacings())
        for name, options in self.criterion_options.items():
            if name not in self.criteria or not isinstance(options, Mapping):
                raise ValueError(
                    f"criterion_options maps criterion names in criteria to keyword mappings; "
                    f"got {name!r}: {options!r}"
                )
        try:
            json.dumps(self.criterion_options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"criterion_options must be JSON-serialisable: {exc}") from exc

    def runs(self) -> list[tuple[str, str]]:
        """The (method, criterion) pairs each replicate runs; a method with a fixed criterion
        (masking ranks weights by magnitude) runs once."""
        pairs: list[tuple[str, str]] = []
        for method in self.methods:
            fixed = get_method(split_method(method)[0]).fixed_criterion
            pairs.extend([(method, fixed)] if fixed else [(method, c) for c in self.criteria])
        return pairs

    def pacings(self) -> set[str]:
        """The pacings the methods use (``"iterative"`` for names without one)."""
        return {split_pacing(m)[1] for m in self.methods}

    def record(self) -> dict[str, Any]:
        """The fields as the JSON object hashed into the run directory's name.

        The trim options appear as top-level keys, and ``on_unsupported`` only when it is not
        ``"error"``, and the safeguards' ``residual`` only when it is not ``"last"``, so that runs
        started before these changes resume in the same directory.
        ``replicates`` and ``levels`` are left out: more of either extends the same run.
        """
        data = asdict(self)
        # how many replicates and levels run is not what a cell is: a run grows replicate by
        # replicate and level by level in one directory, finished cells kept
        del data["replicates"], data["levels"]
        data.update(data.pop("options"))
        if data["on_unsupported"] == "error":  # how earlier runs behaved, whatever the default
            del data["on_unsupported"]
        if not data["earlybird"]:  # runs made before the pacings keep their directory
            del data["earlybird"]
        safeguards = data.get("safeguards")
        if isinstance(safeguards, dict) and safeguards.get("residual") == "last":
            del safeguards["residual"]  # runs made before the option keep their directory
        return json.loads(json.dumps(data))

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each field's description (the trim options' included), e.g. for a CLI parser."""
        notes = field_help(cls)
        notes.update(TrimOptions.help())
        return notes


def _check_names(
    what: str, names: tuple[str, ...], registry: Registry[str, Any], split: bool = False
) -> None:
    """Names must be non-empty, unique and registered (methods: their method, ``+kd`` and
    pacing, each checked by :func:`check_method_name`)."""
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{what} must be a non-empty list without repeats: {names}")
    for name in names:
        if split:
            try:
                check_method_name(name)
            except ValueError as exc:
                raise ValueError(f"{what}: {exc}") from None
            continue
        if (split_method(name)[0] if split else name) not in registry:
            raise ValueError(
                f"unknown {registry.kind} {name!r} in {what}; choose from {sorted(registry)}"
            )


def _check_earlybird(options: Mapping[str, Any], pacings: set[str]) -> None:
    """The early-bird monitors' settings: ``threshold`` in (0, 1], ``window`` >= 1,
    ``min_drop`` in [0, 1), and only with an ``@earlybird`` method (they would change the run
    directory for nothing)."""
    if not options:
        return
    if "earlybird" not in pacings:
        raise ValueError(f"earlybird={dict(options)!r} is set but no method is paced @earlybird")
    unknown = sorted(set(options) - {"threshold", "window", "min_drop"})
    if unknown:
        raise ValueError(f"earlybird takes 'threshold', 'window' and 'min_drop', got {unknown}")
    threshold, window = options.get("threshold", 0.1), options.get("window", 5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"earlybird threshold must be a number in (0, 1], got {threshold!r}")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"earlybird threshold must lie in (0, 1], got {threshold!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"earlybird window must be an integer >= 1, got {window!r}")
    drop = options.get("min_drop", 0.0)
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0.0 <= drop < 1.0:
        raise ValueError(f"earlybird min_drop must be a share in [0, 1), got {drop!r}")


def unprunable_modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The modules of ``model`` named in ``unprunable`` (a missing name is refused)."""
    out = []
    for name in names:
        try:
            out.append(model.get_submodule(name))
        except AttributeError as exc:
            raise ValueError(f"unprunable module {name!r} is not in the model") from exc
    return out
