"""One process per lottery cell: a second one is refused naming the holder, a dead holder
blocks nobody, and slimming a crash interrupted is finished on resume."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_lottery import Recorder, _lottery

from lotterytrim.runner.locks import CellBusyError
from lotterytrim.storage.io import has_saved_state

_HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lotterytrim.runner.locks import cell_lock
    with cell_lock(Path(sys.argv[1]), sys.argv[2], "test"):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _hold(folder: Path, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder), name], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(
    ("where", "name"), [("replicate-0/trim-magnitude", ".lock"), ("replicate-0", ".reference.lock")]
)
def test_second_process_is_refused_naming_the_holder(tmp_path: Path, where: str, name: str) -> None:
    lottery = _lottery(tmp_path)
    proc = _hold(lottery.directory / where, name)
    try:
        with pytest.raises(CellBusyError, match=f"pid {proc.pid} on host {socket.gethostname()}"):
            lottery.run()
        assert not (lottery.directory / "replicate-0" / "trim-magnitude" / "level-01.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_blocks_nobody(tmp_path: Path) -> None:
    lottery = _lottery(tmp_path)
    proc = _hold(lottery.directory / "replicate-0" / "trim-magnitude", ".lock")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(lottery.run()) == 3


def test_lock_timeout_waits_for_the_holder(tmp_path: Path) -> None:
    lottery = _lottery(tmp_path)
    lottery.lock_timeout = 30.0
    proc = _hold(lottery.directory / "replicate-0" / "trim-magnitude", ".lock")
    t0 = time.monotonic()
    subprocess.Popen(["sh", "-c", f"sleep 1; kill {proc.pid}"])
    try:
        assert len(lottery.run()) == 3
        assert time.monotonic() - t0 >= 0.9
    finally:
        proc.kill()
        proc.wait()


def test_resume_finishes_interrupted_slimming(tmp_path: Path, monkeypatch) -> None:
    lottery = _lottery(tmp_path, Recorder(), levels=3)

    def crash(path, build):  # killed right after level 2's row, before slimming level 1
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr("lotterytrim.runner.lottery.slim_level", crash)
    with pytest.raises(KeyboardInterrupt):
        lottery.run()
    folder = lottery.directory / "replicate-0" / "trim-magnitude"
    assert has_saved_state(folder / "level-01.lt")
    monkeypatch.undo()
    train = Recorder()
    resumed = _lottery(tmp_path, train, levels=3)
    assert len(resumed.run()) == 4
    assert [c[3] for c in train.calls] == [3]
    assert not has_saved_state(folder / "level-01.lt")
    assert not has_saved_state(folder / "level-02.lt")
    assert has_saved_state(folder / "level-03.lt")
