"""A local process pool for ``Lottery.run``: spawned workers that die with the process that
started them, so an interrupted run leaves no worker training on behind it."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]

#: Why a pool cannot be made while a spawned worker starts up.
_UNGUARDED = (
    "process_pool() was called while a spawned worker process was importing the main script: "
    "each worker re-runs the script's top level, so the code that makes the pool and runs the "
    'lottery must sit under `if __name__ == "__main__":`'
)


def process_pool(workers: int, *, check_every: float = 1.0) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes for ``Lottery.run(executor=)``.

    Spawned, not forked (a fork of a process running torch may hang). Each worker checks every
    ``check_every`` seconds that the process which made the pool is alive and exits when it is
    not: a plain pool's workers go on training after their parent is killed, holding their
    cells' locks. A worker that exits loses only its level in progress (files are written
    atomically, and its locks die with it).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"process_pool: workers must be a positive int, got {workers!r}")
    if not check_every > 0:
        raise ValueError(f"process_pool: check_every must be > 0 seconds, got {check_every!r}")
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(_UNGUARDED)
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
        initargs=(os.getpid(), float(check_every)),
    )


def _watch_parent(parent: int, check_every: float) -> None:
    """Start a daemon thread that ends this worker once ``parent`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_every)
        os._exit(1)

    threading.Thread(target=watch, name="lotterytrim-parent-watch", daemon=True).start()
