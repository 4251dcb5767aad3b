"""The experiment runner: lotteries over replicates x methods x criteria, written as they finish.

Each replicate trains one reference (level 0) from its own seed and captures the rewind point
during that training. Every (method, criterion) pair then starts from a copy of that reference
and runs its levels: step the trimmer, train, evaluate, measure, save. Each finished level is
one JSON row plus one model file, both written atomically, so a crash loses at most the level
in progress and a second run with the same settings resumes where the first stopped. That
chain is the iterative pacing; methods paced ``@oneshot`` or ``@earlybird`` make each level
straight from the reference (``runner.pacing``).

The run directory is named by a hash of everything that changes results (the
:class:`LotteryConfig`, the user's ``settings``, the model architecture and the input shapes).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lotterytrim.calls import tensor_leaves
from lotterytrim.errors import LotteryError
from lotterytrim.runner.cells import Cell, CellRunner
from lotterytrim.runner.config import LotteryConfig, unprunable_modules
from lotterytrim.runner.context import LevelContext
from lotterytrim.runner.locks import cell_lock
from lotterytrim.runner.pacing import ReferenceWatch, chained_cost, reference_cost, run_paced_cell
from lotterytrim.runner.results import load_results, read_json
from lotterytrim.runner.rows import level_row
from lotterytrim.runner.rundir import (
    cell_folder,
    file_owner,
    finished_levels,
    foreign_file,
    level_name,
    reference_files,
    reference_params,
    resumable_levels,
    row_name,
    set_aside,
    slim_level,
    write_json,
)
from lotterytrim.runner.seeding import derive_seed, seed_everything
from lotterytrim.storage.atomic import write_bytes_atomic
from lotterytrim.storage.io import load, save
from lotterytrim.trimming.methods import split_method, split_pacing
from lotterytrim.trimming.state import load_trimmer_state
from lotterytrim.trimming.trimmer import LotteryTrimmer

__all__ = ["Lottery"]

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
    refuse at once, naming the holder's pid and host; negative: wait forever). ``device`` is
    the device the cells run on (``ctx.device``), set by ``run(devices=...)`` per cell.
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
        self.device: str | None = None
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
        shapes = [list(t.shape) for t in tensor_leaves(self.example_inputs)]
        return {
            "config": self.config.record(),
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

    def placed(self, device: str | None, progress: bool) -> Lottery:
        """This run as one task on ``device`` runs it: itself when ``device`` and ``progress``
        are its own, else a twin sharing its functions, config, data and run directory (what
        a cell computes) whose ``device`` and ``progress`` are the task's; self is unchanged."""
        if device == self.device and progress == self.progress:
            return self
        twin = copy.copy(self)
        twin.device, twin.progress = device, progress
        return twin

    # ---------------------------------------------------------------- results
    def results(self) -> pd.DataFrame:
        """Every row finished so far (this run or earlier ones), sorted by the row key."""
        return load_results(self.directory)

    def run(
        self,
        executor: Any = None,
        *,
        devices: Sequence[str] | Callable[[Cell], str] | None = None,
        threads: int | None = 1,
        replicates: Iterable[int] | None = None,
    ) -> pd.DataFrame:
        """Run or resume every replicate x (method, criterion) lottery; returns all rows.

        ``replicates`` runs only those (e.g. ``[1, 2]``): a replicate's rows depend on its own
        seed alone, so a long study can be split by replicate across sessions or machines
        into one run directory, and the rows are the same as from one run of them all.

        Without ``executor`` the cells run here, one after another. With one (a
        ``concurrent.futures.Executor``: a process pool, dask's ``Client.get_executor()``,
        submitit's) every reference and every cell is one task, and the results are the same.
        ``devices`` (a list of device slots, or ``cell -> device``) places cells; ``threads``
        is the torch thread count of worker processes (None: leave it). See ``runner.cells``.
        """
        runner = CellRunner(self, executor, devices, threads, replicates)  # checks them first
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(self.directory / "settings.json", self._identity)
        runner.run()
        return self.results()

    def write_table(self) -> pd.DataFrame:
        """Rewrite ``results.csv`` from the rows on disk (the rows are the record)."""
        table = self.results()
        blob = table.to_csv(index=False).encode("utf-8")
        write_bytes_atomic(self.directory / "results.csv", blob)
        return table

    # ---------------------------------------------------------------- one lottery
    def replicate_seed(self, replicate: int) -> int:
        """The base seed of a replicate's reference and levels."""
        return self.config.seed + replicate

    def run_cell(self, replicate: int, method: str, criterion: str, bar: Any = None) -> None:
        """Run one lottery cell under its lock; first finish slimming a crash interrupted.
        ``bar`` (a tqdm bar) is advanced by one per level, finished ones included."""
        bar = tqdm(disable=True) if bar is None else bar
        folder = cell_folder(self.directory, replicate, method, criterion)
        what = f"lottery cell {folder.relative_to(self.directory).as_posix()} of {self.directory}"
        with cell_lock(folder, ".lock", what, self.lock_timeout):
            if split_pacing(method)[1] != "iterative":  # levels of their own: nothing to slim
                return run_paced_cell(self, replicate, method, criterion, bar)
            for level in range(1, finished_levels(folder, self.config.levels) - 1):
                slim_level(folder / level_name(level), self._build)
            self._run_cell(replicate, method, criterion, bar)

    def _run_cell(self, replicate: int, method: str, criterion: str, bar: Any) -> None:
        folder = cell_folder(self.directory, replicate, method, criterion)
        owner = functools.partial(self.owner, replicate, method, criterion)
        done = resumable_levels(folder, self.config.levels, owner)
        if done > self.config.levels:
            bar.update(self.config.levels + 1)
            return
        bar.update(done)
        if done <= 1:
            ref = self.reference(replicate)
            model, trimmer = self.from_file(ref["file"], replicate, method, criterion, True)
            if done == 0:
                folder.mkdir(parents=True, exist_ok=True)
                row = {**ref["row"], "method": method, "criterion": criterion}
                self._finish(folder, 0, row, bar, model=None, trimmer=None)
                done = 1
        else:
            last = folder / level_name(done - 1)
            model, trimmer = self.from_file(last, replicate, method, criterion, False)
        params0 = reference_params(folder / row_name(0))
        for level in range(done, self.config.levels + 1):
            row = self._level(model, trimmer, replicate, method, criterion, level, params0)
            row.update(chained_cost(row, read_json(folder / row_name(level - 1))))
            self._finish(folder, level, row, bar, model=model, trimmer=trimmer)

    def from_file(
        self, path: Path, replicate: int, method: str, criterion: str, reference: bool
    ) -> tuple[nn.Module, LotteryTrimmer]:
        """Rebuild the model and its trimmer from a file holding the trimmer state
        (``reference``: a file saved before any step, by a ``trim`` trimmer)."""
        state = load_trimmer_state(path)
        if state is None:
            raise LotteryError(f"{path} holds no trimmer state to resume from")
        with torch.random.fork_rng(devices=[]):
            model = load(path, self._build)
        trimmer = self.make_trimmer(model, replicate, method, criterion)
        if reference:  # the reference was saved by a "trim" trimmer before any step
            state["meta"] = {**state["meta"], "method": split_method(method)[0]}
        trimmer.load_state_dict(state)
        return model, trimmer

    def make_trimmer(
        self, model: nn.Module, replicate: int, method: str, criterion: str
    ) -> LotteryTrimmer:
        """A trimmer of a cell's method and criterion on ``model``, as the config says."""
        config = self.config
        return LotteryTrimmer(
            model,
            self.example_inputs,
            criterion,
            config.amount,
            options=config.options,
            method=split_method(method)[0],
            unprunable=unprunable_modules(model, config.unprunable),
            seed=self.replicate_seed(replicate),
            criterion_options=config.criterion_options.get(criterion, {}),
        )

    def reference(self, replicate: int) -> dict[str, Any]:
        """The trained level-0 model of a replicate (trained once, shared by every pair):
        ``{"file": path, "row": row}``, trained under the replicate's lock when missing."""
        file, row_file = reference_files(self.directory, replicate)
        owner = self.owner(replicate, "reference", "-", 0)
        if row_file.exists() and file.exists() and foreign_file(file, owner) is None:
            return {"file": file, "row": read_json(row_file)}
        what = f"the reference of replicate {replicate} of {self.directory}"
        with cell_lock(file.parent, ".reference.lock", what, self.lock_timeout):
            problem = foreign_file(file, owner) if row_file.exists() and file.exists() else ""
            if problem is None:  # another process finished it meanwhile
                return {"file": file, "row": read_json(row_file)}
            if problem:  # a file that is not this replicate's reference: train it again
                set_aside(file, row_file, problem)
            return self._train_reference(replicate, file, row_file)

    def owner(self, replicate: int, method: str, criterion: str, level: int) -> dict[str, Any]:
        """What the header of this run's file of a cell's level names (see ``file_owner``)."""
        return file_owner(self.directory, self.config.task, replicate, method, criterion, level)

    def _train_reference(self, replicate: int, file: Path, row_file: Path) -> dict[str, Any]:
        """Train, measure and save the reference of ``replicate`` (its lock is held)."""
        seed = self.replicate_seed(replicate)
        seed_everything(seed)
        model = self._build()
        trimmer = self.make_trimmer(model, replicate, "trim", self.config.criteria[0])
        watch = ReferenceWatch.create(self, replicate, trimmer)  # None without @earlybird
        hook = None if watch is None else watch.after_epoch
        ctx = self.context(replicate, "reference", "-", 0, seed, None, trimmer.capture_rewind, hook)
        t0 = time.perf_counter()
        self.train(model, ctx)
        train_seconds = time.perf_counter() - t0
        if trimmer.rewind_point is None:
            raise LotteryError(
                "train() returned from the reference training without capturing the rewind "
                "point: loop over ctx.epochs(n) or call ctx.capture_rewind() during level 0"
            )
        trimmer.check_model()
        if watch is not None:  # snapshots before the row: a written reference has them all
            watch.finish(ctx.epochs_run, ctx.reported_loss)
        params = sum(p.numel() for p in model.parameters())
        row = level_row(self, model, params, params, ctx, train_seconds, 0.0, t0)
        row.update(reference_cost(row))
        row["path"] = file.relative_to(self.directory).as_posix()
        save(model, file, trimmer, metadata=self.owner(replicate, "reference", "-", 0))
        write_json(row_file, row)
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
        seed = derive_seed(self.replicate_seed(replicate), method, criterion, level)
        seed_everything(seed)
        data = self.data() if callable(self.data) else self.data
        trimmer.step(data=data)
        step_seconds = time.perf_counter() - t0
        ctx = self.context(replicate, method, criterion, level, seed, trimmer, None)
        t1 = time.perf_counter()
        self.train(model, ctx)
        train_seconds = time.perf_counter() - t1
        params = trimmer.live_params
        return level_row(self, model, params, params0, ctx, train_seconds, step_seconds, t0)

    def context(
        self,
        replicate: int,
        method: str,
        criterion: str,
        level: int,
        seed: int,
        trimmer: LotteryTrimmer | None,
        capture: Callable[[], object] | None,
        on_epoch: Callable[[int, float | None], None] | None = None,
    ) -> LevelContext:
        """What ``train`` gets for one level; levels after the reference get its teacher;
        ``on_epoch(epochs_run, loss)`` runs after each epoch of ``ctx.epochs``."""
        return LevelContext(
            task=self.config.task,
            method=method,
            criterion=criterion,
            replicate=replicate,
            level=level,
            seed=seed,
            trimmer=trimmer,
            rewind_fraction=self.config.rewind_fraction,
            capture=capture,
            progress=self.progress,
            device=self.device,
            reference=functools.partial(self._reference_model, replicate) if level else None,
            on_epoch=on_epoch,
        )

    def _reference_model(self, replicate: int) -> nn.Module:
        """A fresh copy of the replicate's trained reference, read from its file."""
        with torch.random.fork_rng(devices=[]):
            return load(reference_files(self.directory, replicate)[0], self._build)

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
            file = folder / level_name(level)
            meta = self.owner(row["replicate"], row["method"], row["criterion"], level)
            save(model, file, trimmer, metadata=meta)
            row["path"] = file.relative_to(self.directory).as_posix()
        write_json(folder / row_name(level), row)
        if level >= 2 and trimmer is not None:
            slim_level(folder / level_name(level - 1), self._build)
        bar.update(1)
