"""Distillation from the reference on an example task: ``+kd`` lotteries at chosen temperatures
and weights, beside the quick lottery's own rows.

Each setting is a lottery of one method (``finetune+kd`` by default) in its own run directory
(the temperature and weight are hashed). Level 0 does not depend on the method or on
distillation, and each replicate trains its reference from the same seed as the quick run's,
so the references are the quick rows' own (their rows are compared in the table) and the
comparison is paired, replicate by replicate.

    python -m benchmarks.distill --task chord --settings 2:0.7,4:0.9 --replicates 1 \\
        --root runs/kd --out results/retraining
    python -m benchmarks.distill --table results/retraining --rows results/quick

The first writes ``results/retraining/<task>-kd.csv`` (one row per setting, replicate and
level, with ``kd_temperature`` and ``kd_weight``) after each setting; finished levels are read
back from their run directory, not retrained. The second prints, per task and setting, the mean
validation and test error per level next to the quick rows' methods, replicate by replicate
paired (only the replicates both have).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from examples.mir.models import TASKS
from examples.mir.run import PROFILES, Profile, build_lottery

KEYS = ["task", "method", "kd_temperature", "kd_weight", "replicate", "level"]


def settings_of(text: str) -> list[tuple[float, float]]:
    """``"2:0.7,4:0.9"`` as [(temperature, weight), ...]."""
    pairs = []
    for item in text.split(","):
        temperature, _, weight = item.partition(":")
        try:
            pairs.append((float(temperature), float(weight)))
        except ValueError:
            raise SystemExit(f"--settings wants TEMPERATURE:WEIGHT pairs, got {item!r}") from None
    return pairs


def profile_for(method: str, temperature: float, weight: float, replicates: int) -> Profile:
    """The quick profile running ``method`` alone at one distillation setting."""
    quick = PROFILES["quick"].override(methods=(method,), replicates=replicates)
    return quick.with_settings(
        [f"kd_temperature={temperature}", f"kd_weight={weight}"], list(TASKS)
    )


def run(args: argparse.Namespace) -> None:
    """Run (or read back) every setting and write the task's rows after each."""
    out = Path(args.out) / f"{args.task}-kd.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    for temperature, weight in settings_of(args.settings):
        profile = profile_for(args.method, temperature, weight, args.replicates)
        lottery, _ = build_lottery(args.task, profile, args.root, progress=False)
        rows = lottery.run().assign(kd_temperature=temperature, kd_weight=weight)
        rows = rows[rows.method == args.method]
        if out.exists():
            rows = pd.concat([pd.read_csv(out), rows], ignore_index=True)
        rows = rows.drop_duplicates(KEYS, keep="last").sort_values(KEYS)
        rows.to_csv(out, index=False)
        print(f"T={temperature} w={weight}: {len(rows)} rows in {out}")


def table(folder: Path, quick: Path) -> str:
    """Per task, the validation error per level of each setting beside the quick rows'
    methods, with the mean validation and test error over the trimmed levels; settings are
    grouped by the replicates they ran, and the quick rows are read for those only."""
    parts = []
    for path in sorted(folder.glob("*-kd.csv")):
        kd = pd.read_csv(path)
        task = str(kd.task.iloc[0])
        base = pd.read_csv(quick / f"{task}.csv").assign(setting=lambda d: d.method)
        named = zip(kd.method, kd.kd_temperature, kd.kd_weight, strict=True)
        kd["setting"] = [f"{m} T={t:g} w={w:g}" for m, t, w in named]
        sets = kd.groupby("setting").replicate.agg(lambda r: tuple(sorted(set(r))))
        for replicates in sorted(set(sets)):
            chosen = kd[kd.setting.isin(sets[sets == replicates].index)]
            both = pd.concat([base[base.replicate.isin(replicates)], chosen], ignore_index=True)
            val = both.groupby(["setting", "level"]).val_error.mean().unstack("level").round(3)
            trimmed = both[both.level > 0].groupby("setting")
            val["mean val"] = trimmed.val_error.mean().round(4)
            val["mean test"] = trimmed.error.mean().round(4)
            reps = ", ".join(map(str, replicates))
            parts.append(
                f"{task}, replicate(s) {reps}: validation error per level (0: "
                "the reference); mean validation and test error over levels 1-6\n"
            )
            parts.append(val.to_markdown() + "\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run settings of one task, or print the tables of the committed rows."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--task", choices=list(TASKS))
    parser.add_argument("--settings", default="2:0.7", help="TEMPERATURE:WEIGHT, comma-separated")
    parser.add_argument("--method", default="finetune+kd")
    parser.add_argument("--replicates", type=int, default=1)
    parser.add_argument("--root", default="runs/kd")
    parser.add_argument("--out", default="results/retraining")
    parser.add_argument("--table", default=None, help="print the tables of this rows folder")
    parser.add_argument("--rows", default="results/quick", help="the quick lottery's rows")
    args = parser.parse_args(argv)
    if args.table:
        print(table(Path(args.table), Path(args.rows)))
        return 0
    if args.task is None:
        parser.error("--task is needed to run settings")
    if "+kd" not in args.method:
        parser.error(f"--method must distil (a +kd name), got {args.method!r}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
