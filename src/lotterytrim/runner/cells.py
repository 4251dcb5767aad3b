"""Lottery cells as tasks: a grid run in this process, or through any executor.

A cell is one (replicate, method, criterion) chain of levels; a replicate's reference is a task
of its own, and its cells are handed out once it is written. Tasks write straight into the shared
run directory under the cells' own locks, so a killed worker loses only its level in progress;
every level is seeded from its own labels, so a cell computes the same wherever it runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from lotterytrim.errors import CellFailedError
from lotterytrim.runner.grid import GridRun
from lotterytrim.runner.rundir import cell_folder, finished_levels, reference_files

__all__ = ["Cell", "CellRunner", "check_picklable", "on_device"]

_POLL_SECONDS = 0.5  # how often futures that are not concurrent.futures ones are asked
_PROCESS_LOCK = threading.Lock()  # one task at a time per process: torch's RNG is global


@dataclass(frozen=True)
class Cell:
    """One task of a grid: a lottery cell, or (method ``"reference"``) a replicate's reference."""

    replicate: int
    method: str
    criterion: str

    @property
    def is_reference(self) -> bool:
        """Whether this task trains the replicate's reference (level 0)."""
        return self.method == "reference"

    @property
    def name(self) -> str:
        """``replicate-R/METHOD-CRITERION`` (the cell's folder) or ``replicate-R/reference``."""
        tail = "reference" if self.is_reference else f"{self.method}-{self.criterion}"
        return f"replicate-{self.replicate}/{tail}"


class CellRunner:
    """A grid's run, its arguments checked (before any file is written): ``run()`` runs it."""

    def __init__(
        self,
        lottery: GridRun,
        executor: Any,
        devices: Any,
        threads: int | None,
        replicates: Iterable[int] | None = None,
    ) -> None:
        self.replicates = _replicates(replicates, lottery.config.replicates)
        self.place = _Placement(devices)
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if executor is not None:
            if not callable(getattr(executor, "submit", None)):
                raise TypeError(
                    f"executor must be a concurrent.futures.Executor (anything with "
                    f"submit(fn, *args) returning a future), got {type(executor).__name__}"
                )
            check_picklable(lottery)
        self.lottery, self.executor, self.threads = lottery, executor, threads

    def run(self) -> None:
        """Run every reference and cell of the grid, here or through the executor."""
        config = self.lottery.config
        cells = [Cell(r, m, c) for r in self.replicates for m, c in config.runs()]
        if self.executor is None:
            _run_here(self.lottery, cells, self.place)
        else:
            _Grid(self.lottery, self.executor, self.place, self.threads).run(cells)


def _replicates(chosen: Iterable[int] | None, count: int) -> list[int]:
    """The replicates to run: all ``count`` of them, or the chosen ones, each checked."""
    if chosen is None:
        return list(range(count))
    picked = list(chosen)
    for r in picked:
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < count:
            raise ValueError(
                f"replicates: {r!r} is not a replicate of this lottery (0 to {count - 1})"
            )
    if not picked:
        raise ValueError("replicates: no replicate chosen")
    return sorted(set(picked))


def check_picklable(lottery: GridRun) -> None:
    """Refuse, naming it, a part of ``lottery`` that cannot be sent to a worker process."""
    try:
        pickle.dumps(lottery)
        return
    except Exception as whole:  # any pickling failure is reported below
        error: Exception = whole
    for name in ("build_model", "train", "evaluate", "data", "example_inputs"):
        value = getattr(lottery, name)
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"{name}={value!r} cannot be sent to a worker process: it is not picklable "
                f"({type(exc).__name__}: {exc}). With an executor, build_model, train, evaluate "
                f"and data must be module-level functions or picklable objects (an instance of "
                f"a module-level class, e.g. the methods of examples.mir.training.TaskRun); "
                f"lambdas, functions defined inside functions and open files are not"
            ) from exc
    raise TypeError(
        f"the {type(lottery).__name__} cannot be sent to a worker process: it is not "
        f"picklable ({type(error).__name__}: {error})"
    ) from error


