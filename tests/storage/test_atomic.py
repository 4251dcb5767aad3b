"""Atomic writes: modes follow the umask like open(), replaced files keep theirs, and temp files
of writers that died are cleaned up by the next write of the same target."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn

import lotterytrim as lt
from lotterytrim.storage.atomic import stale_temps, temp_name, write_bytes_atomic

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and pids")


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    lt.save(nn.Linear(3, 2), tmp_path / "m.lt")
    write_bytes_atomic(tmp_path / "rows.json", b"{}")
    assert _mode(tmp_path / "m.lt") == _mode(tmp_path / "rows.json") == 0o640


def test_replacing_keeps_the_existing_mode(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "m.lt"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    lt.save(nn.Linear(3, 2), path)
    assert _mode(path) == 0o644
    os.chmod(path, 0o600)
    lt.save(nn.Linear(3, 2), path)
    assert _mode(path) == 0o600


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "m.lt"
    dead = temp_name(target, pid=_dead_pid(), token="ab12")
    alive = temp_name(target, pid=os.getpid(), token="cd34")
    other = temp_name(tmp_path / "other.lt", pid=_dead_pid(), token="ef56")
    foreign = tmp_path / ".m.lt.junk.tmp"
    for p in (dead, alive, other, foreign):
        p.write_bytes(b"half a model")
    assert stale_temps(target) == [dead]
    lt.save(nn.Linear(3, 2), target)
    assert not dead.exists()
    assert alive.exists() and other.exists() and foreign.exists()
    assert lt.load(target, lambda: nn.Linear(3, 2)).out_features == 2
