"""Per-cell locks of a lottery run directory, naming their holder when busy.

Each lottery cell (replicate, method, criterion folder) and each replicate's reference is run
by one process at a time. The lock is a ``filelock.FileLock`` (an OS lock, released by the
kernel when its process dies, so a killed run never blocks the next one); next to it the holder
writes ``<name>.owner`` (pid, host, start time) so that a refused process can say who holds it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from lotterytrim.errors import CellBusyError
from lotterytrim.storage.atomic import write_bytes_atomic

__all__ = ["cell_lock"]


def _holder(owner: Path) -> str:
    try:
        info = json.loads(owner.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on host {info['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid and host are not known yet)"


@contextmanager
def cell_lock(folder: Path, name: str, what: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold the lock ``folder/name`` while the block runs; busy: wait ``timeout`` s, then raise.

    ``what`` describes the cell for the error message. ``timeout < 0`` waits forever.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / name, timeout=timeout, thread_local=False)
    owner = folder / (name + ".owner")
    try:
        lock.acquire()
    except filelock.Timeout:
        raise CellBusyError(
            f"{what} is being run by {_holder(owner)}; a second process would redo its "
            f"levels. Wait for it to finish, or pass lock_timeout to wait (lock: {folder / name})"
        ) from None
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        write_bytes_atomic(owner, json.dumps(record).encode("utf-8"))
        yield
    finally:
        try:
            owner.unlink()
        except OSError:
            pass
        lock.release()