@contextmanager
def on_device(device: str | None) -> Iterator[None]:
    """Make ``device`` the current CUDA device while a task runs (``"cuda"`` then means it)."""
    where = None if device is None else torch.device(device)
    if where is None or where.type != "cuda" or where.index is None:
        yield
        return
    previous = torch.cuda.current_device()
    torch.cuda.set_device(where)
    try:
        yield
    finally:
        torch.cuda.set_device(previous)


# ------------------------------------------------------------------------ placement
def _device_name(value: Any, what: str) -> str:
    """``value`` as a device name, or a ValueError naming ``what``."""
    if not isinstance(value, (str, torch.device)):
        raise ValueError(f"{what} must be a device name such as 'cuda:0', got {value!r}")
    try:
        return str(torch.device(value))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{what} = {value!r} is not a torch device: {exc}") from None


class _Placement:
    """Where tasks run: nowhere in particular, a list of device slots, or ``devices(cell)``.

    A slot list is leased: a task holds one slot while it runs and a task waits for a free one,
    so ``["cuda:0", "cuda:1"]`` runs at most one task per GPU at a time.
    """

    def __init__(self, devices: Any) -> None:
        self.fn: Callable[[Cell], Any] | None = None
        self.free: list[str] | None = None
        if devices is None:
            return
        if callable(devices):
            self.fn = devices
            return
        if isinstance(devices, (str, torch.device)):
            devices = [devices]
        if not isinstance(devices, Sequence) or not devices:
            raise ValueError(
                f"devices must be a non-empty list of device names, or a function of a cell "
                f"returning one, got {devices!r}"
            )
        self.free = [_device_name(d, f"devices[{i}]") for i, d in enumerate(devices)]

    def has_room(self) -> bool:
        return self.free is None or bool(self.free)

    def lease(self, cell: Cell) -> str | None:
        if self.free is not None:
            return self.free.pop(0)
        if self.fn is not None:
            value = self.fn(cell)
            return None if value is None else _device_name(value, f"devices({cell.name})")
        return None

    def release(self, device: str | None) -> None:
        if self.free is not None and device is not None:
            self.free.append(device)


# ------------------------------------------------------------------------ in this process
def _run_here(lottery: GridRun, cells: list[Cell], place: _Placement) -> None:
    """The cells one after another in this process, one bar step per level."""
    total = len(cells) * (lottery.config.levels + 1)
    with tqdm(
        total=total, desc=lottery.config.task, disable=not lottery.progress, unit="level"
    ) as bar:
        for cell in cells:
            device = place.lease(cell)
            try:
                with on_device(device):
                    placed = lottery.placed(device, lottery.progress)
                    placed.run_cell(cell.replicate, cell.method, cell.criterion, bar)
            finally:
                place.release(device)
            lottery.write_table()  # the rows are the record; the CSV is a convenience


# ------------------------------------------------------------------------ through an executor
@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_task(
    lottery: GridRun, cell: Cell, device: str | None, threads: int | None, parent: tuple[str, int]
) -> Cell:
    """One task, in whatever process the executor chose (the parent's thread count is kept)."""
    here = (socket.gethostname(), os.getpid())
    with _PROCESS_LOCK, _torch_threads(None if here == parent else threads), on_device(device):
        placed = lottery.placed(device, progress=False)
        if cell.is_reference:
            placed.reference(cell.replicate)
        else:
            placed.run_cell(cell.replicate, cell.method, cell.criterion)
    return cell


def _wait_any(futures: Sequence[Any]) -> list[Any]:
    """The finished ones among ``futures`` (at least one); any object with ``done()`` works."""
    if all(isinstance(f, cf.Future) for f in futures):
        finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return list(finished)
    while True:
        done = [f for f in futures if f.done()]
        if done:
            return done
        time.sleep(_POLL_SECONDS)


