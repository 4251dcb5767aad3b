"""The :class:`Profile` of a run: every setting that decides a task's lottery results, with
its checks, the training settings it gives each task and the command line's changes.

A profile is hashed into the run directory's name by :mod:`examples.mir.run`, so changing any
of its fields starts a new directory and running the same profile again resumes.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import lotterytrim as lt

from .models import SIZES, TASKS
from .render import render_fields
from .soundfont import default_soundfont, soundfont_fingerprint
from .splits import REAL_DATA
from .train_settings import REFERENCE_FIELDS, TrainSettings

__all__ = ["EARLYBIRD_DEFAULTS", "TASK_CONFIG_FIELDS", "Profile", "per_task"]

#: the runner settings a task may set for itself in :attr:`Profile.task_config`
TASK_CONFIG_FIELDS = ("amount", "levels", "methods", "criteria", "criterion_options", "safeguards")


#: the early-bird monitor's own threshold and window (what a run without settings uses)
EARLYBIRD_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(lt.EarlyBird).parameters.items()
    if name in ("threshold", "window", "min_drop")
}


def _doc(text: str) -> dict[str, str]:
    """Field metadata holding the field's description."""
    return {"help": text}


def per_task(**values: Any) -> Mapping[str, Any]:
    """A read-only task -> value mapping that must name every task."""
    if set(values) != set(TASKS):
        raise ValueError(f"per-task values must name every task: {sorted(TASKS)}")
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class Profile:
    """Everything that decides a lottery's results, for every task at once."""

    name: str = field(metadata=_doc("name used on the command line (--profile)"))
    description: str = field(metadata=_doc("what the profile is for"))
    size: str = field(metadata=_doc("model and input size in examples.mir.models.SIZES"))
    levels: int = field(metadata=_doc("trimming levels after the reference"))
    amount: float = field(metadata=_doc("share of the remaining weights removed per level"))
    replicates: int = field(metadata=_doc("independent lotteries, each from its own seed"))
    methods: tuple[str, ...] = field(
        metadata=_doc("trim | lrr | finetune | reinit | mask; +kd distils, @oneshot / @earlybird")
    )
    criteria: tuple[str, ...] = field(metadata=_doc("unit criteria (mask always uses magnitude)"))
    rewind_epochs: Mapping[str, int] = field(
        metadata=_doc("epochs of the reference before W_k is taken, per task (<= patience)")
    )
    max_epochs: Mapping[str, int] = field(
        metadata=_doc("cap on the epochs of a level, per task (early stopping may end it sooner)")
    )
    patience: Mapping[str, int] = field(
        metadata=_doc("epochs without a lower validation error before a level stops, per task")
    )
    examples: Mapping[str, int] = field(
        metadata=_doc("rendered or synthetic examples per task, all splits (clips: drum, onset)")
    )
    epoch_examples: Mapping[str, int | None] = field(
        metadata=_doc("training examples drawn per epoch, per task (None: all of them)")
    )
    batch_size: Mapping[str, int] = field(metadata=_doc("mini-batch size, per task"))
    data: str = field(
        default="rendered",
        metadata=_doc("data without --data-root: rendered (SoundFont) or synthetic (hand-made)"),
    )
    fractions: tuple[float, float, float] = field(
        default=(0.7, 0.15, 0.15), metadata=_doc("train / val / test shares of the examples")
    )
    lr: Mapping[str, float] = field(
        default_factory=lambda: per_task(**dict.fromkeys(TASKS, 1e-3)),
        metadata=_doc("Adam learning rate, per task"),
    )
    weight_decay: float = field(default=2e-4, metadata=_doc("Adam weight decay"))
    plateau_factor: float = field(
        default=0.5, metadata=_doc("learning-rate factor on a validation plateau")
    )
    plateau_patience: Mapping[str, int] = field(
        default_factory=lambda: per_task(**dict.fromkeys(TASKS, 10)),
        metadata=_doc("epochs without a lower validation loss before that, per task"),
    )
    transpose: int = field(
        default=0, metadata=_doc("chord: random transposition of each batch by up to +-n semitones")
    )
    criterion_batches: int = field(
        default=4, metadata=_doc("validation batches that data-driven criteria read")
    )
    cap_real_data: bool = field(
        default=False,
        metadata=_doc("hold real datasets to `examples` (whole recordings) instead of all"),
    )
    kd_temperature: float = field(
        default=2.0, metadata=_doc("+kd methods: softening temperature of the reference's outputs")
    )
    kd_weight: float = field(
        default=0.7, metadata=_doc("+kd methods: the reference's share of the loss")
    )
    earlybird_threshold: float = field(
        default=EARLYBIRD_DEFAULTS["threshold"],
        metadata=_doc("@earlybird: keep-set distance below which the ticket settles"),
    )
    earlybird_window: int = field(
        default=EARLYBIRD_DEFAULTS["window"],
        metadata=_doc("@earlybird: distances in a row below the threshold"),
    )
    earlybird_min_drop: float = field(
        default=EARLYBIRD_DEFAULTS["min_drop"],
        metadata=_doc("@earlybird: no draw before the validation loss fell by this share"),
    )
    reference: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: per_task(**{t: MappingProxyType({}) for t in TASKS}),
        metadata=_doc(
            "per task, what the reference alone trains with instead: max_epochs, patience, "
            "plateau_patience (--set reference.patience=15)"
        ),
    )
    seed: int = field(default=0, metadata=_doc("seed of the data and of replicate 0"))
    scope: str = field(default="global", metadata=_doc("rank units globally or per layer"))
    normalize: str = field(default="max", metadata=_doc("per-layer score normalisation"))
    min_units: Mapping[str, int] = field(
        default_factory=lambda: per_task(**dict.fromkeys(TASKS, 1)),
        metadata=_doc(
            "per task, the units every layer keeps whatever the floor says "
            "(lt.TrimOptions.min_units; --set min_units=3)"
        ),
    )
    task_scope: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_doc("per task, a scope that replaces `scope` there (--scope resets it)"),
    )
    task_config: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_doc(
            "runner settings a task sets for itself (amount, levels, methods, criteria, "
            "criterion_options, safeguards: the fields it changes), e.g. the generative "
            "example's deeper levels"
        ),
    )
    safeguards: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType(lt.Safeguards().to_dict()),
        metadata=_doc("selection safeguards: step_cap, keep_floor, cost (lt.Safeguards)"),
    )

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        if self.data not in ("rendered", "synthetic"):
            raise ValueError(f"data must be rendered or synthetic, got {self.data!r}")
        for name in (
            "rewind_epochs",
            "max_epochs",
            "patience",
            "examples",
            "epoch_examples",
            "batch_size",
            "plateau_patience",
            "lr",
            "reference",
        ):
            mapping = getattr(self, name)
            if set(mapping) != set(TASKS):
                raise ValueError(f"profile {self.name!r}: {name} must name every task")
        for task, scope in self.task_scope.items():
            if task not in TASKS or scope not in lt.options.SCOPES:
                raise ValueError(
                    f"profile {self.name!r}: task_scope wants a task of {sorted(TASKS)} and a "
                    f"scope of {lt.options.SCOPES}, got {task!r}: {scope!r}"
                )

        for task, own in self.task_config.items():
            unknown = set(own) - set(TASK_CONFIG_FIELDS)
            if task not in TASKS or unknown:
                raise ValueError(
                    f"profile {self.name!r}: task_config wants a task of {sorted(TASKS)} and "
                    f"fields of {list(TASK_CONFIG_FIELDS)}, got {task!r}: {sorted(own)}"
                )

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each field's description, e.g. for documentation."""
        return lt.options.field_help(cls)

    def train_settings(self, task: str) -> TrainSettings:
        """How each level of ``task`` is trained under this profile."""
        return TrainSettings(
            max_epochs=self.max_epochs[task],
            patience=self.patience[task],
            rewind_epochs=min(self.rewind_epochs[task], self.max_epochs[task]),
            batch_size=self.batch_size[task],
            lr=self.lr[task],
            weight_decay=self.weight_decay,
            plateau_factor=self.plateau_factor,
            plateau_patience=self.plateau_patience[task],
            transpose=self.transpose if task == "chord" else 0,
            epoch_examples=self.epoch_examples[task],
            kd_temperature=self.kd_temperature,
            kd_weight=self.kd_weight,
            reference=dict(self.reference[task]),
        )

    def scope_for(self, task: str) -> str:
        """The scope ``task``'s units are ranked in: its own where ``task_scope`` names one."""
        return self.task_scope.get(task, self.scope)

    def with_scope(self, scope: str) -> Profile:
        """A copy that ranks every task's units in ``scope`` (no per-task scope)."""
        if scope not in lt.options.SCOPES:
            raise ValueError(f"scope must be one of {lt.options.SCOPES}, got {scope!r}")
        return dataclasses.replace(self, scope=scope, task_scope=MappingProxyType({}))

    def config(self, task: str) -> lt.LotteryConfig:
        """The runner's configuration of ``task``'s lottery (with ``task_config``'s own fields)."""
        fields: dict[str, Any] = {
            "levels": self.levels,
            "amount": self.amount,
            "methods": self.methods,
            "criteria": self.criteria,
            **self.task_config.get(task, {}),
        }
        options = fields.get("criterion_options", {})  # only for the criteria the run ranks by
        fields["criterion_options"] = {k: v for k, v in options.items() if k in fields["criteria"]}
        safeguards = {**self.safeguards, **fields.pop("safeguards", {})}  # the fields it names
        return lt.LotteryConfig(
            task=task,
            replicates=self.replicates,
            scope=self.scope_for(task),
            normalize=self.normalize,
            min_units=self.min_units[task],
            safeguards=lt.Safeguards(**safeguards),
            rewind_fraction=self.rewind_fraction(task),
            seed=self.seed,
            earlybird=self.earlybird_options(),
            **fields,
        )

    def earlybird_options(self) -> dict[str, float]:
        """The monitors' threshold, window and guard where they differ from ``lt.EarlyBird``'s
        defaults (runs at the defaults keep their directory), and only for @earlybird runs."""
        if not any(lt.methods.split_pacing(m)[1] == "earlybird" for m in self.methods):
            return {}
        options = {
            "threshold": self.earlybird_threshold,
            "window": self.earlybird_window,
            "min_drop": self.earlybird_min_drop,
        }
        return {k: v for k, v in options.items() if v != EARLYBIRD_DEFAULTS[k]}

    def rewind_fraction(self, task: str) -> float:
        """W_k's place as a share of the cap on epochs (what the runner's config records)."""
        return min(self.rewind_epochs[task], self.max_epochs[task]) / self.max_epochs[task]

    def settings(
        self, task: str, data_root: str | None = None, soundfont: str | None = None
    ) -> dict[str, Any]:
        """Everything outside the runner's configuration that changes ``task``'s results."""
        train = dataclasses.asdict(self.train_settings(task))
        if not any(lt.methods.split_method(m)[1] for m in self.methods):
            # distillation's settings change nothing without a +kd method: runs made before
            # they existed keep their directory
            del train["kd_temperature"], train["kd_weight"]
        if not train["reference"]:  # trained like the levels: runs made before keep their hash
            del train["reference"]
        data: dict[str, Any]
        if data_root is None:
            data = {
                "source": self.data,
                "examples": self.examples[task],
                "fractions": list(self.fractions),
                "seed": self.seed,
            }
            if self.data == "rendered":
                sf2 = Path(soundfont) if soundfont is not None else default_soundfont()
                data["soundfont"] = {"name": sf2.name, "sha256": soundfont_fingerprint(sf2)}
                data.update(render_fields(task))  # pitch's held-out timbres; others: nothing
        else:
            data = {
                "source": str(Path(data_root).resolve() / REAL_DATA[task]),
                "limit": self.examples[task] if self.cap_real_data else None,
                "seed": self.seed,
            }
        return {
            "size": self.size,
            "train": train,
            "data": data,
            "criterion_batches": self.criterion_batches,
        }

    def override(
        self,
        replicates: int | None = None,
        levels: int | None = None,
        epochs: int | None = None,
        methods: Sequence[str] | None = None,
        criteria: Sequence[str] | None = None,
    ) -> Profile:
        """A copy with the command line's overrides (``epochs``: the cap, for every task)."""
        changes: dict[str, Any] = {}
        given = {"methods": methods, "levels": levels, "criteria": criteria}
        dropped = {name for name, value in given.items() if value is not None}
        if dropped:  # the command line's methods and levels hold for every task
            changes["task_config"] = MappingProxyType(
                {
                    t: {k: v for k, v in c.items() if k not in dropped}
                    for t, c in self.task_config.items()
                }
            )
        if methods is not None:
            changes["methods"] = tuple(methods)
        if criteria is not None:
            changes["criteria"] = tuple(criteria)
        if replicates is not None:
            changes["replicates"] = replicates
        if levels is not None:
            changes["levels"] = levels
        if epochs is not None:
            changes["max_epochs"] = per_task(**dict.fromkeys(TASKS, epochs))
        return dataclasses.replace(self, **changes) if changes else self

    def with_settings(self, items: Sequence[str], tasks: Sequence[str]) -> Profile:
        """A copy with ``FIELD=VALUE`` changes of number fields; a per-task field changes for
        ``tasks`` only. Anything else (an unknown field, a list, a bad number) exits saying so."""
        changes: dict[str, Any] = {}
        numbers = {f.name: f for f in dataclasses.fields(self)}
        for item in items:
            name, _, text = item.partition("=")
            if name.startswith("reference."):
                changes["reference"] = _reference_change(
                    changes.get("reference", self.reference), item, tasks
                )
                continue
            if name.startswith("safeguards."):
                changes["task_config"] = _safeguard_change(
                    changes.get("task_config", self.task_config), item, tasks
                )
                continue
            current = changes.get(name, getattr(self, name, None))
            if name not in numbers or not text or name in ("safeguards", "reference"):
                raise SystemExit(f"--set wants FIELD=VALUE with a number field, got {item!r}")
            if isinstance(current, Mapping):
                value = _number(item, text, current[tasks[0]])
                changes[name] = MappingProxyType({**current, **dict.fromkeys(tasks, value)})
            elif isinstance(current, bool) or not isinstance(current, int | float):
                raise SystemExit(f"--set: {name} is not a number field ({item!r})")
            else:
                changes[name] = _number(item, text, current)
        return dataclasses.replace(self, **changes) if changes else self


