"""Iterative, one-shot and early-bird pacing side by side, from committed lottery rows.

Rows of a lottery run with ``--methods M,M@oneshot,M@earlybird`` (one CSV per task, the run's
``results.csv``) give, per level, each pacing's validation and test error and its total cost
(``total_epochs`` and ``total_seconds``: the reference's share included, so a one-shot or
early-bird level is a model's whole price). This prints them per task, with each pacing's
error and cost as a ratio of the iterative lottery's at the same level:

    python -m examples.mir.run --task chord --replicates 1 --root runs/pacing --workers 2 \\
        --methods finetune,finetune@oneshot,finetune@earlybird
    cp runs/pacing/chord-*/results.csv results/pacing/chord.csv
    python -m benchmarks.pacings --rows results/pacing

and draws error against total training time, per pacing (``--plot-time PNG``).
``--by-level`` prints every task's ``val x`` and ``time x`` in two tables, one column per
level. ``--targets`` holds every paced method of every task in ``--rows`` to the early-bird
target (validation error within 1.05x of the iterative lottery's for at most 0.35x its
seconds) at the levels
nearest 50%, 25% and 12% of the weights, and says on how many tasks it is met. A run with
another monitor threshold (``--set earlybird_threshold=0.03``) is exported with it, so that
its early-bird rows get their own line (``earlybird 0.03``) beside the default's, and a
distilled method's rows theirs (``finetune+kd@earlybird``: ``earlybird 0.03 kd``), held to the
plain iterative lottery; a folder that mixes retraining methods (``trim`` and ``finetune``) is
refused. A table adds a ``paired`` column where some pacing has replicates without an
iterative lottery (rows run apart on another reference): its means are over all its
replicates, its ratios over the paired ones only:

    python -m benchmarks.pacings --export runs/pacing/chord-<hash> --out results/pacing/t/chord.csv

Replicates a later run added to a directory whose others were exported before are exported
apart with ``--only-replicates 1,2`` (``--export`` and ``--curves``).

The early-bird
monitors' distance curves (``replicate-N/earlybird-curves.json`` of a run directory) are
gathered into one CSV, then drawn against epochs:

    python -m benchmarks.pacings --curves runs/curves/chord-* --out results/pacing/chord-curves.csv
    python -m benchmarks.pacings --plot-curves results/pacing/chord-curves.csv \\
        --out docs/figures/pacing_curves_chord.png

matplotlib (the ``plot`` extra) is imported only when a figure is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from examples.mir.profiles import EARLYBIRD_DEFAULTS
from lotterytrim.plot.figure import PLOT_HINT
from lotterytrim.runner.pacing import CURVES_NAME
from lotterytrim.storage.atomic import atomic_file
from lotterytrim.trimming.methods import DISTILL_SUFFIX, split_pacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the columns of a curves CSV (long format: one row per monitor and epoch)
CURVE_COLUMNS = (
    "task",
    "replicate",
    "criterion",
    "level",
    "keep",
    "epoch",
    "distance",
    "drawn_epoch",
    "threshold",
    "window",
    "min_drop",
    "loss",
    "first_loss",
)
#: the pacings in the order they are drawn, with their colours
PACING_COLORS = {"iterative": "tab:blue", "oneshot": "tab:orange", "earlybird": "tab:green"}


def _pacings(rows: pd.DataFrame) -> list[str]:
    """Each row's pacing; early-bird rows exported with their monitor's threshold
    (:func:`export_rows`) are told apart by it, e.g. ``earlybird 0.03``, and by a loss
    guard where they had one (``earlybird 0.03 drop 0.2``); a distilled method's rows end in
    ``kd`` (``earlybird 0.03 kd``, ``iterative kd``)."""
    split = [split_pacing(m) for m in rows["method"]]
    thresholds = rows["threshold"] if "threshold" in rows else [None] * len(rows)
    drops = rows["min_drop"] if "min_drop" in rows else [0.0] * len(rows)
    names = []
    for (method, p), t, d in zip(split, thresholds, drops, strict=True):
        if p == "earlybird" and not pd.isna(t):
            p = f"{p} {t:g}" + (f" drop {d:g}" if not pd.isna(d) and d > 0 else "")
        names.append(p + (" kd" if method.endswith(DISTILL_SUFFIX) else ""))
    return names


def _check_one_retraining(rows: pd.DataFrame) -> None:
    """Refuse ``rows`` of several retraining methods (distillation aside: ``finetune+kd`` is
    ``finetune``'s): they would be averaged into one pacing."""
    names = sorted({split_pacing(m)[0].removesuffix(DISTILL_SUFFIX) for m in rows["method"]})
    if len(names) > 1:
        raise ValueError(
            f"rows of several retraining methods ({', '.join(names)}) would be averaged into "
            "one pacing: give each its own rows folder"
        )


def export_rows(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """A run directory's ``results.csv`` with its early-bird monitors' ``threshold``,
    ``window`` and ``min_drop`` on the early-bird rows (the run's settings, else
    ``lt.EarlyBird``'s defaults)."""
    run_dir = Path(run_dir)
    rows = pd.read_csv(run_dir / "results.csv")
    config = json.loads((run_dir / "settings.json").read_text()).get("config", {})
    options = {**EARLYBIRD_DEFAULTS, **config.get("earlybird", {})}
    paced = [split_pacing(m)[1] == "earlybird" for m in rows["method"]]
    for name in ("threshold", "window", "min_drop"):
        rows[name] = [options[name] if p else None for p in paced]
    return rows


def _ratios(rows: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean errors and costs per ``by`` (e.g. task), level and pacing, with the validation
    error, test error and seconds as ratios of the plain iterative lottery's at the same level
    (distilled pacings too), and the number of replicates (one row each, unrounded).

    Each ratio is paired: it is taken over the replicates that have both the pacing and the
    iterative lottery at that level (``paired`` counts them), so a pacing run on fewer
    replicates is held to the lottery of those replicates only; without any, it is empty."""
    for _, part in rows.groupby(list(by)) if by else [(None, rows)]:
        _check_one_retraining(part)
    rows = rows[rows.level > 0]
    rows = rows.assign(pacing=_pacings(rows))
    keys = [*by, "level", "pacing"]
    columns = ["kept", "val_error", "error", "total_epochs", "total_seconds"]
    pair = [*by, "replicate", "level"]
    iterative = rows[rows.pacing == "iterative"][[*pair, *columns]]
    mean = rows.groupby(keys, as_index=False)[columns].mean()
    counts = rows.groupby(keys, as_index=False).replicate.nunique()
    mean = mean.merge(counts.rename(columns={"replicate": "replicates"}), on=keys)
    both = rows[[*keys, "replicate", *columns]].merge(iterative, on=pair, suffixes=("", "_it"))
    ratios = both.groupby(keys, as_index=False)[columns + [f"{c}_it" for c in columns]].mean()
    ratios["val x"] = ratios.val_error / ratios.val_error_it
    ratios["test x"] = ratios.error / ratios.error_it
    ratios["time x"] = ratios.total_seconds / ratios.total_seconds_it
    paired = both.groupby(keys, as_index=False).replicate.nunique()
    ratios = ratios.merge(paired.rename(columns={"replicate": "paired"}), on=keys)
    mean = mean.merge(ratios[[*keys, "val x", "test x", "time x", "paired"]], on=keys, how="left")
    mean["paired"] = mean["paired"].fillna(0).astype(int)
    return mean[[*keys, *columns, "val x", "test x", "time x", "replicates", "paired"]]


def by_level(rows: pd.DataFrame, column: str = "val x") -> pd.DataFrame:
    """One ratio (``"val x"``, ``"test x"`` or ``"time x"``) of every paced line, one row per
    task and pacing, one column per level: all tasks of ``rows`` at a glance."""
    ratios = _ratios(rows, ["task"])
    paced = ratios[ratios.pacing != "iterative"]
    got = paced.pivot_table(index=["task", "pacing"], columns="level", values=column)
    got.columns = [f"level {level}" for level in got.columns]
    return got.round(2).reset_index()


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean errors and costs per pacing and level, with ratios to the iterative pacing."""
    got = _ratios(rows).set_index(["level", "pacing"]).sort_index()
    if (got.paired == got.replicates).all():  # every mean is paired: one count says it
        got = got.drop(columns="paired")
    return got.drop(columns="test x").round(3)


#: the shares of the weights kept at which the pacings are held to the target (about a half,
#: a quarter and an eighth: the levels nearest them)
TARGET_SIZES = (0.5, 0.25, 0.12)


def targets(
    rows: pd.DataFrame,
    sizes: Sequence[float] = TARGET_SIZES,
    error_bound: float = 1.05,
    time_bound: float = 0.35,
) -> pd.DataFrame:
    """Per task, paced method and size: its validation error, test error and total seconds as
    ratios of the iterative lottery's at the level nearest the size, and whether it meets the
    target there (validation error at most ``error_bound``x for at most ``time_bound``x the
    time). ``rows`` may hold several tasks (a ``task`` column)."""
    ratios = _ratios(rows, ["task"])
    out = []
    for _, group in ratios.groupby("task", sort=True):
        kept = group[group.pacing == "iterative"].set_index("level").kept
        if kept.empty:  # nothing to hold this task's pacings to
            continue
        paced = group[~group.pacing.str.startswith("iterative")]
        for size in sizes:
            level = (kept - size).abs().idxmin()
            out.append(paced[paced.level == level].assign(size=size))
    got = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if got.empty:
        raise ValueError("no paced rows beside an iterative lottery's at the same level")
    got["met"] = (got["val x"] <= error_bound + 1e-9) & (got["time x"] <= time_bound + 1e-9)
    columns = ["task", "pacing", "size", "level", "kept", "val x", "test x", "time x", "met"]
    got = got.sort_values(["task", "pacing", "size"], ascending=[True, True, False])
    return got[[*columns, "replicates"]].reset_index(drop=True)


def target_verdict(got: pd.DataFrame, pacing: str) -> str:
    """One line: the tasks where ``pacing`` meets the target at every size of :func:`targets`."""
    rows = got[got.pacing == pacing]
    if rows.empty:
        raise ValueError(f"no rows of pacing {pacing!r}; have {sorted(set(got.pacing))}")
    met = rows.groupby("task").met.all()
    names = ", ".join(met.index[met]) or "none"
    return f"{pacing}: target met on {int(met.sum())} of {len(met)} tasks ({names})"


# ------------------------------------------------------------------------ curves
def _task(run_dir: Path) -> str:
    """The task of a run directory: its settings' task, else its name before the hash."""
    settings = run_dir / "settings.json"
    if settings.exists():
        task = json.loads(settings.read_text()).get("config", {}).get("task")
        if task:
            return str(task)
    return run_dir.name.rsplit("-", 1)[0]


def collect_curves(run_dirs: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The early-bird distance curves of every replicate of ``run_dirs``, in long format
    (:data:`CURVE_COLUMNS`): one row per monitor and epoch measured. ``drawn_epoch`` is empty
    for a monitor that never settled; ``loss`` is the validation loss reported at the epoch
    and ``first_loss`` the first one (empty where the training reported none), for
    ``min_drop`` guards. A run directory without any curves file is refused."""
    records = []
    for run_dir in map(Path, run_dirs):
        files = sorted(run_dir.glob(f"replicate-*/{CURVES_NAME}"))
        if not files:
            raise FileNotFoundError(
                f"{run_dir} holds no replicate-*/{CURVES_NAME}: its references were trained "
                "without an @earlybird method, or before the curves were kept"
            )
        task = _task(run_dir)
        for file in files:
            curves = json.loads(file.read_text())
            losses = curves.get("losses") or [None] * (len(curves["distance_epochs"]) + 1)
            for m in curves["monitors"]:
                pairs = zip(curves["distance_epochs"], m["distances"], losses[1:], strict=True)
                for epoch, distance, loss in pairs:
                    records.append(
                        (task, curves["replicate"], m["criterion"], m["level"], m["keep"])
                        + (epoch, distance, m["drawn_epoch"], m["threshold"], m["window"])
                        + (m.get("min_drop", 0.0), loss, losses[0])
                    )
    frame = pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))
    frame["drawn_epoch"] = frame["drawn_epoch"].astype("Int64")
    frame[["loss", "first_loss"]] = frame[["loss", "first_loss"]].astype(float)
    return frame.sort_values(["task", "replicate", "criterion", "level", "epoch"], kind="stable")


def _figure(panels: int, columns: int, width: float, height: float) -> tuple[Figure, list]:
    """A constrained figure with ``panels`` axes in ``columns`` columns (matplotlib needed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"benchmarks.pacings draws with matplotlib: {PLOT_HINT}") from exc
    rows = -(-panels // columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]
    return figure, axes


def _save(figure: Figure, path: str | os.PathLike[str]) -> None:
    """Write the figure as PNG atomically."""
    with atomic_file(path) as temporary, open(temporary, "wb") as stream:
        figure.savefig(stream, format="png", dpi=110)


def plot_curves(curves: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> Figure:
    """Early-bird distance against the reference's epochs: one axes per (task, criterion,
    replicate), one line per level (labelled by its keep share), the threshold dashed, each
    draw a dot on its line. Written as PNG to ``path`` if given."""
    keys = ["task", "criterion", "replicate"]
    panels = list(curves.groupby(keys, sort=True))
    figure, axes = _figure(len(panels), min(len(panels), 3), 4.6, 3.3)
    for ax, ((task, criterion, replicate), part) in zip(axes, panels, strict=True):
        colors = iter(_colors(part["level"].nunique()))
        drawn_x, drawn_y, drawn_c = [], [], []
        for level, line in part.groupby("level", sort=True):
            color = next(colors)
            line = line.sort_values("epoch")
            label = f"level {level}: keep {line['keep'].iloc[0]:.0%}"
            ax.plot(line["epoch"], line["distance"], "-", color=color, lw=1.2, label=label)
            drawn = line["drawn_epoch"].iloc[0]
            at = line[line["epoch"] == drawn]
            if not pd.isna(drawn) and not at.empty:
                drawn_x.append(drawn)
                drawn_y.append(float(at["distance"].iloc[0]))
                drawn_c.append(color)
        windows = ", ".join(str(w) for w in sorted(part["window"].unique()))
        for threshold in sorted(part["threshold"].unique()):
            label = f"threshold {threshold:g} (window {windows})"
            ax.axhline(threshold, color="black", ls="--", lw=1.0, label=label)
        if drawn_x:
            ax.scatter(
                drawn_x, drawn_y, c=drawn_c, s=36, edgecolors="black", zorder=3, label="draw"
            )
        ax.set_title(f"{task}, {criterion}, replicate {replicate}")
        ax.set(xlabel="reference epoch", ylabel="keep-set distance to the epoch before")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if path is not None:
        _save(figure, path)
    return figure


def _colors(n: int) -> list:
    """``n`` colours from light to dark (deeper levels darker)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 * (1 - i / max(n - 1, 1))) for i in range(n)]


# ------------------------------------------------------------------------ error and time
def plot_time(
    rows: pd.DataFrame,
    path: str | os.PathLike[str] | None = None,
    x: str = "total_seconds",
) -> Figure:
    """Error against total training time, per pacing: one row of two axes per task
    (validation error, test error), one line per pacing through its levels (mean over
    replicates, each point labelled by its level), the reference a black star. ``x`` is
    ``"total_seconds"`` or ``"total_epochs"``. Written as PNG to ``path`` if given."""
    if x not in ("total_seconds", "total_epochs"):
        raise ValueError(f"x must be 'total_seconds' or 'total_epochs', got {x!r}")
    rows = rows.assign(pacing=_pacings(rows))
    tasks = sorted(rows["task"].unique())
    figure, axes = _figure(2 * len(tasks), 2, 4.6, 3.4)
    columns = ["val_error", "error", x]
    for t, task in enumerate(tasks):
        part = rows[rows["task"] == task]
        mean = part.groupby(["pacing", "level"])[columns].mean()
        reference = part[part["level"] == 0][columns].mean()
        for ax, error, name in zip(
            axes[2 * t : 2 * t + 2], ("val_error", "error"), ("validation", "test"), strict=True
        ):
            present = set(mean.index.get_level_values("pacing"))
            for pacing in sorted(present, key=lambda p: (list(PACING_COLORS).index(
                    p.split()[0]), p)):  # fmt: skip
                color = PACING_COLORS[pacing.split()[0]]
                style = "o--" if " " in pacing else "o-"  # another threshold: dashed
                line = mean.xs(pacing, level="pacing")
                line = line[line.index > 0].sort_index()
                ax.plot(line[x], line[error], style, color=color, ms=4, lw=1.2, label=pacing)
                for level, point in line.iterrows():
                    ax.annotate(
                        str(level), (point[x], point[error]), xytext=(3, 3), fontsize=7,
                        textcoords="offset points", color=color,
                    )  # fmt: skip
            ax.scatter([reference[x]], [reference[error]], marker="*", s=90, c="black",
                       label="reference", zorder=3)  # fmt: skip
            unit = "seconds" if x == "total_seconds" else "epochs"
            ax.set(xlabel=f"total training {unit} (reference's share included)")
            ax.set(ylabel=f"{name} error", title=f"{task}: {name} error (numbers: level)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    if path is not None:
        _save(figure, path)
    return figure


def _rows(folders: Sequence[str]) -> pd.DataFrame:
    """Every task's rows in ``folders`` (``<task>.csv``, curve files left out): a task's rows
    from several folders (e.g. another monitor setting run apart) are read together."""
    frames: list[pd.DataFrame] = []
    for folder in folders:
        files = [p for p in sorted(Path(folder).glob("*.csv")) if not p.stem.endswith("-curves")]
        if not files:
            raise SystemExit(f"no <task>.csv rows in {folder}")
        frames.extend(pd.read_csv(p) for p in files)
    rows = pd.concat(frames, ignore_index=True)
    for task, part in rows.groupby("task"):
        try:
            _check_one_retraining(part)
        except ValueError as exc:
            raise SystemExit(f"{task} in {', '.join(map(str, folders))}: {exc}") from None
    keys = rows.assign(pacing=_pacings(rows))[["task", "pacing", "replicate", "level"]]
    twice = keys[keys.duplicated()]
    if not twice.empty:  # a folder given twice, or one run exported into two folders
        first = twice.iloc[0]
        raise SystemExit(
            f"{first.task}: two rows of pacing {first.pacing!r}, replicate {first.replicate}, "
            f"level {first.level} in {', '.join(map(str, folders))}: each would count twice"
        )
    return rows


def _replicates(text: str) -> tuple[int, ...]:
    """Comma-separated replicate numbers, for argparse."""
    try:
        got = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        got = ()
    if not got or min(got) < 0:
        raise argparse.ArgumentTypeError(f"replicates as R,R (e.g. 1,2), got {text!r}")
    return got


def _keep(frame: pd.DataFrame, replicates: Sequence[int] | None) -> pd.DataFrame:
    """The rows of ``replicates`` (all without); a replicate the frame lacks is refused."""
    if replicates is None:
        return frame
    missing = sorted(set(replicates) - set(frame["replicate"]))
    if missing:
        have = sorted(set(frame["replicate"]))
        raise SystemExit(f"--only-replicates: no replicate {missing} here (have {have})")
    return frame[frame["replicate"].isin(replicates)]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of every task's rows in ``--rows`` (and draw ``--plot-time``), or hold
    them to the target (``--targets``), or export early-bird curves (``--curves``), or draw
    them (``--plot-curves``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pacings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows", nargs="+", default=["results/pacing"],
        help="folders of <task>.csv rows (a task's rows in several are read together)",
    )  # fmt: skip
    parser.add_argument("--plot-time", metavar="PNG", help="draw error against training time")
    parser.add_argument(
        "--time", choices=("total_seconds", "total_epochs"), default="total_seconds",
        help="the x axis of --plot-time (default: total_seconds)",
    )  # fmt: skip
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--curves", nargs="+", metavar="RUNDIR", help="export to --out (CSV)")
    mode.add_argument("--plot-curves", metavar="CSV", help="draw a curves CSV to --out (PNG)")
    mode.add_argument("--export", metavar="RUNDIR", help="a run's rows, thresholds added, to --out")
    mode.add_argument(
        "--by-level", action="store_true",
        help="every task's val x and time x per level, one table each",
    )  # fmt: skip
    mode.add_argument(
        "--targets", action="store_true",
        help="every task's rows in --rows held to the target at about 50%%, 25%% and 12%% kept",
    )  # fmt: skip
    parser.add_argument("--out", help="the CSV of --curves, the PNG of --plot-curves")
    parser.add_argument(
        "--only-replicates", metavar="R,R", type=_replicates,
        help="--export and --curves keep these replicates only (those a run added to a "
        "directory whose other replicates were exported before)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if (args.curves or args.plot_curves or args.export) and not args.out:
        parser.error("--curves, --plot-curves and --export write to --out")
    if args.only_replicates is not None and not (args.export or args.curves):
        parser.error("--only-replicates goes with --export or --curves")
    if args.export:
        rows = _keep(export_rows(args.export), args.only_replicates)
        with atomic_file(args.out) as temporary:
            rows.to_csv(temporary, index=False)
        print(f"{args.out}: {len(rows)} rows")
        return 0
    if args.curves:
        curves = _keep(collect_curves(args.curves), args.only_replicates)
        keys = ["task", "replicate", "criterion", "level"]
        with atomic_file(args.out) as temporary:
            curves.to_csv(temporary, index=False)
        print(f"{args.out}: {len(curves)} rows, {curves.groupby(keys).ngroups} curves")
        return 0
    if args.plot_curves:
        plot_curves(pd.read_csv(args.plot_curves), args.out)
        return 0
    try:
        return _report(args)
    except ValueError as exc:  # rows that cannot be compared: say why, no traceback
        raise SystemExit(f"{', '.join(args.rows)}: {exc}") from None


def _report(args: argparse.Namespace) -> int:
    """The tables (and figure) or the targets of ``--rows``."""
    if args.targets:
        got = targets(_rows(args.rows))
        print(got.round(3).to_markdown(index=False), end="\n\n")
        for pacing in sorted(set(got.pacing)):
            print(target_verdict(got, pacing))
        return 0
    rows = _rows(args.rows)
    if args.by_level:
        for column in ("val x", "time x"):
            print(f"{column}\n\n{by_level(rows, column).to_markdown(index=False)}\n")
        return 0
    for task, part in rows.groupby("task", sort=True):
        print(f"{task}\n\n{table(part).to_markdown()}\n")
    if args.plot_time:
        plot_time(rows, args.plot_time, args.time)
    return 0


if __name__ == "__main__":
    sys.exit(main())
