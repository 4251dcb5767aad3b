"""Batch-1 CPU latency of trimmed models, level by level, in torch eager and onnxruntime.

Run from the repository root:

    python benchmarks/latency.py [--size paper] [--tasks pitch,chord] [--levels 10]
                                 [--out benchmarks/results]

Each example model is trimmed level by level (30% of the remaining parameters per level,
magnitude criterion, no training: only the structure matters for speed). The masking baseline
masks the same share of weights per level (``method="mask"``). At every level the script counts
MACs with ``lt.report`` and times one-example forwards with torch eager (1 thread) and with
onnxruntime (1 intra-op thread); the timings of all variants of a task are interleaved in
rounds so that load drift on a shared machine hits them alike. Writes ``latency.csv``,
``latency.md`` and ``latency.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
# the repository's package and examples first
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from _machine import machine  # noqa: E402

import lotterytrim as lt  # noqa: E402
from examples.mir.models import TASKS, build_model, example_input  # noqa: E402
from lotterytrim.export import export_onnx  # noqa: E402
from lotterytrim.trimming import masking  # noqa: E402

TARGET = 0.7  # latency speedup should reach this share of the MAC reduction
FLOOR_AMOUNT = 0.999  # the floor model: everything trimmable removed, down to one unit a layer


@dataclass
class _Variant:
    """One model to time: a trimming level, a masking level or the floor model of one task."""

    method: str  # "trim", "mask" or "floor"
    level: int
    model: nn.Module
    params: int  # parameters stored
    kept: float  # share of the original weights still in use (mask: unmasked share)
    macs: int
    onnx_path: Path


def _time_interleaved(
    fns: dict[Any, Callable[[], Any]], runs: int, warmup: int, rounds: int
) -> dict[Any, tuple[float, float]]:
    """Median and IQR (seconds) per callable, timed in interleaved rounds after warm-up."""
    times: dict[Any, list[float]] = {k: [] for k in fns}
    per_round = max(1, runs // rounds)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for key, fn in fns.items():
            fn()  # one untimed call: caches after the other variants ran
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
    out = {}
    for key, ts in times.items():
        q1, _, q3 = statistics.quantiles(ts, n=4, method="inclusive")
        out[key] = (statistics.median(ts), q3 - q1)
    return out


def _ort_session(path: Path) -> Any:
    """An onnxruntime CPU session with one intra-op and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lt.report(model, x, latency=False).macs


def _variants(
    task: str, size: str, levels: int, amount: float, seed: int, folder: Path
) -> tuple[torch.Tensor, list[_Variant]]:
    """Trim and mask one model level by level; export each level to ONNX."""
    torch.manual_seed(seed)
    base = build_model(task, size).eval()
    x = example_input(task, size, batch=1, seed=seed)
    total = sum(p.numel() for p in base.parameters())
    out: list[_Variant] = []

    def add(method: str, level: int, model: nn.Module, kept: float) -> None:
        path = folder / f"{task}-{method}-{level}.onnx"
        export_onnx(model, x, path, dynamic_batch=False)
        params = sum(p.numel() for p in model.parameters())
        out.append(_Variant(method, level, model, params, kept, _macs(model, x), path))

    trimmed = copy.deepcopy(base)
    trimmer = lt.LotteryTrimmer(trimmed, x, criterion="magnitude", amount=amount)
    trimmer.capture_rewind()  # no training: the rewind point is the model itself
    add("trim", 0, copy.deepcopy(trimmed), 1.0)
    for level in range(1, levels + 1):
        trimmer.step()
        add("trim", level, copy.deepcopy(trimmed), trimmer.params / total)

    floor = copy.deepcopy(base)
    lt.trim(floor, x, "magnitude", FLOOR_AMOUNT)
    add("floor", 0, floor, sum(p.numel() for p in floor.parameters()) / total)

    masked = copy.deepcopy(base)
    masker = lt.LotteryTrimmer(masked, x, criterion="magnitude", amount=amount, method="mask")
    masker.capture_rewind()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    for level in range(1, levels + 1):
        masker.step()
        copy_ = build_model(task, size).eval()
        copy_.load_state_dict(state)
        masking.apply_masks(copy_, masking.current_masks(masked))  # masks as forward hooks
        kept = (total - masking.masked_count(masked)) / total
        add("mask", level, copy_, kept)
    return x, out


