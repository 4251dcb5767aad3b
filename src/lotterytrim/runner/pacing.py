"""Pacings: how a lottery cell reaches each level's size, and what each level cost.

``iterative`` (a plain method name) makes level L by one step from level L-1 after its
retraining (``Lottery`` runs it). ``METHOD@oneshot`` makes every level from the replicate's
trained reference, trimmed straight to ``(1 - amount) ** L`` of its parameters with
``trimmer.trim_to`` and retrained once. ``METHOD@earlybird`` does the same from the reference
as it was when the keep-set of that size settled during its training (early-bird tickets):
one :class:`~lotterytrim.trimming.earlybird.EarlyBird` monitor per (criterion, level) watches
the reference's epochs and writes its snapshot when it settles; every monitor keeps measuring
until the reference's training ends, and their distance curves are written to
``replicate-N/earlybird-curves.json`` (:data:`CURVES_NAME`). Paced levels do not depend on
each other, so each one resumes on its own.

Every row carries the cost of its cell up to it: ``total_epochs`` and ``total_seconds`` count
the share of the reference's training the level needed plus every training after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lotterytrim.errors import LotteryError
from lotterytrim.runner.rows import level_row
from lotterytrim.runner.rundir import (
    cell_folder,
    foreign_file,
    level_name,
    reference_files,
    reference_params,
    row_name,
    write_json,
)
from lotterytrim.runner.seeding import derive_seed, seed_everything
from lotterytrim.storage.io import save, saved_metadata
from lotterytrim.trimming.earlybird import EarlyBird
from lotterytrim.trimming.methods import get_method, split_method, split_pacing
from lotterytrim.trimming.trimmer import LotteryTrimmer

if TYPE_CHECKING:
    from lotterytrim.runner.lottery import Lottery

__all__ = [
    "CURVES_NAME",
    "ReferenceWatch",
    "chained_cost",
    "level_keep",
    "reference_cost",
    "run_paced_cell",
    "snapshot_name",
]


#: The early-bird distance curves of a replicate's reference, in its folder (see ReferenceWatch).
CURVES_NAME = "earlybird-curves.json"


def level_keep(amount: float, level: int) -> float:
    """The share of the reference's parameters level ``level`` keeps: ``(1 - amount) ** L``."""
    return (1.0 - amount) ** level


def snapshot_name(criterion: str, level: int) -> str:
    """The early-bird snapshot of ``criterion``'s keep-set for ``level``, in the replicate's
    folder: the reference's state when that keep-set settled."""
    return f"earlybird-{criterion}-level-{level:02d}.lt"


# ------------------------------------------------------------------------ costs
def _number(row: Mapping[str, Any], key: str) -> float | None:
    """A row's numeric value, or None where the row has none (rows written before it)."""
    value = row.get(key)
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else value


def _cost(epochs: float | None, seconds: float | None) -> dict[str, Any]:
    """The two cost columns; unknown (None) when any part is unknown."""
    return {
        "total_epochs": None if epochs is None else int(round(epochs)),
        "total_seconds": seconds,
    }