def _reference_change(
    current: Mapping[str, Mapping[str, int]], item: str, tasks: Sequence[str]
) -> Mapping[str, Mapping[str, int]]:
    """``current`` with ``reference.FIELD=VALUE`` set for ``tasks``, or exit saying why."""
    name, _, text = item.partition("=")
    key = name.removeprefix("reference.")
    if key not in REFERENCE_FIELDS or not text:
        raise SystemExit(f"--set {item!r}: the reference may set {list(REFERENCE_FIELDS)}")
    value = _number(item, text, 0)
    if not isinstance(value, int) or value < 1:
        raise SystemExit(f"--set {item!r}: expected a positive integer")
    return MappingProxyType(
        {t: MappingProxyType({**v, key: value}) if t in tasks else v for t, v in current.items()}
    )


def _safeguard_change(
    current: Mapping[str, Mapping[str, Any]], item: str, tasks: Sequence[str]
) -> Mapping[str, Mapping[str, Any]]:
    """``current`` task_config with ``safeguards.FIELD=VALUE`` set for ``tasks`` (over what a
    task sets itself), or exit saying why."""
    name, _, text = item.partition("=")
    key = name.removeprefix("safeguards.")
    numeric = [k for k, v in lt.Safeguards().to_dict().items() if isinstance(v, float)]
    if key not in numeric or not text:
        raise SystemExit(f"--set {item!r}: the safeguards may set {numeric}")
    value = _number(item, text, 0.0)
    fields: dict[str, Any] = {key: value}
    try:
        lt.Safeguards(**fields)
    except ValueError as err:
        raise SystemExit(f"--set {item!r}: {err}") from None
    changed = {t: dict(c) for t, c in current.items()}
    for task in tasks:
        own = changed.setdefault(task, {})
        own["safeguards"] = {**own.get("safeguards", {}), key: value}
    return MappingProxyType(changed)


def _number(item: str, text: str, like: Any) -> int | float | None:
    """``text`` as a number of ``like``'s type (an int where ``like`` is None), or exit."""
    if text.lower() == "none" and like is None:
        return None
    try:
        return float(text) if isinstance(like, float) else int(text)
    except ValueError:
        kind = "a number" if isinstance(like, float) else "an integer"
        raise SystemExit(f"--set {item!r}: expected {kind}") from None