def _error(future: Any) -> BaseException | None:
    try:
        future.result()
    except BaseException as exc:  # a task's failure, whatever it is, is reported
        return exc
    return None


class _Grid:
    """Hands out references, then their cells, as tasks; one bar step per finished level."""

    def __init__(
        self, lottery: GridRun, executor: Any, place: _Placement, threads: int | None
    ) -> None:
        self.lottery, self.executor, self.place, self.threads = lottery, executor, place, threads
        self.parent = (socket.gethostname(), os.getpid())
        self.queue: deque[Cell] = deque()
        self.in_flight: dict[Any, tuple[Cell, str | None]] = {}
        self.failures: dict[Cell, BaseException] = {}
        self.broken = False  # the executor refused a task: hand out no more

    def run(self, cells: list[Cell]) -> None:
        lottery, levels = self.lottery, self.lottery.config.levels
        done = {c: finished_levels(self._folder(c), levels) for c in cells}
        waiting: dict[int, list[Cell]] = {}  # cells of a replicate whose reference is training
        for replicate in sorted({c.replicate for c in cells}):
            own = [c for c in cells if c.replicate == replicate]
            written = all(p.exists() for p in reference_files(lottery.directory, replicate))
            if written or all(done[c] > 1 for c in own):
                self.queue.extend(own)
            else:
                self.queue.append(Cell(replicate, "reference", "-"))
                waiting[replicate] = own
        finished: set[Cell] = set()
        with tqdm(
            total=len(cells) * (levels + 1),
            initial=sum(done.values()),
            desc=lottery.config.task,
            disable=not lottery.progress,
            unit="level",
        ) as bar:
            try:
                while self.queue or self.in_flight:
                    self._submit()
                    if not self.in_flight:
                        break
                    for future in _wait_any(list(self.in_flight)):
                        cell, device = self.in_flight.pop(future)
                        self.place.release(device)
                        error = _error(future)
                        if error is not None:
                            self.failures[cell] = error
                        elif cell.is_reference:
                            self.queue.extend(waiting.pop(cell.replicate))
                        else:
                            finished.add(cell)
                            bar.update(levels + 1 - done[cell])
                            lottery.write_table()
            except BaseException:  # Ctrl-C here: hand out nothing more, then stop
                for future in self.in_flight:
                    future.cancel()
                raise
            finally:
                lottery.write_table()
        if self.failures:
            failed = sum(not c.is_reference for c in self.failures)
            raise self._failed(len(cells) - len(finished) - failed)

    def _folder(self, cell: Cell) -> Any:
        return cell_folder(self.lottery.directory, cell.replicate, cell.method, cell.criterion)

    def _submit(self) -> None:
        """Hand queued tasks to the executor while device slots are free."""
        while self.queue and not self.broken and self.place.has_room():
            cell = self.queue.popleft()
            device = self.place.lease(cell)
            args = (self.lottery, cell, device, self.threads, self.parent)
            try:
                future = self.executor.submit(_run_task, *args)
            except Exception as exc:  # e.g. a broken process pool
                self.place.release(device)
                self.failures[cell] = exc
                self.broken = True
                return
            self.in_flight[future] = (cell, device)

    def _failed(self, not_run: int) -> CellFailedError:
        parts = [f"{c.name} failed: {type(e).__name__}: {e}" for c, e in self.failures.items()]
        rest = f" ({not_run} other cells not run)" if not_run > 0 else ""
        if any(isinstance(e, BrokenProcessPool) for e in self.failures.values()):
            rest += (
                ". A worker process ended abruptly: it was killed or ran out of memory, or the "
                'script that made the pool has no `if __name__ == "__main__":` guard, so each '
                "spawned worker re-ran it"
            )
        error = CellFailedError(
            f"lottery {'; '.join(parts)}{rest}. Every finished level is kept in "
            f"{self.lottery.directory}: run again to resume"
        )
        error.failures = {c.name: e for c, e in self.failures.items()}
        error.__cause__ = next(iter(self.failures.values()))
        return error