def reference_cost(row: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's cost columns: its own training."""
    return _cost(_number(row, "train_epochs"), _number(row, "seconds"))


def chained_cost(row: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """An iterative level's cost columns: the level before it plus this level."""
    parts = [_number(r, k) for r in (before, row) for k in ("total_epochs", "train_epochs")]
    secs = [_number(before, "total_seconds"), _number(row, "seconds")]
    epochs = None if parts[0] is None or parts[3] is None else parts[0] + parts[3]
    seconds = None if None in secs else secs[0] + secs[1]  # type: ignore[operator]
    return _cost(epochs, seconds)


def _paced_cost(
    row: Mapping[str, Any], reference: Mapping[str, Any], drawn: int | None
) -> dict[str, Any]:
    """A paced level's cost: the reference's epochs up to the draw (all of them for oneshot,
    ``drawn``; its seconds in proportion) plus this level's retraining."""
    ref_epochs, ref_seconds = _number(reference, "train_epochs"), _number(reference, "seconds")
    own_epochs, own_seconds = _number(row, "train_epochs"), _number(row, "seconds")
    if drawn is not None and ref_epochs is not None and ref_seconds is not None:
        ref_seconds = ref_seconds * (drawn / ref_epochs if ref_epochs else 1.0)
        ref_epochs = drawn
    epochs = None if ref_epochs is None or own_epochs is None else ref_epochs + own_epochs
    seconds = None if ref_seconds is None or own_seconds is None else ref_seconds + own_seconds
    return _cost(epochs, seconds)


# ------------------------------------------------------------------------ the reference
class ReferenceWatch:
    """The early-bird monitors of a reference's training: one per (criterion, level) of the
    ``@earlybird`` cells, updated after every epoch; each writes its snapshot when it settles,
    and those still unsettled write the trained reference when its training ends.

    A settled monitor keeps measuring until the training ends (its draw, ``drawn_epoch`` and
    snapshot stay as they were), so :meth:`finish` writes every monitor's whole distance curve
    to :data:`CURVES_NAME` (see :meth:`curves`). Updates run under a forked random state, so
    the reference trains as it would unwatched.
    """

    def __init__(
        self, lottery: Lottery, replicate: int, trimmer: LotteryTrimmer, criteria: list[str]
    ) -> None:
        config = lottery.config
        self.lottery, self.replicate, self.trimmer = lottery, replicate, trimmer
        self.folder = reference_files(lottery.directory, replicate)[0].parent
        self.data = lottery.data() if callable(lottery.data) else lottery.data
        self.epochs = 0
        self.updated: list[int] = []  # the epochs after which the monitors were updated
        self.losses: list[float | None] = []  # the validation loss reported at each update
        self.birds: dict[tuple[str, int], EarlyBird] = {}
        #: per monitor whose snapshot is written: its epoch and whether the monitor had settled
        self.drawn: dict[tuple[str, int], tuple[int, bool]] = {}
        options: dict[str, Any] = dict(config.earlybird)  # threshold, window; else EarlyBird's
        with torch.random.fork_rng(devices=[]):
            for criterion in criteria:
                watcher = trimmer
                if criterion != config.criteria[0]:  # the reference trimmer's criterion
                    model = trimmer.model
                    watcher = lottery.make_trimmer(model, replicate, "trim", criterion)
                for level in range(1, config.levels + 1):
                    keep = level_keep(config.amount, level)
                    self.birds[criterion, level] = EarlyBird(watcher, keep, **options)

    @classmethod
    def create(
        cls, lottery: Lottery, replicate: int, trimmer: LotteryTrimmer
    ) -> ReferenceWatch | None:
        """A watch for the ``@earlybird`` cells of ``lottery``, or None when it has none (the
        reference then trains with no monitor at all)."""
        config = lottery.config
        criteria = [c for m, c in config.runs() if split_pacing(m)[1] == "earlybird"]
        if not criteria or config.levels == 0:
            return None
        return cls(lottery, replicate, trimmer, sorted(set(criteria)))

    def after_epoch(self, epochs: int, loss: float | None = None) -> None:
        """Update every monitor after ``epochs`` epochs, with the validation ``loss`` the
        training reported for it (``ctx.report_loss``); snapshot those that settle now."""
        if loss is None and any(bird.min_drop for bird in self.birds.values()):
            raise LotteryError(
                "the @earlybird monitors have a min_drop and need each epoch's validation loss: "
                "call ctx.report_loss(val_loss) in every epoch of the reference's training"
            )
        self.epochs = epochs
        self.updated.append(epochs)
        self.losses.append(loss)
        for key, bird in self.birds.items():
            with torch.random.fork_rng(devices=[]):
                bird.update(self.data, loss=loss)
            if bird.settled and key not in self.drawn:
                self._snapshot(*key, epochs, True)

    def finish(self, epochs: int, loss: float | None = None) -> None:
        """At the end of the reference's training: a last update when the loop was left early
        (its last epoch had no update), the trained reference for every unsettled monitor,
        then every monitor's curve (:data:`CURVES_NAME`)."""
        if epochs == 0:
            raise LotteryError(
                "an @earlybird method watches the reference's epochs, but train() ran none "
                "through ctx.epochs(n): loop over ctx.epochs(n) in the reference training"
            )
        if self.epochs < epochs:  # with the loss reported in that last epoch, if any
            self.after_epoch(epochs, loss)
        for key in self.birds:
            if key not in self.drawn:
                self._snapshot(*key, epochs, False)
        write_json(self.folder / CURVES_NAME, self.curves())

    def curves(self) -> dict[str, Any]:
        """Every monitor's record, as :data:`CURVES_NAME` holds it: ``epochs`` (the reference's
        epochs), ``distance_epochs`` and ``monitors``, one per (criterion, level) with its
        ``keep`` share, ``threshold``, ``window``, ``min_drop``, ``opened_epoch`` (the epoch
        its guard opened; None while the loss had not fallen), ``drawn_epoch`` (None when it
        never settled), ``settled``, ``distances`` and ``layer_distances`` (per prunable group);
        ``losses`` holds the validation loss reported at each update (None where none was).

        The monitors are updated after every epoch, so distance ``i`` compares the keep-sets
        after epochs ``i + 1`` and ``i + 2``: a curve holds ``epochs - 1`` distances, measured
        after the epochs of ``distance_epochs`` (2 to ``epochs``)."""
        monitors = []
        for (criterion, level), bird in self.birds.items():
            drawn, settled = self.drawn.get((criterion, level), (None, False))
            monitors.append(
                {
                    "criterion": criterion,
                    "level": level,
                    "keep": bird.keep,
                    "threshold": bird.threshold,
                    "window": bird.window,
                    "min_drop": bird.min_drop,
                    "opened_epoch": None
                    if bird.opened_at is None
                    else self.updated[bird.opened_at],
                    "drawn_epoch": drawn if settled else None,
                    "settled": int(settled),
                    "distances": list(bird.distances),
                    "layer_distances": {k: list(v) for k, v in bird.layer_distances.items()},
                }
            )
        return {
            "replicate": self.replicate,
            "epochs": self.epochs,
            "distance_epochs": self.updated[1:],
            "losses": list(self.losses),
            "monitors": monitors,
        }

    def _snapshot(self, criterion: str, level: int, epochs: int, settled: bool) -> None:
        """Write the model as it is now (with the reference trimmer's state: W_k once taken)."""
        meta = {
            **self.lottery.owner(self.replicate, "earlybird", criterion, level),
            "drawn_epoch": epochs,
            "settled": int(settled),
        }
        save(self.trimmer.model, self.folder / snapshot_name(criterion, level), self.trimmer, meta)
        self.drawn[criterion, level] = (epochs, settled)


# ------------------------------------------------------------------------ the cells
def run_paced_cell(lottery: Lottery, replicate: int, method: str, criterion: str, bar: Any) -> None:
    """Run (or resume) a ``@oneshot`` or ``@earlybird`` cell; its lock is held. Every level
    without a row is made from its source, so a finished level is never computed again."""
    levels = lottery.config.levels
    folder = cell_folder(lottery.directory, replicate, method, criterion)
    todo = [level for level in range(levels + 1) if not (folder / row_name(level)).exists()]
    bar.update(levels + 1 - len(todo))
    if not todo:
        return
    ref = lottery.reference(replicate)
    if todo[0] == 0:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / row_name(0), {**ref["row"], "method": method, "criterion": criterion})
        bar.update(1)
        todo = todo[1:]
    params0 = reference_params(folder / row_name(0))
    for level in todo:
        source, extra = _source(lottery, ref["file"], replicate, method, criterion, level)
        cell = (replicate, method, criterion, level)
        model, trimmer, row = _paced_level(lottery, source, *cell, params0)
        row.update(extra)
        row.update(_paced_cost(row, ref["row"], extra.get("drawn_epoch")))
        file = folder / level_name(level)
        meta = lottery.owner(replicate, method, criterion, level)
        # no trimmer state: a paced level is resumed from its source, never from this file
        save(model, file, metadata=meta, plan=trimmer.plan)
        row["path"] = file.relative_to(lottery.directory).as_posix()
        write_json(folder / row_name(level), row)
        bar.update(1)


def _source(
    lottery: Lottery, reference: Path, replicate: int, method: str, criterion: str, level: int
) -> tuple[Path, dict[str, Any]]:
    """The file a paced level starts from, and the columns it adds to the row."""
    if split_pacing(method)[1] != "earlybird":
        return reference, {}
    file = reference.parent / snapshot_name(criterion, level)
    where = f"{file.name} of replicate {replicate} of {lottery.directory}"
    if not file.exists():
        raise LotteryError(
            f"{method}/{criterion} level {level} needs the early-bird snapshot {where}, which "
            "its reference training did not write (snapshots are taken while the reference "
            "trains: was it trained with fewer levels?); delete replicate-"
            f"{replicate}/reference.* to train the reference again"
        )
    problem = foreign_file(file, lottery.owner(replicate, "earlybird", criterion, level))
    if problem is not None:
        raise LotteryError(f"{where} is not this run's snapshot: {problem}")
    meta = saved_metadata(file)
    return file, {"drawn_epoch": int(meta["drawn_epoch"]), "settled": int(meta["settled"])}


def _paced_level(
    lottery: Lottery,
    source: Path,
    replicate: int,
    method: str,
    criterion: str,
    level: int,
    params0: int,
) -> tuple[nn.Module, LotteryTrimmer, dict[str, Any]]:
    """Load ``source``, trim it straight to the level's size, train and evaluate it."""
    t0 = time.perf_counter()
    seed = derive_seed(lottery.replicate_seed(replicate), method, criterion, level)
    seed_everything(seed)
    model, trimmer = lottery.from_file(source, replicate, method, criterion, True)
    if get_method(split_method(method)[0]).rewinds and trimmer.rewind_point is None:
        raise LotteryError(
            f"{method} rewinds the survivors to W_k, but {source.name} was drawn before the "
            "reference captured W_k: use a method that keeps the trained values (lrr, "
            "finetune), or capture W_k earlier (rewind_fraction)"
        )
    data: Iterable[Any] | None = lottery.data() if callable(lottery.data) else lottery.data
    trimmer.trim_to(level_keep(lottery.config.amount, level), data=data)
    step_seconds = time.perf_counter() - t0
    ctx = lottery.context(replicate, method, criterion, level, seed, trimmer, None)
    t1 = time.perf_counter()
    lottery.train(model, ctx)
    train_seconds = time.perf_counter() - t1
    row = level_row(lottery, model, trimmer.params, params0, ctx, train_seconds, step_seconds, t0)
    return model, trimmer, row
