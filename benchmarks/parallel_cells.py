"""Wall time of a lottery grid in this process against the same grid on local worker processes.

Run from the repository root:

    python benchmarks/parallel_cells.py [--task instrument] [--profile tiny] [--replicates 4]
                                        [--levels 4] [--epochs 40] [--workers 2] [--threads 1]
                                        [--out benchmarks/results]

One example task's lottery (``examples.mir.run``) is run three times from scratch, each in its own
run directory: in this process (``Lottery.run()``), on a pool of one worker process and on a
pool of ``--workers`` processes (``Lottery.run(executor=ProcessPoolExecutor(...))``, spawned).
A pool's time includes starting its processes. The data is made once, before any timing; the
three runs must give the same rows (timing columns aside), which is checked. To tell the
runner's overhead from a busy machine, a pure-Python loop is also timed twice in a row and in two
processes at once, just before and after the runs: what two processes can gain right then. Writes
``parallel_cells.csv`` and ``parallel_cells.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
# the repository's package and examples first
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from _machine import machine  # noqa: E402

from examples.mir.models import TASKS  # noqa: E402
from examples.mir.run import PROFILES, build_lottery  # noqa: E402

TARGET = 0.6  # 2 workers should take at most this share of the in-process time
_NUMBERS = ["method", "criterion", "replicate", "level", "error", "params", "macs"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="instrument", choices=list(TASKS))
    parser.add_argument("--profile", default="tiny", choices=list(PROFILES))
    parser.add_argument("--replicates", type=int, default=4)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=40, help="cap on the epochs of a level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every process")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    return parser.parse_args(argv)


def _run(args: argparse.Namespace, root: Path, workers: int) -> tuple[float, pd.DataFrame]:
    """Seconds to run the grid from scratch with ``workers`` processes (0: this process)."""
    profile = PROFILES[args.profile].override(args.replicates, args.levels, args.epochs)
    lottery, _ = build_lottery(args.task, profile, root, progress=False, log=None)
    start = time.perf_counter()
    if workers == 0:
        results = lottery.run()
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            results = lottery.run(executor=pool, threads=args.threads)
    return time.perf_counter() - start, results


def _spin(n: int) -> float:
    """Seconds of a pure-Python loop of ``n`` steps (no torch, no memory traffic)."""
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


def _headroom(n: int = 20_000_000) -> float:
    """Two loops in two processes at once, as a share of the same two loops one after another."""
    start = time.perf_counter()
    _spin(n)
    _spin(n)
    alone = time.perf_counter() - start
    with multiprocessing.get_context("fork").Pool(2) as pool:  # forked: starts in milliseconds
        pool.map(_spin, [1, 1])
        start = time.perf_counter()
        pool.map(_spin, [n, n], chunksize=1)
        both = time.perf_counter() - start
    return both / alone


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start_machine = machine()
    headroom = [_headroom()]
    rows, frames = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, args.workers):
            seconds, results = _run(args, Path(tmp) / f"w{workers}", workers)
            label = "in this process" if workers == 0 else f"{workers} worker process(es)"
            rows.append({"run": label, "workers": workers, "seconds": round(seconds, 1)})
            frames.append(results[_NUMBERS].reset_index(drop=True))
            print(f"{label}: {seconds:.1f} s", flush=True)
    headroom.append(_headroom())
    same = all(f.equals(frames[0]) for f in frames[1:])
    table = pd.DataFrame(rows)
    table["share of in-process"] = (table["seconds"] / table["seconds"].iloc[0]).round(2)
    table.to_csv(out / "parallel_cells.csv", index=False)
    profile = PROFILES[args.profile].override(args.replicates, args.levels, args.epochs)
    cells = args.replicates * len(profile.config(args.task).runs())
    ratio = table["seconds"].iloc[2] / table["seconds"].iloc[0]
    text = "\n".join(
        [
            f"Task {args.task}, profile {args.profile} with {args.replicates} replicates, "
            f"{args.levels} levels, at most {args.epochs} epochs per level: {args.replicates} "
            f"references and {cells} cells; {args.threads} torch thread(s) per process.",
            "",
            table.to_markdown(index=False),
            "",
            f"{args.workers} workers / in this process: {ratio:.2f} (target <= {TARGET}); "
            f"same rows in all three runs: {'yes' if same else 'NO'}. A pure-Python loop in 2 "
            f"processes took {headroom[0]:.2f} (before) and {headroom[1]:.2f} (after) of its time "
            f"one after the other: what 2 processes could gain on this machine then.",
            "",
            f"Machine at the start: {start_machine}.",
            f"Machine at the end: {machine()}.",
        ]
    )
    (out / "parallel_cells.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
