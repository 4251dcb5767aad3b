"""``lt.process_pool``: spawned workers that end with the process that made the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lotterytrim as lt

_PARENT = """
import os, sys, time
import lotterytrim as lt

if __name__ == "__main__":
    pool = lt.process_pool(1, check_every=0.1)
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_a_worker_exits_when_the_process_that_made_the_pool_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    src = str(Path(lt.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    worker = 0
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert worker != parent.pid and _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker went on after its parent was killed"
    finally:
        parent.kill()
        if worker and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_the_pool_runs_work_like_any_executor() -> None:
    with lt.process_pool(2) as pool:
        assert sorted(pool.map(abs, [-3, 2, -1])) == [1, 2, 3]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_a_bad_worker_count_is_refused(workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be a positive int"):
        lt.process_pool(workers)  # type: ignore[arg-type]


def test_a_bad_check_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="check_every"):
        lt.process_pool(1, check_every=0)


def test_a_script_without_a_main_guard_is_told_what_to_add(tmp_path: Path) -> None:
    """Spawned workers re-run an unguarded script; the pool it makes there says why it fails."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import lotterytrim as lt\n"
        "with lt.process_pool(1) as pool:\n"
        "    print(list(pool.map(abs, [-1])))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "process_pool() was called while a spawned worker" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
