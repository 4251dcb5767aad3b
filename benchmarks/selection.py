"""Selection study: which scope, normalisation, safeguards and criterion keep trimmed tickets
accurate, measured with the example lotteries.

Each setting is one lottery per task (methods trim and finetune, the same selection for both)
run through ``examples.mir.run`` with the quick profile, so every run directory resumes and a
setting already run is read back, not retrained. The table gives, per task, setting, method and
level, the mean validation error over replicates with its min-max: validation ranks the
settings (``--by error`` ranks on test error instead, which only reports).

    python -m benchmarks.selection --tasks chord --grid full --replicates 1 --levels 6
    python -m benchmarks.selection --tasks chord,onset,drum,instrument --grid confirm \\
        --replicates 3 --levels 6

``--grid full`` is the factorial (scope x normalize x safeguards x criterion; local scope keeps
one normalisation, since a per-layer scaling does not change a per-layer ranking);
``--grid confirm`` the few settings picked from it (see docs/selection.md);
``--setting scope/normalize/guard[@floor]/criterion`` adds any other (``params@0.25``: ranked
per parameter, a floor of 25% of each layer's units). ``--gather RUNDIR... --out ROWS.csv``
collects finished run directories' rows, each named by the setting it ran, and ``--screen
ROWS.csv`` prints their table, each level's error beside its size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

import lotterytrim as lt
from examples.mir.profiles import PROFILES, Profile
from examples.mir.references import adopt_references, finished_references
from examples.mir.run import build_lottery
from lotterytrim.trimming.state import load_trimmer_state

GUARDS = {
    # the cap and the 5% floor, ranking by score alone (the default before the floor study)
    "on": lt.Safeguards(keep_floor=0.05, cost="none"),
    "off": lt.Safeguards.off(),
    # the same ranked by score per parameter / per MAC; "params@0.25" is the default
    "params": lt.Safeguards(keep_floor=0.05, cost="params"),
    "macs": lt.Safeguards(keep_floor=0.05, cost="macs"),
}


def guard_for(name: str) -> lt.Safeguards:
    """The safeguards a setting names: a key of GUARDS, optionally ``@F`` for a floor of F
    (``params@0.25``: ranking per parameter, at least 25% of each layer's units kept)."""
    key, _, floor = name.partition("@")
    if key not in GUARDS:
        raise ValueError(f"unknown safeguards {key!r} in {name!r}; choose from {sorted(GUARDS)}")
    if not floor:
        return GUARDS[key]
    try:
        value = float(floor)
    except ValueError:
        raise ValueError(f"the floor after '@' in {name!r} must be a number") from None
    return dataclasses.replace(GUARDS[key], keep_floor=value)


@dataclass(frozen=True)
class Setting:
    """One selection setting of the study."""

    scope: str
    normalize: str
    guard: str  # a key of GUARDS, optionally with "@floor"
    criterion: str

    @property
    def name(self) -> str:
        return f"{self.scope}/{self.normalize}/{self.guard}/{self.criterion}"

    @classmethod
    def parse(cls, text: str) -> Setting:
        parts = text.split("/")
        if len(parts) != 4:
            raise ValueError(
                f"a setting is scope/normalize/{'|'.join(GUARDS)}[@floor]/criterion, got {text!r}"
            )
        guard_for(parts[2])
        return cls(*parts)


def full_grid() -> list[Setting]:
    """The factorial: global x {none, max, l2, fan_in} + local x none, guards on/off, 2 criteria."""
    out = []
    for criterion in ("magnitude", "activation"):
        for guard in ("on", "off"):
            for norm in ("none", "max", "l2", "fan_in"):
                out.append(Setting("global", norm, guard, criterion))
            out.append(Setting("local", "none", guard, criterion))
    return out


CONFIRM = [
    Setting("global", "max", "off", "magnitude"),  # the former default
    Setting("global", "l2", "on", "magnitude"),
    Setting("local", "none", "on", "magnitude"),
    Setting("global", "l2", "on", "activation"),
]


def profile_for(
    base: Profile,
    setting: Setting,
    replicates: int,
    levels: int,
    methods: tuple[str, ...] = ("trim", "finetune"),
    task: str | None = None,
) -> Profile:
    """The quick profile with the setting's selection and the given methods (for ``task``,
    whose scope the profile may choose on its own).

    The profile's own setting, with its replicates, levels and methods, is the profile itself:
    those run directories are the ones ``python -m examples.mir.run`` fills. With other methods
    (e.g. trim alone) the default setting is a run of the study like any other, trained by the
    code of the day rather than read back from the profile's directory.
    """
    mine = None if task is None else base.config(task)
    own = (
        setting.scope == (base.scope if mine is None else mine.options.scope)
        and setting.normalize == base.normalize
        and guard_for(setting.guard)
        == (lt.Safeguards(**base.safeguards) if mine is None else mine.options.safeguards)
        and (mine is None or mine.options.min_units == 1)
        and (setting.criterion,) == tuple(base.criteria)
        and replicates == base.replicates
        and levels == base.levels
        and tuple(methods) == tuple(base.methods)
    )
    if own:
        return base
    # the setting names the whole selection: a task's own safeguards and minimum give way
    task_config = {
        t: MappingProxyType({k: v for k, v in c.items() if k != "safeguards"})
        for t, c in base.task_config.items()
    }
    return dataclasses.replace(
        base,
        scope=setting.scope,
        task_scope=MappingProxyType({}),
        normalize=setting.normalize,
        safeguards=MappingProxyType(guard_for(setting.guard).to_dict()),
        min_units=MappingProxyType(dict.fromkeys(base.min_units, 1)),
        task_config=MappingProxyType(task_config),
        criteria=(setting.criterion,),
        methods=methods,
        replicates=replicates,
        levels=levels,
    )


def run(
    tasks: Sequence[str],
    settings: Sequence[Setting],
    replicates: int,
    levels: int,
    root: str,
    methods: tuple[str, ...] = ("trim", "finetune"),
    profile_root: str = "runs",
    read_only: bool = False,
) -> pd.DataFrame:
    """Run (or resume) every task x setting and return all rows with a ``setting`` column;
    ``read_only`` reads back the rows already finished and trains nothing."""
    frames = []
    base = PROFILES["quick"]
    for task in tasks:
        # references come from the profile's own run directory when it has them
        donor: Path | None = build_lottery(task, base, root=profile_root, progress=False, log=None)[
            0
        ].directory
        if donor is not None and finished_references(donor, replicates) < replicates:
            # or from the setting's run of this task in the study that has the most of them
            # (level 0 does not depend on the selection)
            donor = max(
                [donor, *sorted(Path(root).glob(f"{task}-*"))],
                key=lambda d: finished_references(d, replicates),
            )
        for setting in settings:
            start = time.perf_counter()
            profile = profile_for(base, setting, replicates, levels, methods, task)
            where = profile_root if profile is base else root
            lottery, _ = build_lottery(task, profile, root=where, progress=False, log=None)
            if donor is not None:
                adopt_references(donor, lottery.directory, replicates)
            results = lottery.results() if read_only else lottery.run()
            if results.empty:
                continue
            if donor is None or not any(donor.glob("replicate-*/reference.json")):
                donor = lottery.directory
            results = results[results.method.isin(methods) | (results.level == 0)]
            loss, where = largest_step_loss(lottery.directory)
            results = results.assign(setting=setting.name, largest_step_loss=loss)
            print(f"{task} {setting.name}: largest one-step loss {loss:.0%} ({where})", flush=True)
            frames.append(results)
            ref = results[results.level == 0].error.mean()
            print(
                f"{task} {setting.name}: reference {ref:.3f}, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return pd.concat(frames, ignore_index=True)


def largest_step_loss(directory: Path) -> tuple[float, str]:
    """Largest share of one layer's units that a single trim step removed in a run directory,
    read from the step history each trim cell's last level file keeps, and that layer."""
    worst, where = 0.0, ""
    for cell in sorted(directory.glob("replicate-*/trim-*")):
        files = sorted(cell.glob("level-*.lt"))
        if not files:
            continue
        last = files[-1]
        state = load_trimmer_state(last)
        for step in (state or {}).get("meta", {}).get("history", []):
            for layer, before in step["units_before"].items():
                after = step["units_after"].get(layer, before)
                if before and (before - after) / before > worst:
                    worst, where = (before - after) / before, f"{layer} at level {step['level']}"
    return worst, where


def summary(rows: pd.DataFrame, by: str = "val_error") -> pd.DataFrame:
    """Mean, min and max of ``by`` (validation error) per task, setting, method and level, the
    mean test error beside it, and the share of weights kept."""
    rows = rows.copy()
    rows.loc[rows.level == 0, "method"] = "reference"
    grouped = rows.groupby(["task", "setting", "method", "level"])
    table = grouped.agg(
        error=(by, "mean"),
        low=(by, "min"),
        high=(by, "max"),
        test=("error", "mean"),
        kept=("kept", "mean"),
        n=("error", "size"),
        step_loss=("largest_step_loss", "max"),
    )
    return table.reset_index()


def markdown(table: pd.DataFrame) -> str:
    """One block per task: rows setting x method, columns levels, ``mean [min-max]``."""
    blocks = []
    for task, part in table.groupby("task", sort=False):
        levels = sorted(int(v) for v in part.level.unique())
        head = "| setting | method | " + " | ".join(f"L{lv}" for lv in levels) + " |"
        rule = "| --- | --- | " + " | ".join("---:" for _ in levels) + " |"
        kept = part[part.method == "trim"].groupby("level").kept.mean()
        lines = [
            f"### {task}",
            "",
            head,
            rule,
            "| | kept (trim) | "
            + " | ".join(f"{kept.get(lv, 1.0):.0%}" if lv else "100%" for lv in levels)
            + " |",
        ]
        for (setting, method), cells in part[part.level > 0].groupby(["setting", "method"]):
            ref = part[(part.setting == setting) & (part.level == 0)]
            by = {int(r.level): r for r in pd.concat([ref, cells]).itertuples()}
            lines.append(
                f"| {setting} | {method} | " + " | ".join(_cell(by.get(lv)) for lv in levels) + " |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


#: the columns of a gathered screen's rows
SCREEN_COLUMNS = [
    "task", "setting", "method", "criterion", "replicate", "level", "params", "kept",
    "val_error", "error", "epochs", "best_epoch", "train_seconds",
]  # fmt: skip


def setting_name(config: dict[str, object], criterion: str | None = None) -> str:
    """The setting a run directory's configuration (its ``settings.json`` "config") ran, in the
    study's ``scope/normalize/guard@floor/criterion`` form, with ``/min_units=N`` where a
    layer keeps more than one unit (local scope ranks per layer: its normalisation is none).
    ``criterion`` names one of a run's several criteria (default: its first)."""
    guard = lt.Safeguards(**config["safeguards"])  # type: ignore[arg-type]
    if guard == lt.Safeguards.off():
        key = "off"
    else:
        key = {"none": "on", "params": "params", "macs": "macs"}[guard.cost]
        key += f"@{guard.keep_floor:g}"
    scope = str(config["scope"])
    norm = "none" if scope == "local" else str(config["normalize"])
    criterion = criterion or config["criteria"][0]  # type: ignore[index]
    name = f"{scope}/{norm}/{key}/{criterion}"
    units = int(config.get("min_units", 1))  # type: ignore[call-overload]
    return name + (f"/min_units={units}" if units != 1 else "")


def gather(directories: Sequence[Path], methods: Sequence[str], replicates: int) -> pd.DataFrame:
    """The rows of ``methods`` (and the references) of the first ``replicates`` replicates of
    each run directory, named by the setting it ran (a run of several criteria gives one
    setting per criterion): a screen's rows, for ``--screen``."""
    frames = []
    for directory in directories:
        config = json.loads((directory / "settings.json").read_text())["config"]
        rows = lt.load_results(directory)
        rows = rows[rows.method.isin(methods) & (rows.replicate < replicates)]
        ran = set(config["criteria"])
        names = {c: setting_name(config, c if c in ran else None) for c in set(rows.criterion)}
        frames.append(rows.assign(setting=rows.criterion.map(names)))
    rows = pd.concat(frames, ignore_index=True)
    return rows[SCREEN_COLUMNS].sort_values(["setting", "replicate", "level"], kind="stable")


def screen_table(rows: pd.DataFrame) -> str:
    """Per setting of a one-method screen (whose settings may reach different sizes): each
    level's mean validation error with its share of the weights kept, and the means over the
    trimmed levels of the validation (which ranks) and test errors, best first."""
    cut = rows[rows.level > 0]
    val = cut.pivot_table(index="setting", columns="level", values="val_error")
    kept = cut.pivot_table(index="setting", columns="level", values="kept")
    out = pd.DataFrame(index=val.index)
    for level in val.columns:
        out[f"L{level}"] = [
            f"{v:.3f} ({k:.0%})" for v, k in zip(val[level], kept[level], strict=True)
        ]
    out["mean val"] = val.mean(axis=1).round(3)
    out["mean test"] = cut.groupby("setting").error.mean().round(3)
    return out.sort_values("mean val").reset_index().to_markdown(index=False, floatfmt=".3f") + "\n"


def _cell(row: object) -> str:
    if row is None:
        return ""
    err, low, high, n = row.error, row.low, row.high, row.n  # type: ignore[attr-defined]
    return f"{err:.3f}" if n == 1 else f"{err:.3f} [{low:.3f}-{high:.3f}]"


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per task and setting: trim error relative to the reference, averaged over levels >= 1,
    the level-4 ratio, and the share of levels >= 3 where trim is no worse than finetune."""
    out = []
    for (task, setting), part in table.groupby(["task", "setting"]):
        ref = float(part[part.level == 0].error.mean())
        trim = part[part.method == "trim"].set_index("level").error
        fine = part[part.method == "finetune"].set_index("level").error
        late = [lv for lv in trim.index if lv >= 3 and lv in fine.index]
        out.append(
            {
                "task": task,
                "setting": setting,
                "reference": ref,
                "largest_step_loss": float(part.step_loss.max()),
                "trim_mean_ratio": float(trim.mean() / ref) if ref > 0 else np.nan,
                "trim_L4_ratio": float(trim.get(4, np.nan) / ref) if ref > 0 else np.nan,
                "trim_le_finetune_from_L3": (
                    float(np.mean([trim[lv] <= fine[lv] for lv in late])) if late else np.nan
                ),
            }
        )
    return pd.DataFrame(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection", description=__doc__)
    parser.add_argument("--tasks", default="chord", help="comma-separated example tasks")
    parser.add_argument("--grid", choices=("full", "confirm", "none"), default="confirm")
    parser.add_argument(
        "--setting", action="append", default=[], help="scope/norm/on|off|params|macs/crit"
    )
    parser.add_argument("--criteria", default=None, help="keep only these grid criteria")
    parser.add_argument("--methods", default="trim,finetune", help="comma-separated methods")
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--root", default="runs/selection", help="the study's run directories")
    parser.add_argument(
        "--profile-root",
        default="runs",
        help="where the quick profile's own setting runs (shared with examples.mir.run)",
    )
    parser.add_argument(
        "--out", default="benchmarks/results/selection", help="OUT.md, OUT.csv, OUT-rows.csv"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--read-only", action="store_true", help="tabulate finished rows, train nothing"
    )
    parser.add_argument(
        "--gather",
        type=Path,
        nargs="+",
        default=None,
        metavar="RUNDIR",
        help="write the --methods rows of the first --replicates replicates of these run "
        "directories, named by their settings, to --out (a CSV) and run nothing",
    )
    parser.add_argument(
        "--screen",
        type=Path,
        default=None,
        metavar="ROWS",
        help="print the table of a screen's committed rows (a setting column) and run nothing",
    )
    parser.add_argument(
        "--by", default="val_error", help="column that ranks settings (default: validation)"
    )
    args = parser.parse_args(argv)
    if args.gather is not None:
        rows = gather(args.gather, args.methods.split(","), args.replicates)
        rows.to_csv(args.out, index=False, float_format="%.6g")
        print(f"{args.out}: {len(rows)} rows of {rows.setting.nunique()} settings")
        return 0
    if args.screen is not None:
        print(screen_table(pd.read_csv(args.screen)), end="")
        return 0
    torch.set_num_threads(args.threads)
    settings = {"full": full_grid(), "confirm": list(CONFIRM), "none": []}[args.grid]
    if args.criteria:
        settings = [s for s in settings if s.criterion in args.criteria.split(",")]
    settings += [Setting.parse(s) for s in args.setting]
    methods = tuple(args.methods.split(","))
    rows = run(
        args.tasks.split(","),
        settings,
        args.replicates,
        args.levels,
        args.root,
        methods,
        args.profile_root,
        args.read_only,
    )
    table = summary(rows, args.by)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    rows.to_csv(out.with_name(out.name + "-rows.csv"), index=False)  # one row per cell level
    text = f"Errors are `{args.by}`, mean [min-max] over replicates.\n\n" + markdown(table)
    ranking = scores(table).sort_values(["task", "trim_mean_ratio"])
    text += "\n### Scores\n\n" + ranking.to_markdown(index=False, floatfmt=".3f") + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