def _floor_level(latency: list[float], floor: float) -> int | None:
    """First level whose latency is under ``floor / (1 - TARGET)``, or None.

    ``floor`` is the latency of the same architecture trimmed to about one unit per layer: the
    fixed overhead (dispatch, pooling, copies) that no trimming removes. With latency = floor +
    work and work proportional to MACs, a speedup of 0.7x the MAC reduction is out of reach
    once the floor is more than 30% of a level's latency; from there on the level is "at the
    floor" and the target is not assessed.
    """
    for k, t in enumerate(latency):
        if t < floor / (1.0 - TARGET):
            return k
    return None


def measure_task(
    task: str, args: argparse.Namespace, folder: Path, bar: tqdm
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All levels of one task: MACs, torch and onnxruntime latency, speedups, target check."""
    bar.set_postfix_str(f"{task}: trim, mask, export")
    x, variants = _variants(task, args.size, args.levels, args.amount, args.seed, folder)
    fns: dict[tuple[str, int, str], Callable[[], Any]] = {}
    for v in variants:
        session = _ort_session(v.onnx_path)
        feed = {session.get_inputs()[0].name: x.numpy()}

        def run_torch(m: nn.Module = v.model) -> Any:
            return m(x)

        def run_ort(s: Any = session, f: dict[str, np.ndarray] = feed) -> Any:
            return s.run(None, f)

        fns[(v.method, v.level, "torch")] = run_torch
        fns[(v.method, v.level, "ort")] = run_ort
    bar.set_postfix_str(f"{task}: timing {len(fns)} variants")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            timing = _time_interleaved(fns, args.runs, args.warmup, args.rounds)
    finally:
        torch.set_num_threads(previous)
    ref = variants[0]
    rows = []
    for v in variants:
        t_med, t_iqr = timing[(v.method, v.level, "torch")]
        o_med, o_iqr = timing[(v.method, v.level, "ort")]
        rows.append(
            {
                "task": task,
                "method": v.method,
                "level": v.level,
                "params": v.params,
                "weights_kept": v.kept,
                "macs": v.macs,
                "mac_reduction": ref.macs / v.macs,
                "torch_ms": t_med * 1e3,
                "torch_iqr_ms": t_iqr * 1e3,
                "ort_ms": o_med * 1e3,
                "ort_iqr_ms": o_iqr * 1e3,
            }
        )
    df = pd.DataFrame(rows)
    base = df[(df.method == "trim") & (df.level == 0)].iloc[0]
    df["torch_speedup"] = base.torch_ms / df.torch_ms
    df["ort_speedup"] = base.ort_ms / df.ort_ms
    summary: dict[str, Any] = {"task": task}
    trim = df[df.method == "trim"].sort_values("level")
    floor_row = df[df.method == "floor"].iloc[0]
    for rt in ("torch", "ort"):
        floor = _floor_level(trim[f"{rt}_ms"].tolist(), float(floor_row[f"{rt}_ms"]))
        eff = trim[f"{rt}_speedup"] / trim.mac_reduction
        before = trim.level.between(1, (floor - 1) if floor is not None else args.levels)
        if floor == 0:
            before = trim.level < 0  # the unpruned model already sits on the floor
        met = bool((eff[before] >= TARGET).all()) if before.any() else None
        df.loc[df.method == "trim", f"{rt}_target"] = np.where(
            trim.level == 0,
            "-",
            np.where(
                before,
                np.where(eff >= TARGET, "yes", "no"),
                "floor",
            ),
        )
        df.loc[df.method != "trim", f"{rt}_target"] = "-"
        summary[f"{rt}_floor_level"] = floor
        summary[f"{rt}_floor_ms"] = float(floor_row[f"{rt}_ms"])
        summary[f"{rt}_target_met"] = met
        summary[f"{rt}_worst_eff"] = float(eff[before].min()) if before.any() else float("nan")
    masks = df[df.method == "mask"]
    summary["mask_torch_speedup"] = (
        float(masks.torch_speedup.min()),
        float(masks.torch_speedup.max()),
    )
    summary["mask_ort_speedup"] = (float(masks.ort_speedup.min()), float(masks.ort_speedup.max()))
    return df, summary


def _overview(df: pd.DataFrame) -> str:
    """One cell per task and level: MAC reduction / torch speedup / ORT speedup.

    A speedup in bold missed the target (below 0.7x the MAC reduction); in italics, the level
    is at the latency floor, where the target is not assessed.
    """

    def mark(speedup: float, flag: str) -> str:
        text = f"{speedup:.3g}"
        return f"**{text}**" if flag == "no" else f"_{text}_" if flag == "floor" else text

    tasks = list(dict.fromkeys(df.task))
    rows = []
    trim = df[df.method == "trim"]
    for level in sorted(trim.level.unique()):
        row = {"level": f"trim {level}"}
        for task in tasks:
            r = trim[(trim.task == task) & (trim.level == level)].iloc[0]
            row[task] = (
                f"{r.mac_reduction:.3g} / {mark(r.torch_speedup, r.torch_target)} / "
                f"{mark(r.ort_speedup, r.ort_target)}"
            )
        rows.append(row)
    floor_row: dict[str, str] = {"level": "floor model"}
    mask_row: dict[str, str] = {"level": "mask (all levels)"}
    for task in tasks:
        f = df[(df.task == task) & (df.method == "floor")].iloc[0]
        floor_row[task] = f"{f.mac_reduction:.4g} / {f.torch_speedup:.3g} / {f.ort_speedup:.3g}"
        m = df[(df.task == task) & (df.method == "mask")]
        mask_row[task] = (
            f"{m.mac_reduction.min():.2f} / {m.torch_speedup.min():.2f}-"
            f"{m.torch_speedup.max():.2f} / {m.ort_speedup.min():.2f}-{m.ort_speedup.max():.2f}"
        )
    rows += [floor_row, mask_row]
    return pd.DataFrame(rows).to_markdown(index=False)


def _markdown(df: pd.DataFrame, summaries: list[dict[str, Any]], header: str) -> str:
    """Overview, per-task tables of the trimming levels and the masking baseline, summary."""
    lines = [header, "", "### Overview", ""]
    lines += [
        "Each cell: MAC reduction / torch speedup / ORT speedup. Bold: below 0.7x the MAC "
        "reduction (target missed); italics: the level is at the latency floor (target not "
        "assessed).",
        "",
        _overview(df),
        "",
    ]
    for s in summaries:
        task = s["task"]
        part = df[df.task == task].copy()
        part["level"] = [
            "floor model" if m == "floor" else f"{m} {k}"
            for m, k in zip(part.method, part.level, strict=True)
        ]
        table = pd.DataFrame(
            {
                "level": part.level,
                "params": [f"{p / 1e3:,.1f} K" for p in part.params],
                "weights kept": [f"{k:.1%}" for k in part.weights_kept],
                "MACs": [f"{m / 1e6:,.2f} M" for m in part.macs],
                "MAC reduction": [f"{r:.2f}x" for r in part.mac_reduction],
                "torch ms (IQR)": [
                    f"{a:.3f} ({b:.3f})"
                    for a, b in zip(part.torch_ms, part.torch_iqr_ms, strict=True)
                ],
                "torch speedup": [f"{r:.2f}x" for r in part.torch_speedup],
                "ORT ms (IQR)": [
                    f"{a:.3f} ({b:.3f})" for a, b in zip(part.ort_ms, part.ort_iqr_ms, strict=True)
                ],
                "ORT speedup": [f"{r:.2f}x" for r in part.ort_speedup],
                "torch >= 0.7x MACs": part.torch_target,
                "ORT >= 0.7x MACs": part.ort_target,
            }
        )
        lines += [f"### {task}", "", table.to_markdown(index=False), ""]
    lines += ["### Summary", ""]
    rows = []
    for s in summaries:
        row = {"task": s["task"]}
        for rt, name in (("torch", "torch"), ("ort", "ORT")):
            floor = s[f"{rt}_floor_level"]
            at = f"from level {floor}" if floor is not None else "not reached"
            row[f"{name} floor"] = f"{at} ({s[f'{rt}_floor_ms']:.3f} ms)"
            met = s[f"{rt}_target_met"]
            verdict = "met" if met else f"missed (worst {s[f'{rt}_worst_eff']:.2f}x)"
            row[f"{name} target before floor"] = "no level before it" if met is None else verdict
        lo, hi = s["mask_torch_speedup"]
        row["mask torch speedup"] = f"{lo:.2f}-{hi:.2f}x"
        lo, hi = s["mask_ort_speedup"]
        row["mask ORT speedup"] = f"{lo:.2f}-{hi:.2f}x"
        rows.append(row)
    lines += [pd.DataFrame(rows).to_markdown(index=False), ""]
    return "\n".join(lines)


def _plot(df: pd.DataFrame, path: Path, title: str) -> None:
    """Speedup against MAC reduction (log-log, y = x and y = 0.7x) and against weights kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.5))
    palette = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # a ListedColormap
    colors = dict(zip(sorted(df.task.unique()), palette, strict=False))
    for task, part in df.groupby("task"):
        trim = part[part.method == "trim"].sort_values("level")
        mask = part[part.method == "mask"].sort_values("level")
        c = colors[task]
        ax.plot(trim.mac_reduction, trim.torch_speedup, "o-", color=c, label=f"{task} torch")
        ax.plot(trim.mac_reduction, trim.ort_speedup, "^--", color=c, label=f"{task} ORT", ms=5)
        for rt, marker in (("torch", "o"), ("ort", "^")):
            at = trim[trim[f"{rt}_target"] == "floor"]
            ax.plot(at.mac_reduction, at[f"{rt}_speedup"], marker, color="white", ms=3, lw=0)
        ax.plot(mask.mac_reduction, mask.torch_speedup, "x", color=c, ms=7)
        for frame, style in ((trim, "o-"), (mask, "x:")):
            bx.plot(1 / frame.weights_kept, frame.torch_speedup, style, color=c, ms=5)
    lim = max(2.0, float(df[df.method != "floor"].mac_reduction.max()) * 1.3)
    line = np.array([1.0, lim])
    ax.plot(line, line, "k-", lw=1, label="y = x")
    ax.plot(line, TARGET * line, "k:", lw=1, label="y = 0.7x (target)")
    ax.set(xscale="log", yscale="log", xlabel="MAC reduction (x)", ylabel="latency speedup (x)")
    ax.set_title("trimming: speedup vs MAC reduction (white dot: at floor; x: masking)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    bx.set(xscale="log", yscale="log", xlabel="parameter reduction (1 / weights kept)")
    bx.set(ylabel="torch latency speedup (x)")
    bx.set_title("torch eager: trimming (o) vs masking (x)")
    bx.axhline(1.0, color="k", lw=1)
    bx.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="paper", choices=["paper", "quick", "tiny"])
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--amount", type=float, default=0.3)
    ap.add_argument("--runs", type=int, default=100, help="timed runs per variant and runtime")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds the runs split into")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        ap.error(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    import onnxruntime

    runtime = f"onnxruntime {onnxruntime.__version__}"
    before = machine(runtime)
    t0 = time.perf_counter()
    frames, summaries = [], []
    with tempfile.TemporaryDirectory() as tmp, tqdm(tasks, unit="task") as bar:
        for task in bar:
            df, summary = measure_task(task, args, Path(tmp), bar)
            frames.append(df)
            summaries.append(summary)
    df = pd.concat(frames, ignore_index=True)
    command = "python benchmarks/latency.py " + " ".join(sys.argv[1:])
    header = (
        f"Command: `{command.strip()}`\n\n"
        f"Size `{args.size}`, {args.levels} levels of {args.amount:.0%}, batch 1, torch eager at 1 "
        f"thread and onnxruntime with 1 intra-op thread, {args.runs} timed runs per variant in "
        f"{args.rounds} interleaved rounds. Took {time.perf_counter() - t0:.0f} s.\n\n"
        f"Machine at start: {before}.\n\nMachine at end: {machine(runtime)}."
    )
    df.to_csv(args.out / "latency.csv", index=False, float_format="%.6g")
    text = _markdown(df, summaries, header)
    (args.out / "latency.md").write_text(text + "\n", encoding="utf-8")
    _plot(df, args.out / "latency.png", f"batch-1 CPU latency, size {args.size}, 1 thread")
    print(text)
    print(f"wrote {args.out / 'latency.csv'}, latency.md and latency.png")


if __name__ == "__main__":
    main()
