"""Atomic file writes: readers see the old file or the whole new one, never half of it.

Bytes go to a temporary file in the target's folder, are flushed to disk and renamed over the
target. Modes follow ``open()``: a new file gets ``0o666 & ~umask``, a replaced file keeps its
mode. Temporary files are named ``.<target>~<host>~<pid>~<token>.tmp``; one left behind by a
process that died (killed mid-write) is removed by the next write of the same target from the
same host, once its pid is gone. Users may delete such files whenever no write is running.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["write_bytes_atomic", "atomic_file", "fsync_dir", "temp_name", "stale_temps"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:64]


def temp_name(target: Path, pid: int | None = None, token: str | None = None) -> Path:
    """The temporary file a write of ``target`` uses (pid and token make it unique)."""
    pid = os.getpid() if pid is None else pid
    token = secrets.token_hex(4) if token is None else token
    return target.parent / f".{target.name}~{_HOST}~{pid}~{token}.tmp"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def stale_temps(target: Path) -> list[Path]:
    """Temporary files of ``target`` left by dead processes of this host (safe to delete)."""
    pattern = re.compile(
        rf"^\.{re.escape(target.name)}~{re.escape(_HOST)}~(?P<pid>\d+)~[0-9a-f]+\.tmp$"
    )
    try:
        names = os.listdir(target.parent or ".")
    except OSError:
        return []
    out = []
    for name in names:
        match = pattern.match(name)
        if match and not _pid_alive(int(match["pid"])):
            out.append(target.parent / name)
    return out


def _new_mode(target: Path) -> int | None:
    """The mode to give the written file: the replaced file's; None lets the umask decide."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return None


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; on success it is flushed and
    renamed over ``path`` (keeping the mode of a file it replaces), on failure removed."""
    target = Path(path)
    for old in stale_temps(target):
        try:
            old.unlink()
        except OSError:
            pass
    tmp = temp_name(target)
    try:
        yield tmp
        mode = _new_mode(target)
        with open(tmp, "rb+") as fh:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` so that readers see the old file or the whole new one."""
    with atomic_file(path) as tmp:
        # 0o666 through os.open applies the process umask, exactly as open() does
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable where the platform allows opening directories."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
