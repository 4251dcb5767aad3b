"""Peak memory of the data-driven criteria over N, 10N and 100N validation batches: flat?

Run from the repository root:

    python benchmarks/criterion_memory.py [--task instrument] [--size quick] [--batches 10]
                                          [--factors 1,10,100] [--batch 16]
                                          [--out benchmarks/results]

Each configuration (criterion x number of batches) runs in its own subprocess, so the
process's peak resident set size (``resource.getrusage(...).ru_maxrss``) belongs to it alone.
Batches are generated lazily from a seeded generator (the same batches on every pass), so the
data itself never accumulates. Reported per configuration: peak RSS, the peak above the RSS
just before scoring, tracemalloc's peak of Python allocations, the bytes of the criterion's
retained scores and the number of tensors alive after scoring that were not alive before.
Within the largest run of each criterion, the mean RSS over batches 1-10, 11-100, 101-1000, ...
(sampled as each batch is drawn) shows whether memory drifts up as data flows through one
process. Flat means the 10N and 100N figures equal the N figures up to allocator noise.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the repository's package and examples first
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from _machine import machine  # noqa: E402

CRITERIA = ("activation", "information")


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _live_tensors() -> int:
    """Tensors reachable by Python's garbage collector: a retained per-batch tensor shows here."""
    import torch

    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kB on Linux


class _LazyBatches:
    """Re-iterable validation data: ``n`` seeded random batches, made on the fly, never kept."""

    def __init__(self, shape: tuple[int, ...], classes: int, n: int, batch: int) -> None:
        self.shape, self.classes, self.n, self.batch = shape, classes, n, batch
        # batches drawn over all passes, and the RSS summed per decade of them (1-10, 11-100,
        # ...): a few counters, so that the measurement itself does not grow with the data
        self.drawn = 0
        self.decades: dict[int, list[int]] = {}

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        gen = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            self.drawn += 1
            decade = math.ceil(math.log10(self.drawn)) if self.drawn > 1 else 1
            acc = self.decades.setdefault(decade, [0, 0])
            acc[0] += _rss_bytes()
            acc[1] += 1
            x = torch.randn(self.batch, *self.shape, generator=gen)
            y = torch.randint(0, self.classes, (self.batch,), generator=gen)
            yield x, y


def _child(args: argparse.Namespace) -> None:
    """One configuration: score once, print the measurements as JSON."""
    import torch

    import lotterytrim as lt
    from examples.mir.models import TASKS, build_model, example_input
    from lotterytrim.engine.graph import TrimGraph

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = TASKS[args.task]
    model = build_model(args.task, args.size)
    x = example_input(args.task, args.size, batch=2)
    graph = TrimGraph(model, x)
    data = _LazyBatches(tuple(x.shape[1:]), spec.n_outputs, args.n, args.batch)
    criterion = lt.criteria.get_criterion(args.criterion)
    warm = _LazyBatches(tuple(x.shape[1:]), spec.n_outputs, 1, args.batch)
    criterion.score(graph, warm)  # first-call allocations (kernels, caches) out of the way
    gc.collect()
    tensors_before = _live_tensors()
    baseline = _rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    scores = criterion.score(graph, data)
    seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    tensors_added = _live_tensors() - tensors_before
    retained = sum(
        t.numel() * t.element_size()
        for t in getattr(criterion, "_scores", {}).values()
        if isinstance(t, torch.Tensor)
    )
    print(
        json.dumps(
            {
                "criterion": args.criterion,
                "batches": args.n,
                "passes": data.drawn // args.n,
                "groups_scored": len(scores),
                "peak_rss": _peak_rss_bytes(),
                "baseline_rss": baseline,
                "rss_by_decade": {str(k): v[0] / v[1] for k, v in sorted(data.decades.items())},
                "python_peak": py_peak,
                "retained_bytes": retained,
                "tensors_added": tensors_added,
                "seconds": seconds,
            }
        )
    )


