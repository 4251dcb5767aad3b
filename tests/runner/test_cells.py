"""Lottery cells through executors: the sequential results (plans, headers and rows exactly,
weights to float rounding), with a process pool or a dask cluster; a killed worker loses and
duplicates nothing; failures name their cell."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from test_lottery import Recorder, _lottery

import lotterytrim as lt
from lotterytrim.runner.cells import Cell
from lotterytrim.storage.files import read_tensors

TIMING = ["train_seconds", "step_seconds", "seconds", "total_seconds"]
GRID = dict(methods=("trim", "finetune", "mask"), replicates=2, levels=2)
CELLS = 2 * 3  # replicates x (method, criterion) pairs


class LoggedTrain(Recorder):
    """Trains as ``Recorder`` does; appends one JSON line per call to ``log`` (any process).

    ``fail_at`` (replicate, method, level) raises there; ``kill_at`` SIGKILLs its own process
    there, the first time only.
    """

    def __init__(
        self,
        log: Path,
        fail_at: tuple[int, str, int] | None = None,
        kill_at: tuple[int, str, int] | None = None,
    ) -> None:
        super().__init__()
        self.log, self.fail_at, self.kill_at = log, fail_at, kill_at

    def __call__(self, model: torch.nn.Module, ctx: lt.LevelContext) -> None:
        line = {
            "cell": f"{ctx.replicate}/{ctx.method}-{ctx.criterion}",
            "level": ctx.level,
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "device": ctx.device,
        }
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        where = (ctx.replicate, ctx.method, ctx.level)
        if where == self.fail_at:
            raise ValueError("bad batch")
        marker = self.log.with_suffix(".killed")
        if where == self.kill_at and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        super().__call__(model, ctx)


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _pool(workers: int = 2) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> lt.Lottery:
    """The grid run in this process, one thread, as the reference for every executor."""
    root = tmp_path_factory.mktemp("sequential")
    lottery = _lottery(root, LoggedTrain(root / "train.log"), **GRID)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lottery.run()
    finally:
        torch.set_num_threads(threads)
    return lottery


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with _pool() as executor:
        yield executor


def _timeless(value: Any) -> Any:
    """A JSON value without its timings (the trimmer's history records step seconds)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        return _timeless(json.loads(value))
    return value


def _same_file(want: Path, got: Path) -> None:
    """Two model files hold the same header (timings aside: plans, shapes, trimmer state) and
    the same tensors: names, dtypes and shapes exactly, values to float rounding.

    Rounding is allowed because a rare run differs in the last bits of a few weights; a wrong
    seed, plan or rewind point changes them entirely.
    """
    (want_tensors, want_header), (got_tensors, got_header) = read_tensors(want), read_tensors(got)
    assert _timeless(dict(want_header)) == _timeless(dict(got_header)), got
    assert sorted(want_tensors) == sorted(got_tensors), got
    for name, a in want_tensors.items():
        b = got_tensors[name]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (got, name)
        torch.testing.assert_close(
            b, a, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{got} {n}: {m}"
        )


def _same_as_sequential(lottery: lt.Lottery, sequential: lt.Lottery) -> None:
    """Rows, model files and results.csv equal the sequential run's: timings aside, weights to
    float rounding (see :func:`_same_file`)."""
    want, got = sequential.results(), lottery.results()
    assert len(got) == CELLS * (GRID["levels"] + 1)
    pd.testing.assert_frame_equal(want.drop(columns=TIMING), got.drop(columns=TIMING))
    files = {p.relative_to(sequential.directory) for p in sequential.directory.rglob("*.lt")}
    assert files == {p.relative_to(lottery.directory) for p in lottery.directory.rglob("*.lt")}
    for name in sorted(files):
        _same_file(sequential.directory / name, lottery.directory / name)
    csv = [
        pd.read_csv(x.directory / "results.csv").drop(columns=TIMING) for x in (sequential, lottery)
    ]
    pd.testing.assert_frame_equal(*csv)


def test_a_process_pool_gives_the_sequential_results(
    tmp_path: Path, sequential: lt.Lottery, pool: ProcessPoolExecutor
) -> None:
    log = tmp_path / "train.log"
    lottery = _lottery(tmp_path, LoggedTrain(log), **GRID)
    assert lottery.directory.name == sequential.directory.name
    lottery.run(executor=pool)
    _same_as_sequential(lottery, sequential)
    calls = _calls(log)
    # every level trained once, the reference once per replicate, all in worker processes
    keys = [(c["cell"], c["level"]) for c in calls]
    assert len(keys) == len(set(keys)) == 2 + CELLS * GRID["levels"]
    assert sum(c["level"] == 0 for c in calls) == 2
    assert all(c["pid"] != os.getpid() and c["threads"] == 1 for c in calls)
    assert all(c["device"] is None for c in calls)
    # a second run finds everything finished and trains nothing
    lottery.run(executor=pool)
    assert len(_calls(log)) == len(calls)


def test_replicates_run_apart_give_the_sequential_results(
    tmp_path: Path, sequential: lt.Lottery, pool: ProcessPoolExecutor
) -> None:
    log = tmp_path / "train.log"
    lottery = _lottery(tmp_path, LoggedTrain(log), **GRID)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sequential run
    try:
        first = lottery.run(replicates=[1])  # here, replicate 1 alone
    finally:
        torch.set_num_threads(threads)
    assert set(first.replicate) == {1} and len(first) == CELLS // 2 * (GRID["levels"] + 1)
    alone = _calls(log)
    assert {c["cell"].split("/")[0] for c in alone} == {"1"}
    assert len(alone) == 1 + CELLS // 2 * GRID["levels"]  # its reference, then its levels
    lottery.run(executor=pool, replicates=(0, 1))  # replicate 1 is found finished
    assert {c["cell"].split("/")[0] for c in _calls(log)[len(alone) :]} == {"0"}
    _same_as_sequential(lottery, sequential)


def test_a_dask_cluster_gives_the_sequential_results(
    tmp_path: Path, sequential: lt.Lottery
) -> None:
    distributed = pytest.importorskip("distributed")
    lottery = _lottery(tmp_path, LoggedTrain(tmp_path / "train.log"), **GRID)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        lottery.run(executor=client.get_executor(pure=False))
    _same_as_sequential(lottery, sequential)
    assert all(c["pid"] != os.getpid() for c in _calls(tmp_path / "train.log"))


def test_a_killed_worker_loses_and_duplicates_nothing(
    tmp_path: Path, sequential: lt.Lottery
) -> None:
    log = tmp_path / "train.log"
    lottery = _lottery(tmp_path, LoggedTrain(log, kill_at=(0, "trim", 2)), **GRID)
    with (
        _pool() as executor,
        pytest.raises(lt.errors.CellFailedError, match="trim-magnitude") as info,
    ):
        lottery.run(executor=executor)
    assert "BrokenProcessPool" in str(info.value)
    assert "ran out of memory" in str(info.value) and "__main__" in str(info.value)
    before = lottery.results()
    folder = lottery.directory / "replicate-0" / "trim-magnitude"
    assert (folder / "level-01.json").exists() and not (folder / "level-02.json").exists()
    finished = set(zip(before["replicate"], before["method"], before["level"], strict=True))
    killed = len(_calls(log))
    with _pool() as executor:
        lottery.run(executor=executor)
    _same_as_sequential(lottery, sequential)
    rerun = _calls(log)[killed:]
    trained = [(int(c["cell"][0]), c["cell"][2:].split("-")[0], c["level"]) for c in rerun]
    assert len(trained) == len(set(trained))  # nothing trained twice
    assert not finished & set(trained)  # nothing finished trained again
    assert ("0", 0) not in {(c["cell"][0], c["level"]) for c in rerun}  # reference kept


def test_a_failing_cell_is_named_and_the_others_finish(
    tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    log = tmp_path / "train.log"
    train = LoggedTrain(log, fail_at=(0, "finetune", 1))
    lottery = _lottery(tmp_path, train, methods=("trim", "finetune"))
    with pytest.raises(lt.errors.CellFailedError, match="replicate-0/finetune-magnitude") as info:
        lottery.run(executor=pool, threads=2)
    assert "ValueError: bad batch" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert set(info.value.failures) == {"replicate-0/finetune-magnitude"}
    rows = lottery.results()
    assert sorted(rows.loc[rows.method == "trim", "level"]) == [0, 1, 2]
    assert sorted(rows.loc[rows.method == "finetune", "level"]) == [0]
    assert len(pd.read_csv(lottery.directory / "results.csv")) == 4
    assert {c["threads"] for c in _calls(log)} == {2}


class _Job:
    """A future as submitit returns it: ``done()`` and ``result()``, no concurrent.futures."""

    def __init__(self, future: Future[Any]) -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> Any:
        return self._future.result()

    def cancel(self) -> bool:
        return self._future.cancel()


class _Counting:
    """A thread pool whose futures are ``_Job``s; counts the most tasks in flight at once."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)
        self.in_flight: list[Future[Any]] = []
        self.most = 0

    def submit(self, fn: Any, *args: Any) -> _Job:
        self.in_flight = [f for f in self.in_flight if not f.done()]
        future = self.pool.submit(fn, *args)
        self.in_flight.append(future)
        self.most = max(self.most, len(self.in_flight))
        return _Job(future)


def test_devices_place_cells_and_slots_limit_tasks(tmp_path: Path, sequential: lt.Lottery) -> None:
    log = tmp_path / "a" / "train.log"
    log.parent.mkdir()
    lottery = _lottery(tmp_path / "a", LoggedTrain(log), **GRID)
    executor = _Counting(4)

    def where(cell: Cell) -> str:
        return "cpu" if cell.method in ("trim", "reference") else "cpu:0"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tasks in this process keep its thread count
    try:
        lottery.run(executor=executor, devices=where)
        _same_as_sequential(lottery, sequential)  # devices and a duck-typed executor alike
        placed = {(c["cell"].split("/")[1].split("-")[0], c["device"]) for c in _calls(log)}
        assert placed == {("reference", "cpu"), ("trim", "cpu"), ("finetune", "cpu:0")} | {
            ("mask", "cpu:0")
        }
        assert executor.most >= 3  # without slots every ready cell is handed out at once
        slots = _lottery(tmp_path / "b", LoggedTrain(tmp_path / "b.log"), **GRID)
        limited = _Counting(4)
        slots.run(executor=limited, devices=["cpu:0", "cpu:1"])
        assert limited.most <= 2
        assert {c["device"] for c in _calls(tmp_path / "b.log")} == {"cpu:0", "cpu:1"}
    finally:
        torch.set_num_threads(threads)


def test_in_process_runs_take_devices_too(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    lottery = _lottery(tmp_path, LoggedTrain(log), methods=("trim", "finetune"))
    lottery.run(devices="cpu")
    assert {c["device"] for c in _calls(log)} == {"cpu"}
    assert lottery.device is None  # the user's object is not changed


def test_unpicklable_functions_are_named(tmp_path: Path) -> None:
    def nested_train(model: torch.nn.Module, ctx: lt.LevelContext) -> None:
        Recorder()(model, ctx)

    lottery = _lottery(tmp_path, nested_train)
    with ThreadPoolExecutor(1) as executor, pytest.raises(TypeError, match="train=.*not picklable"):
        lottery.run(executor=executor)
    lottery = _lottery(tmp_path)
    lottery.evaluate = lambda model: 0.5
    with (
        ThreadPoolExecutor(1) as executor,
        pytest.raises(TypeError, match="evaluate=.*module-level"),
    ):
        lottery.run(executor=executor)
    assert not lottery.directory.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"executor": object()}, "executor must be a concurrent.futures.Executor"),
        ({"devices": []}, "devices must be a non-empty list"),
        ({"devices": ["cuda:0", "gpu0"]}, r"devices\[1\] = 'gpu0' is not a torch device"),
        ({"devices": [3]}, r"devices\[0\] must be a device name"),
        ({"threads": 0}, "threads must be a positive integer or None, got 0"),
        ({"replicates": [1]}, r"replicates: 1 is not a replicate of this lottery \(0 to 0\)"),
        ({"replicates": ["0"]}, "replicates: '0' is not a replicate"),
        ({"replicates": []}, "replicates: no replicate chosen"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    lottery = _lottery(tmp_path)
    with pytest.raises((TypeError, ValueError), match=match):
        lottery.run(**kwargs)
    assert not lottery.directory.exists()  # refused before anything is written
