"""The experiment runner: lotteries over replicates x methods x criteria, written as they finish.

Each replicate trains one reference (level 0) from its own seed and captures the rewind point
during that training. Every (method, criterion) pair then starts from a copy of that reference
and runs its levels: step the trimmer, train, evaluate, measure, save. Each finished level is
one JSON row plus one model file, both written atomically, so a crash loses at most the level
in progress and a second run with the same settings resumes where the first stopped.

The run directory is named by a hash of everything that changes results (the
:class:`LotteryConfig`, the user's ``settings``, the model architecture and the input shapes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ._lock import cell_lock
from .criteria import CRITERIA
from .errors import LotteryError
from .io import has_trimmer_state, load, load_state, load_trimmer_state, save, write_bytes_atomic
from .report import report
from .results import _RESERVED, _read_json, load_results
from .safeguards import Safeguards
from .selection import check_amount, check_options
from .trimmer import METHODS, LotteryTrimmer

__all__ = ["LevelContext", "Lottery", "LotteryConfig"]

_MASK_CRITERION = "magnitude"  # masking ranks single weights by magnitude, whatever the criteria


def _describe(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class LotteryConfig:
    """Settings of a lottery experiment that change its results (all of them are hashed)."""

    task: str = field(default="task", metadata=_describe("name of the task, used in rows"))
    levels: int = field(default=15, metadata=_describe("trimming levels after the reference"))
    amount: float = field(default=0.3, metadata=_describe("share of remaining weights per level"))
    replicates: int = field(default=5, metadata=_describe("independent lotteries (seeds)"))
    methods: tuple[str, ...] = field(
        default=("trim",), metadata=_describe("trim | finetune | reinit | mask")
    )
    criteria: tuple[str, ...] = field(
        default=("magnitude",), metadata=_describe("unit criteria by name; mask ignores them")
    )
    scope: str = field(default="global", metadata=_describe("rank units globally or per layer"))
    normalize: str = field(default="max", metadata=_describe("per-layer score normalisation"))
    min_units: int = field(default=1, metadata=_describe("units every layer keeps at least"))
    safeguards: Safeguards = field(
        default_factory=Safeguards,
        metadata=_describe(
            "per-layer limits of a step (step_cap, keep_floor) and cost-aware ranking (cost); "
            "a Safeguards, a mapping of its fields, True (defaults) or False (off)"
        ),
    )
    rewind_fraction: float = field(
        default=0.5, metadata=_describe("share of level-0 epochs after which W_k is captured")
    )
    seed: int = field(default=0, metadata=_describe("replicate r uses seed + r"))
    unprunable: tuple[str, ...] = field(
        default=(), metadata=_describe("names of modules whose output units are kept")
    )
    on_unsupported: str = field(
        default="error",
        metadata=_describe(
            "'error' raises on a parameter only an adapter could slice; 'protect' keeps its units"
        ),
    )
    criterion_options: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict,
        metadata=_describe("keyword arguments per criterion name, e.g. {'information': {...}}"),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "criteria", tuple(self.criteria))
        object.__setattr__(self, "unprunable", tuple(self.unprunable))
        object.__setattr__(self, "criterion_options", dict(self.criterion_options))
        object.__setattr__(self, "safeguards", Safeguards.coerce(self.safeguards))
        if not isinstance(self.task, str) or not self.task or "/" in self.task:
            raise ValueError(f"task must be a non-empty name without '/', got {self.task!r}")
        for name in ("levels", "replicates", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        if self.levels < 0:
            raise ValueError(f"levels must be >= 0, got {self.levels}")
        if self.replicates < 1:
            raise ValueError(f"replicates must be >= 1, got {self.replicates}")
        check_amount(self.amount)
        check_options(self.scope, self.normalize, self.min_units)
        if self.on_unsupported not in ("error", "protect"):
            raise ValueError(
                f"on_unsupported must be 'error' or 'protect', got {self.on_unsupported!r}"
            )
        if not 0.0 <= float(self.rewind_fraction) <= 1.0:
            raise ValueError(f"rewind_fraction must lie in [0, 1], got {self.rewind_fraction}")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be a non-empty list without repeats: {self.methods}")
        for method in self.methods:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r} in methods; choose from {METHODS}")
        if not self.criteria or len(set(self.criteria)) != len(self.criteria):
            raise ValueError(f"criteria must be a non-empty list without repeats: {self.criteria}")
        for criterion in self.criteria:
            if criterion not in CRITERIA:
                raise ValueError(
                    f"unknown criterion {criterion!r} in criteria; choose from {sorted(CRITERIA)}"
                )
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
        """The (method, criterion) pairs each replicate runs; masking runs once, by magnitude."""
        pairs: list[tuple[str, str]] = []
        for method in self.methods:
            if method == "mask":
                pairs.append((method, _MASK_CRITERION))
            else:
                pairs.extend((method, c) for c in self.criteria)
        return pairs

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each field's description, e.g. for a command-line parser."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


class LevelContext:
    """What the user's ``train`` function knows about the level it trains, and its hooks."""

    def __init__(
        self,
        *,
        task: str,
        method: str,
        criterion: str,
        replicate: int,
        level: int,
        seed: int,
        trimmer: LotteryTrimmer | None,
        rewind_fraction: float,
        capture: Callable[[], None] | None,
        progress: bool,
    ) -> None:
        self.task, self.method, self.criterion = task, method, criterion
        self.replicate, self.level, self.seed = replicate, level, seed
        self.trimmer = trimmer
        self.records: dict[str, float] = {}
        self._rewind_fraction = rewind_fraction
        self._capture = capture
        self._progress = progress
        self.captured = False

    def capture_rewind(self) -> None:
        """Capture the rewind point W_k now (level 0 only; later levels reuse it)."""
        if self._capture is None:
            raise LotteryError(
                f"capture_rewind() is for the reference training (level 0); this is level "
                f"{self.level}, whose rewind point was captured at level 0"
            )
        self._capture()
        self.captured = True

    def epochs(self, n: int) -> Iterator[int]:
        """Epoch indices 0..n-1 with a progress bar; at level 0 captures W_k on schedule.

        The capture happens once ``round(n * rewind_fraction)`` epochs have completed, unless
        :meth:`capture_rewind` was called already.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ctx.epochs(n) needs a positive integer, got {n!r}")
        at = round(n * self._rewind_fraction) if self._capture is not None else None
        desc = f"{self.method}/{self.criterion} r{self.replicate} L{self.level}"
        bar = tqdm(range(n), desc=desc, leave=False, disable=not self._progress, unit="epoch")
        for epoch in bar:
            if at == epoch and not self.captured:
                self.capture_rewind()
            yield epoch
        if at == n and not self.captured:
            self.capture_rewind()

    def record(self, **values: float) -> None:
        """Add extra numeric columns to this level's row (e.g. ``best_epoch=7``)."""
        for key, value in values.items():
            if key in _RESERVED:
                raise ValueError(f"ctx.record({key}=...) would overwrite the runner's column")
            self.records[key] = _number(value, f"ctx.record({key}=...)")


