"""Summarise finished task lotteries: Figure 2, Table 1 with latency, and the paper's targets.

    python -m examples.mir.summarize --root runs --out docs/figures --profile quick

Reads every run directory under ``--root`` written by ``examples.mir.run``, draws Figure 2,
measures the reference and the trimmed-optimal model of each task with ``lt.report`` (CPU
latency included) and prints Table 1 and the targets as markdown.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import lotterytrim as lt

from .models import build_model, example_input

__all__ = ["collect", "main", "targets"]


def collect(root: Path) -> tuple[pd.DataFrame, dict[str, tuple[Path, str]]]:
    """All result rows under ``root``, and per task its run directory and model size."""
    frames, where = [], {}
    for settings in sorted(root.glob("*/settings.json")):
        record = json.loads(settings.read_text())
        table = lt.load_results(settings.parent)
        if table.empty:
            continue
        task = record["config"]["task"]
        if task in where:
            raise SystemExit(f"two runs of {task!r} under {root}: pass a root holding one each")
        frames.append(table)
        where[task] = (settings.parent, record["settings"].get("size", "quick"))
    if not frames:
        raise SystemExit(f"no finished lottery runs under {root}")
    return pd.concat(frames, ignore_index=True), where


def targets(results: pd.DataFrame) -> pd.DataFrame:
    """Per task: the checks of the quick-profile targets, from mean errors over replicates."""
    rows = []
    for task, group in results.groupby("task", sort=False):
        mean = group.groupby(["method", "level"])[["error", "kept"]].mean()
        ref = float(mean.loc[("trim", 0), "error"])
        trim = mean.loc["trim"]
        deep = trim[(trim.kept <= 0.25) & (trim.index >= 1)]
        within = trim[(trim.error <= 1.1 * ref) & (trim.index >= 1)]
        row = {
            "task": task,
            "reference error": ref,
            **_reference_noise(group),
            "<=25% kept, error <= reference": bool((deep.error <= ref).any()),
            "<=25% kept, error / reference": float(deep.error.iloc[0] / ref) if len(deep) else None,
            "removed within 1.1x": 1.0 - float(within.kept.min()) if len(within) else 0.0,
        }
        if "finetune" in mean.index.get_level_values(0):
            ft = mean.loc["finetune"]
            common = [lv for lv in trim.index if lv >= 3 and lv in ft.index]
            ties = sum(trim.loc[lv, "error"] <= ft.loc[lv, "error"] for lv in common)
            row["trim no worse than finetune (levels >= 3)"] = f"{ties}/{len(common)}"
        rows.append(row)
    return pd.DataFrame(rows)


def _reference_noise(group: pd.DataFrame) -> dict[str, object]:
    """Test size, bootstrap 95 % interval and still-falling count of a task's references.

    The interval (``error_low``/``error_high``, from ``TaskRun.evaluate``: resampling the test
    examples, clips for onsets) is averaged over replicates; runs without it show nothing.
    """
    refs = group[(group.method == "trim") & (group.level == 0)]
    out: dict[str, object] = {}
    if "test_n" in refs.columns and refs.test_n.notna().any():
        out["test n"] = int(refs.test_n.max())
        out["reference 95% CI"] = f"[{refs.error_low.mean():.3f}, {refs.error_high.mean():.3f}]"
    if "still_falling" in refs.columns:
        out["references still falling"] = f"{int(refs.still_falling.sum())}/{len(refs)}"
    return out


def per_level(results: pd.DataFrame, spread: bool = False) -> pd.DataFrame:
    """Mean test error per (task, method) and level, with the share of weights trim kept;
    ``spread`` writes each error cell as ``mean [min-max]`` over replicates."""
    index = ["task", "method"]
    error = results.pivot_table(index=index, columns="level", values="error")
    if spread:
        low = results.pivot_table(index=index, columns="level", values="error", aggfunc="min")
        high = results.pivot_table(index=index, columns="level", values="error", aggfunc="max")
        error = error.astype(object)
        for key in error.index:
            for level in error.columns:
                m = error.at[key, level]
                if m == m:  # NaN: no such level
                    lo, hi = low.at[key, level], high.at[key, level]
                    error.at[key, level] = f"{m:.3f} [{lo:.3f}-{hi:.3f}]"
    trim = results[results.method == "trim"]
    kept = trim.pivot_table(index="task", columns="level", values="kept")
    kept.index = pd.MultiIndex.from_tuples([(t, "kept (trim)") for t in kept.index])
    table = pd.concat([kept, error]).sort_index(level=0, sort_remaining=False)
    table.columns = [f"L{c}" for c in table.columns]
    return table.reset_index(names=index)


def _markdown(table: pd.DataFrame) -> str:
    """A plain markdown table (no optional dependency needed)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.3f}"  # NaN: no such level
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Write Figure 2 and print Table 1 (with latency) and the target checks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--profile", default="quick", help="name used in the figure file name")
    args = parser.parse_args(argv)
    results, where = collect(args.root)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / f"figure2_{args.profile}.png"
    lt.plot.figure2(results, path=figure)
    chosen = lt.select(results)
    reports: dict[tuple[str, str], lt.Report] = {}
    for task, (folder, size) in where.items():
        rows = chosen[chosen.task == task].set_index("model")
        x = example_input(task, size, batch=1)
        for name, label in (("reference", "reference"), ("optimal", "trimmed")):
            if name in rows.index:
                build = functools.partial(build_model, task, size)
                model = lt.load(folder / rows.loc[name, "path"], build)
                reports[(task, label)] = lt.report(model, x, latency=True, threads=1, runs=100)
    print(f"Figure 2: {figure}\n")
    print(lt.plot.table1(results, reports=reports).to_markdown())
    print()
    print(_markdown(per_level(results, spread=True)))
    print()
    print(_markdown(targets(results)))


if __name__ == "__main__":
    main()
