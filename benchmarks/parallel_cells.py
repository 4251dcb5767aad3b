"""Wall time of a lottery grid in this process against the same grid on local worker processes.

Run from the repository root:

    python benchmarks/parallel_cells.py [--task instrument] [--profile tiny] [--replicates 6]
                                        [--levels 6] [--epochs 40] [--workers 2] [--threads 1]
                                        [--rounds 2] [--out benchmarks/results]

One example task's lottery (``examples.mir.run``) is run from scratch, each time in its own run
directory: in this process (``Lottery.run()``), on a pool of one worker process and on a pool of
``--workers`` processes (``Lottery.run(executor=ProcessPoolExecutor(...))``, spawned). A pool's
time includes starting its processes. The three runs are repeated ``--rounds`` times in a
rotated order and each keeps its best time, so a machine that gets busier during the benchmark
does not favour whichever ran first. Every run must give the same rows (timing columns aside),
which is checked. To tell the runner's overhead from a busy machine, a pure-Python loop and a
small conv net's training are each timed twice in a row and in two processes at once, just
before and after the runs: what two processes can gain right then. Writes
``parallel_cells.csv`` and ``parallel_cells.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

import lotterytrim as lt

ROOT = Path(__file__).resolve().parents[1]
# the repository's package and examples first
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from _machine import machine  # noqa: E402

from examples.mir.models import TASKS  # noqa: E402
from examples.mir.profiles import PROFILES  # noqa: E402
from examples.mir.run import build_lottery  # noqa: E402

TARGET = 0.6  # 2 workers should take at most this share of the in-process time
_NUMBERS = ["method", "criterion", "replicate", "level", "error", "params", "macs"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="instrument", choices=list(TASKS))
    parser.add_argument("--profile", default="tiny", choices=list(PROFILES))
    parser.add_argument("--replicates", type=int, default=6)
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=40, help="cap on the epochs of a level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every process")
    parser.add_argument(
        "--rounds", type=int, default=2, help="times each run is repeated, order rotated"
    )
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
        with lt.process_pool(workers) as pool:
            results = lottery.run(executor=pool, threads=args.threads)
    return time.perf_counter() - start, results


def _label(workers: int) -> str:
    return "in this process" if workers == 0 else f"{workers} worker process(es)"


def _spin(n: int) -> float:
    """Seconds of a pure-Python loop of ``n`` steps (no torch, no memory traffic)."""
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


def _conv_steps(n: int) -> float:
    """Seconds of ``n`` training steps of a small 1-d conv net on one thread (torch's share of
    a core: what a lottery cell does all day)."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(1, 32, 9, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv1d(32, 32, 9, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool1d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(net.parameters())
    x, y = torch.randn(16, 1, 4096, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    start = time.perf_counter()
    for _ in range(n):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def _headroom(work: Callable[[int], float], n: int, context: str) -> float:
    """``work(n)`` in two processes at once, as a share of the same two runs one after another:
    what a second process can gain on this machine right now (0.5 at best)."""
    start = time.perf_counter()
    work(n)
    work(n)
    alone = time.perf_counter() - start
    with multiprocessing.get_context(context).Pool(2) as pool:
        pool.map(work, [1, 1], chunksize=1)  # both processes started and warm
        start = time.perf_counter()
        pool.map(work, [n, n], chunksize=1)
        both = time.perf_counter() - start
    return both / alone


def _probes() -> dict[str, float]:
    """The two headroom probes: a pure-Python loop (forked) and small conv training (spawned:
    forking a process that has run torch's thread pools is not safe)."""
    return {
        "loop": _headroom(_spin, 20_000_000, "fork"),
        "conv": _headroom(_conv_steps, 150, "spawn"),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start_machine = machine()
    headroom = [_probes()]
    runs = (0, 1, args.workers)
    times: dict[int, list[float]] = {w: [] for w in runs}
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # rotate the order each round, so a machine growing busier does not favour one run
            for workers in runs[r % len(runs) :] + runs[: r % len(runs)]:
                where = Path(tmp) / f"r{r}-w{workers}"
                seconds, results = _run(args, where, workers)
                times[workers].append(seconds)
                frames.append(results[_NUMBERS].reset_index(drop=True))
                print(f"round {r + 1}: {_label(workers)}: {seconds:.1f} s", flush=True)
    headroom.append(_probes())
    same = all(f.equals(frames[0]) for f in frames[1:])
    table = pd.DataFrame(
        {
            "run": _label(w),
            "workers": w,
            "seconds (best)": round(min(times[w]), 1),
            "seconds (each round)": ", ".join(f"{t:.1f}" for t in times[w]),
        }
        for w in runs
    )
    table["share of in-process"] = (
        table["seconds (best)"] / table["seconds (best)"].iloc[0]
    ).round(2)
    table.to_csv(out / "parallel_cells.csv", index=False)
    profile = PROFILES[args.profile].override(args.replicates, args.levels, args.epochs)
    cells = args.replicates * len(profile.config(args.task).runs())
    ratio = table["seconds (best)"].iloc[2] / table["seconds (best)"].iloc[0]
    text = "\n".join(
        [
            f"Task {args.task}, profile {args.profile} with {args.replicates} replicates, "
            f"{args.levels} levels, at most {args.epochs} epochs per level: {args.replicates} "
            f"references and {cells} cells; {args.threads} torch thread(s) per process.",
            "",
            table.to_markdown(index=False),
            "",
            f"{args.workers} workers / in this process: {ratio:.2f} (target <= {TARGET}); "
            f"best of {args.rounds} round(s); same rows in every run: {'yes' if same else 'NO'}. "
            f"Two processes at once took, of their time one after the other: a pure-Python loop "
            f"{headroom[0]['loop']:.2f} (before) and {headroom[1]['loop']:.2f} (after), small "
            f"conv training {headroom[0]['conv']:.2f} and {headroom[1]['conv']:.2f}: what 2 "
            f"processes could gain on this machine then.",
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