def _run(args: argparse.Namespace, criterion: str, n: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--criterion",
        criterion,
        "--n",
        str(n),
        "--task",
        args.task,
        "--size",
        args.size,
        "--batch",
        str(args.batch),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="instrument")
    ap.add_argument("--size", default="quick", choices=["paper", "quick", "tiny"])
    ap.add_argument("--batches", type=int, default=10, help="N")
    ap.add_argument("--factors", default="1,10,100", help="runs use N times each factor")
    ap.add_argument("--batch", type=int, default=16, help="examples per batch")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--criterion", default="activation", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    import pandas as pd
    from tqdm import tqdm

    t0 = time.perf_counter()
    factors = [int(f) for f in args.factors.split(",")]
    configs = [(c, f * args.batches) for c in CRITERIA for f in factors]
    rows = [_run(args, c, n) for c, n in tqdm(configs, unit="run")]
    df = pd.DataFrame(rows)
    df["above_start"] = df.peak_rss - df.baseline_rss
    mb = 1024 * 1024
    table = pd.DataFrame(
        {
            "criterion": df.criterion,
            "batches": df.batches,
            "passes over data": df.passes,
            "peak RSS MB": (df.peak_rss / mb).round(1),
            "peak above start MB": (df.above_start / mb).round(1),
            "tracemalloc peak KB": (df.python_peak / 1024).round(1),
            "retained scores B": df.retained_bytes,
            "tensors kept alive": df.tensors_added,
            "seconds": df.seconds.round(1),
        }
    )
    verdict, drift_rows = [], []
    for c in CRITERIA:
        part = df[df.criterion == c].sort_values("batches")
        small, big = part.iloc[0], part.iloc[-1]
        by_decade = {int(k): v for k, v in big.rss_by_decade.items()}
        drift_row: dict[str, Any] = {"criterion": c, "batches drawn": int(big.batches * big.passes)}
        for k, v in by_decade.items():
            lo = 1 if k == 1 else 10 ** (k - 1) + 1
            drift_row[f"draws {lo}-{10**k}"] = f"{v / mb:.1f} MB"
        drift_rows.append(drift_row)
        later = [by_decade[k] for k in sorted(by_decade) if k >= 2]
        drift = (later[-1] - later[0]) / mb if len(later) > 1 else 0.0
        verdict.append(
            (
                c,
                f"{int(small.batches)} -> {int(big.batches)}",
                f"{(big.above_start - small.above_start) / mb:+.1f} MB",
                f"{drift:+.1f} MB",
                f"{(big.python_peak - small.python_peak) / 1024:+.1f} KB",
                "yes" if part.retained_bytes.nunique() == 1 else "no",
                "yes" if part.tensors_added.nunique() == 1 else "no",
            )
        )
    summary = pd.DataFrame(
        verdict,
        columns=[
            "criterion",
            "batches",
            "peak above start, change",
            "mean RSS drift in the largest run (last decade - draws 11-100)",
            "tracemalloc peak, change",
            "retained state equal",
            "tensors kept alive equal",
        ],
    )
    drift_table = pd.DataFrame(drift_rows).fillna("-")
    command = "python benchmarks/criterion_memory.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            f"Command: `{command.strip()}`",
            "",
            f"Task `{args.task}`, size `{args.size}`, batches of {args.batch}, N = "
            f"{args.batches}, factors {args.factors}; one subprocess per row, 1 torch thread. "
            f"Machine: {machine()}. Took "
            f"{time.perf_counter() - t0:.0f} s.",
            "",
            table.to_markdown(index=False),
            "",
            "Within the largest run of each criterion (one process), mean RSS over the batches "
            "drawn in each range (up to the last one drawn):",
            "",
            drift_table.to_markdown(index=False),
            "",
            summary.to_markdown(index=False),
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "criterion_memory.csv", index=False)
    (args.out / "criterion_memory.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