TrainFn = Callable[[nn.Module, LevelContext], Any]
EvaluateFn = Callable[[nn.Module], "float | Mapping[str, float]"]


class Lottery:
    """Run (and resume) lotteries over replicates x methods x criteria, one row per level.

    ``build_model()`` returns a fresh untrained model (torch is seeded before each call);
    ``train(model, ctx)`` trains it in place for one level and must build its optimizer from
    ``model.parameters()`` each time (steps replace parameters); ``evaluate(model)`` returns the
    test error, or a mapping with key ``"error"`` plus extra numeric columns. ``data`` (an
    iterable of batches, or a callable returning one) feeds data-driven criteria.

    Each lottery cell and each reference is run by one process at a time (a lock file in its
    folder); ``lock_timeout`` seconds is how long a second process waits for a busy one (0:
    refuse at once, naming the holder's pid and host; negative: wait forever).
    """

    def __init__(
        self,
        build_model: Callable[[], nn.Module],
        example_inputs: Any,
        train: TrainFn,
        evaluate: EvaluateFn,
        config: LotteryConfig,
        *,
        data: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
        settings: Mapping[str, Any] | None = None,
        root: str | os.PathLike[str] = "lottery_runs",
        progress: bool = True,
        latency: bool = False,
        lock_timeout: float = 0.0,
    ) -> None:
        if not isinstance(config, LotteryConfig):
            raise TypeError(f"config must be a LotteryConfig, got {type(config).__name__}")
        for name, fn in (("build_model", build_model), ("train", train), ("evaluate", evaluate)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self.build_model, self.example_inputs = build_model, example_inputs
        self.train, self.evaluate, self.config = train, evaluate, config
        self.data, self.progress, self.latency = data, progress, latency
        self.lock_timeout = float(lock_timeout)
        self.settings = dict(settings or {})
        try:
            json.dumps(self.settings, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"settings must be JSON-serialisable: {exc}") from exc
        self._identity = self._settings_record()
        digest = hashlib.sha256(
            json.dumps(self._identity, sort_keys=True).encode("utf-8")
        ).hexdigest()
        self.directory = Path(root) / f"{config.task}-{digest[:12]}"

    # ---------------------------------------------------------------- identity
    def _settings_record(self) -> dict[str, Any]:
        """Everything hashed into the run directory name, as written to settings.json."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = self._build()
        arch = hashlib.sha256(repr(model).encode("utf-8")).hexdigest()
        shapes = [
            list(t.shape) for t in _leaves(self.example_inputs) if isinstance(t, torch.Tensor)
        ]
        config = asdict(self.config)
        if config["on_unsupported"] == "error":
            del config["on_unsupported"]  # the default: runs started before it existed resume
        return {
            "config": json.loads(json.dumps(config)),
            "settings": self.settings,
            "model": type(model).__name__,
            "architecture_sha256": arch,
            "input_shapes": shapes,
        }

    def _build(self) -> nn.Module:
        model = self.build_model()
        if not isinstance(model, nn.Module):
            raise TypeError(f"build_model() must return an nn.Module, got {type(model).__name__}")
        return model

    # ---------------------------------------------------------------- results
    def results(self) -> pd.DataFrame:
        """Every row finished so far (this run or earlier ones), sorted by the row key."""
        return load_results(self.directory)

    def run(self) -> pd.DataFrame:
        """Run or resume every replicate x (method, criterion) lottery; returns all rows."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_json(self.directory / "settings.json", self._identity)
        pairs = self.config.runs()
        total = self.config.replicates * len(pairs) * (self.config.levels + 1)
        with tqdm(
            total=total, desc=self.config.task, disable=not self.progress, unit="level"
        ) as bar:
            for replicate in range(self.config.replicates):
                for method, criterion in pairs:
                    self._run_one(replicate, method, criterion, bar)
                    self._write_table()  # the rows are the record; the CSV is a convenience
        return self.results()

    def _write_table(self) -> pd.DataFrame:
        table = self.results()
        blob = table.to_csv(index=False).encode("utf-8")
        write_bytes_atomic(self.directory / "results.csv", blob)
        return table

    # ---------------------------------------------------------------- one lottery
    def _seed(self, replicate: int) -> int:
        return self.config.seed + replicate

    def _rundir(self, replicate: int, method: str, criterion: str) -> Path:
        return self.directory / f"replicate-{replicate}" / f"{method}-{criterion}"

    def _run_one(self, replicate: int, method: str, criterion: str, bar: Any) -> None:
        """Run one lottery cell under its lock; first finish slimming a crash interrupted."""
        folder = self._rundir(replicate, method, criterion)
        what = f"lottery cell {folder.relative_to(self.directory).as_posix()} of {self.directory}"
        with cell_lock(folder, ".lock", what, self.lock_timeout):
            for level in range(1, _finished_levels(folder, self.config.levels) - 1):
                self._slim(folder / _level_name(level))
            self._run_cell(replicate, method, criterion, bar)

    def _run_cell(self, replicate: int, method: str, criterion: str, bar: Any) -> None:
        folder = self._rundir(replicate, method, criterion)
        done = _finished_levels(folder, self.config.levels)
        if done > self.config.levels:
            bar.update(self.config.levels + 1)
            return
        bar.update(done)
        if done <= 1:
            ref = self._reference(replicate)
            model, trimmer = self._from_file(ref["file"], replicate, method, criterion, True)
            if done == 0:
                folder.mkdir(parents=True, exist_ok=True)
                row = {**ref["row"], "method": method, "criterion": criterion}
                self._finish(folder, 0, row, bar, model=None, trimmer=None)
                done = 1
        else:
            last = folder / _level_name(done - 1)
            model, trimmer = self._from_file(last, replicate, method, criterion, False)
        params0 = int(_read_json(folder / _row_name(0))["params"])
        for level in range(done, self.config.levels + 1):
            row = self._level(model, trimmer, replicate, method, criterion, level, params0)
            self._finish(folder, level, row, bar, model=model, trimmer=trimmer)

    def _from_file(
        self, path: Path, replicate: int, method: str, criterion: str, reference: bool
    ) -> tuple[nn.Module, LotteryTrimmer]:
        """Rebuild the model and its trimmer from a file holding the trimmer state."""
        state = load_trimmer_state(path)
        if state is None:
            raise LotteryError(f"{path} holds no trimmer state to resume from")
        with torch.random.fork_rng(devices=[]):
            model = load(path, self._build)
        trimmer = self._trimmer(model, replicate, method, criterion)
        if reference:  # the reference was saved by a "trim" trimmer before any step
            state["meta"] = {**state["meta"], "method": method}
        trimmer.load_state_dict(state)
        return model, trimmer

    def _trimmer(
        self, model: nn.Module, replicate: int, method: str, criterion: str
    ) -> LotteryTrimmer:
        config = self.config
        return LotteryTrimmer(
            model,
            self.example_inputs,
            criterion,
            config.amount,
            scope=config.scope,
            normalize=config.normalize,
            method=method,
            unprunable=_modules(model, config.unprunable),
            min_units=config.min_units,
            safeguards=config.safeguards,
            on_unsupported=config.on_unsupported,
            seed=self._seed(replicate),
            criterion_options=config.criterion_options.get(criterion, {}),
        )

    def _reference(self, replicate: int) -> dict[str, Any]:
        """The trained level-0 model of a replicate (trained once, shared by every pair)."""
        folder = self.directory / f"replicate-{replicate}"
        file, row_file = folder / "reference.lt", folder / "reference.json"
        if row_file.exists() and file.exists():
            return {"file": file, "row": _read_json(row_file)}
        what = f"the reference of replicate {replicate} of {self.directory}"
        with cell_lock(folder, ".reference.lock", what, self.lock_timeout):
            if row_file.exists() and file.exists():  # another process finished it meanwhile
                return {"file": file, "row": _read_json(row_file)}
            return self._train_reference(replicate, file, row_file)

    def _train_reference(self, replicate: int, file: Path, row_file: Path) -> dict[str, Any]:
        """Train, measure and save the reference of ``replicate`` (its lock is held)."""
        seed = self._seed(replicate)
        _seed_everything(seed)
        model = self._build()
        trimmer = self._trimmer(model, replicate, "trim", self.config.criteria[0])
        ctx = LevelContext(
            task=self.config.task,
            method="reference",
            criterion="-",
            replicate=replicate,
            level=0,
            seed=seed,
            trimmer=None,
            rewind_fraction=self.config.rewind_fraction,
            capture=trimmer.capture_rewind,
            progress=self.progress,
        )
        t0 = time.perf_counter()
        self.train(model, ctx)
        train_seconds = time.perf_counter() - t0
        if trimmer.rewind_point is None:
            raise LotteryError(
                "train() returned from the reference training without capturing the rewind "
                "point: loop over ctx.epochs(n) or call ctx.capture_rewind() during level 0"
            )
        trimmer._check_model()
        params = sum(p.numel() for p in model.parameters())
        row = self._measure(model, params, params, ctx, train_seconds, 0.0, t0)
        row["path"] = file.relative_to(self.directory).as_posix()
        save(model, file, trimmer, metadata={"task": self.config.task, "level": 0})
        _write_json(row_file, row)
        return {"file": file, "row": row}

    def _level(
        self,
        model: nn.Module,
        trimmer: LotteryTrimmer,
        replicate: int,
        method: str,
        criterion: str,
        level: int,
        params0: int,
    ) -> dict[str, Any]:
        """Step the trimmer, train and evaluate one level; returns its row (not yet written)."""
        t0 = time.perf_counter()
        seed = _derive(self._seed(replicate), method, criterion, level)
        _seed_everything(seed)
        data = self.data() if callable(self.data) else self.data
        result = trimmer.step(data=data)
        step_seconds = time.perf_counter() - t0
        ctx = LevelContext(
            task=self.config.task,
            method=method,
            criterion=criterion,
            replicate=replicate,
            level=level,
            seed=seed,
            trimmer=trimmer,
            rewind_fraction=self.config.rewind_fraction,
            capture=None,
            progress=self.progress,
        )
        t1 = time.perf_counter()
        self.train(model, ctx)
        train_seconds = time.perf_counter() - t1
        params = result.params_after if method == "mask" else trimmer.params
        return self._measure(model, params, params0, ctx, train_seconds, step_seconds, t0)

    def _measure(
        self,
        model: nn.Module,
        params: int,
        params0: int,
        ctx: LevelContext,
        train_seconds: float,
        step_seconds: float,
        t0: float,
    ) -> dict[str, Any]:
        """Evaluate and report one trained level as a row."""
        with torch.random.fork_rng(devices=[]):
            outcome = self.evaluate(model)
        row: dict[str, Any] = {
            "task": self.config.task,
            "method": ctx.method,
            "criterion": ctx.criterion,
            "replicate": ctx.replicate,
            "level": ctx.level,
        }
        row.update(_outcome(outcome))
        row.update(ctx.records)
        rep = report(
            model,
            self.example_inputs,
            latency=self.latency,
            unprunable=_modules(model, self.config.unprunable),
        )
        row.update(
            params=int(params),
            kept=float(params) / float(params0),
            macs=int(rep.macs),
            memory_bytes=int(rep.memory_bytes),
            disk_bytes=int(rep.disk_bytes),
            train_seconds=train_seconds,
            step_seconds=step_seconds,
        )
        if rep.latency_median_s is not None:
            row["latency_ms"] = rep.latency_median_s * 1e3
        row["seconds"] = time.perf_counter() - t0
        return row

    def _finish(
        self,
        folder: Path,
        level: int,
        row: dict[str, Any],
        bar: Any,
        *,
        model: nn.Module | None,
        trimmer: LotteryTrimmer | None,
    ) -> None:
        """Write a level's model (with the trimmer state) then its row; slim the level before."""
        if model is not None and trimmer is not None:
            file = folder / _level_name(level)
            meta = {"task": self.config.task, "level": level}
            save(model, file, trimmer, metadata=meta)
            row["path"] = file.relative_to(self.directory).as_posix()
        _write_json(folder / _row_name(level), row)
        if level >= 2 and trimmer is not None:
            self._slim(folder / _level_name(level - 1))
        bar.update(1)

    def _slim(self, path: Path) -> None:
        """Rewrite a superseded level file without the trimmer state (it is only for resuming)."""
        if not path.exists() or not has_trimmer_state(path):
            return
        _, plan, meta = load_state(path)
        with torch.random.fork_rng(devices=[]):
            model = load(path, self._build)
        save(model, path, metadata=meta, plan=plan)


# -------------------------------------------------------------------- small helpers
def _outcome(outcome: Any) -> dict[str, float]:
    """The row values of ``evaluate``'s answer: a number, or a mapping with ``"error"``."""
    if isinstance(outcome, Mapping):
        if "error" not in outcome:
            raise LotteryError(
                f"evaluate() returned a mapping without the key 'error': {sorted(outcome)}"
            )
        values = {str(k): _number(v, f"evaluate()[{k!r}]") for k, v in outcome.items()}
        clash = sorted(set(values) & (_RESERVED - {"error"}))
        if clash:
            raise LotteryError(f"evaluate() returned keys that clash with the runner's: {clash}")
        return values
    return {"error": _number(outcome, "evaluate()")}


def _number(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise LotteryError(f"{what} must be a number, got {value!r}")
    return float(value)


def _modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    out = []
    for name in names:
        try:
            out.append(model.get_submodule(name))
        except AttributeError as exc:
            raise ValueError(f"unprunable module {name!r} is not in the model") from exc
    return out


def _derive(seed: int, *parts: Any) -> int:
    """A stable 63-bit seed from a base seed and labels (independent of Python's hash salt)."""
    text = json.dumps([seed, *parts]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _level_name(level: int) -> str:
    return f"level-{level:02d}.lt"


def _row_name(level: int) -> str:
    return f"level-{level:02d}.json"


def _finished_levels(folder: Path, levels: int) -> int:
    """How many consecutive levels from 0 have a row (their files were written before it)."""
    done = 0
    while done <= levels and (folder / _row_name(done)).exists():
        done += 1
    return done


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in value.items()
    }
    write_bytes_atomic(path, json.dumps(clean, indent=1, sort_keys=True).encode("utf-8"))
