"""Run the paper's lotteries on the six MIR tasks (or the generative ddsp example) and print
their Table 1 rows.

    python -m examples.mir.run --task onset --profile quick
    python -m examples.mir.run --task ddsp --profile quick
    python -m examples.mir.run --task all --profile paper --data-root /data/mir --figure fig2.png

Each task's lottery goes through ``lt.Lottery``: one reference per replicate, then ``levels``
rounds of removing ``amount`` of the weights by each (method, criterion), rewinding and
retraining. A profile fixes everything that changes the results; they are hashed into the run
directory's name, so running the same command again resumes (finished levels are read back,
not retrained) and changing any setting starts a new directory. The profiles are in
:mod:`examples.mir.profiles`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

import lotterytrim as lt

from .features import Splits
from .models import MIR_TASKS, TASKS
from .profiles import PROFILES, Profile
from .references import adopt_from_cli
from .splits import (
    REAL_DATA,
    describe_splits,
    load_real_splits,
    rendered_splits,
    synthetic_splits,
)
from .training import TaskRun

__all__ = ["build_lottery", "headline", "main", "parse_args", "run_task", "trained_reference"]
# ------------------------------------------------------------------------------ running


def _split_source(
    task: str, profile: Profile, data_root: str | None, soundfont: str | None = None
) -> tuple[Callable[..., Splits], tuple[Any, ...]]:
    """How the task's data is made (rendered, synthetic or real splits): a cached function and
    its plain arguments, which worker processes call again instead of receiving the data."""
    if data_root is None:
        args = (task, profile.examples[task], profile.seed, profile.size, profile.fractions)
        if profile.data == "rendered":
            return rendered_splits, (*args, soundfont)
        return synthetic_splits, args
    if task not in REAL_DATA:
        raise ValueError(f"{task} has no real dataset to load; run it without --data-root")
    limit = profile.examples[task] if profile.cap_real_data else None
    root = str(Path(data_root).resolve())
    return load_real_splits, (task, root, profile.size, profile.seed, limit)


def build_lottery(
    task: str,
    profile: Profile,
    root: str | Path = "runs",
    data_root: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    device: str = "cpu",
    soundfont: str | None = None,
) -> tuple[lt.Lottery, TaskRun]:
    """The runner for ``task`` under ``profile``, and the task's data/train/evaluate bundle."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    make, args = _split_source(task, profile, data_root, soundfont)
    run = TaskRun(
        task,
        make(*args),
        profile.size,
        profile.train_settings(task),
        criterion_batches=profile.criterion_batches,
        seed=profile.seed,
        device=device,
        log=log,
        source=(make, args),
    )
    lottery = lt.Lottery(
        run.build_model,
        run.example_inputs,
        run.train,
        run.evaluate,
        profile.config(task),
        data=run.criterion_data,  # made where the cells run, not sent to them
        settings=profile.settings(task, data_root, soundfont),
        root=root,
        progress=progress,
    )
    return lottery, run


def trained_reference(
    task: str, profile_name: str, root: str | Path, replicate: int
) -> tuple[lt.Lottery, TaskRun, torch.nn.Module]:
    """The lottery, the task's bundle and the trained reference of ``replicate`` of a finished
    run of ``task`` under ``root``, for benchmarks that start from it (nothing is trained)."""
    profile = PROFILES[profile_name].override(replicates=replicate + 1)
    lottery, run = build_lottery(task, profile, root, progress=False, log=None)
    ref_file = lottery.directory / f"replicate-{replicate}" / "reference.lt"
    if not ref_file.is_file():
        raise SystemExit(
            f"{ref_file} is missing: run the lottery first "
            f"(python -m examples.mir.run --task {task} --profile {profile_name} --root {root})"
        )
    return lottery, run, lt.load(ref_file, run.build_model)


def run_task(
    task: str,
    profile: Profile,
    root: str | Path = "runs",
    data_root: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    device: str = "cpu",
    soundfont: str | None = None,
    executor: Executor | None = None,
    devices: Sequence[str] | None = None,
    threads: int = 1,
    references_from: Path | None = None,
    only: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, lt.Lottery, TaskRun]:
    """Run (or resume) ``task``'s lottery; returns its results, the runner and the bundle.

    With ``executor`` (e.g. a process pool) its cells run there, on ``devices`` if given, with
    ``threads`` torch threads per worker process; ``references_from`` (a run directory of the
    same task) gives the replicates' trained references, copied instead of trained again;
    ``only`` runs those replicates alone (the returned rows are all those on disk).
    """
    say = log or (lambda _: None)
    start = time.perf_counter()
    lottery, run = build_lottery(task, profile, root, data_root, progress, log, device, soundfont)
    say(
        f"{task}: profile {profile.name}, {TASKS[task].description}; "
        f"data {describe_splits(run.splits)} (train/val/test) ready in "
        f"{time.perf_counter() - start:.1f} s; run directory {lottery.directory}"
    )
    if references_from is not None:
        copied = adopt_from_cli(references_from, lottery, profile.replicates)
        say(f"{task}: {copied} trained reference(s) copied from {references_from}")
    before = len(lottery.results()) if lottery.directory.is_dir() else 0
    results = lottery.run(executor, devices=devices, threads=threads, replicates=only)
    say(
        f"{task}: {len(results)} rows, {len(results) - before} of them new in this run, "
        f"{time.perf_counter() - start:.1f} s in all"
    )
    return results, lottery, run


def _table(results: pd.DataFrame) -> str:
    """Table 1 rows (reference vs trimmed-optimal) of ``results`` as markdown."""
    return str(lt.plot.table1(results).to_markdown())


def headline(results: pd.DataFrame, within: float = 1.1) -> str:
    """Per task, the smallest model within ``within`` x the reference's validation error.

    Chosen on validation error across every method and level (``lt.pick_models``); its test error
    and the reference's are reported beside it.
    """
    lines = []
    chosen = lt.pick_models(results, optimal=within)
    for task, rows in chosen.groupby("task", sort=False):
        by = rows.set_index("model")
        ref = by.loc["reference"]
        if "optimal" not in by.index:
            lines.append(
                f"{task}: no trimmed model within {within}x of the reference's validation "
                f"error ({ref.val_error:.3f}); reference test error {ref.error:.3f}"
            )
            continue
        pick = by.loc["optimal"]
        lines.append(
            f"{task}: smallest model within {within}x of the reference's validation error: "
            f"{pick.method} level {int(pick.level)}, {pick.smaller:.2f}x fewer parameters "
            f"({int(pick.params):,} of {int(ref.params):,}), {ref.macs / pick.macs:.2f}x fewer "
            f"MACs; validation error {pick.val_error:.3f} (reference {ref.val_error:.3f}), "
            f"test error {pick.error:.3f} (reference {ref.error:.3f})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; an unknown task or profile exits naming the valid ones."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.mir.run",
        description="Run the trimming lottery of an MIR task and print its Table 1 row.",
    )
    parser.add_argument(
        "--task",
        required=True,
        choices=[*TASKS, "all"],
        help="task to run, or all: the paper's six MIR tasks (not ddsp, which runs on its own)",
    )
    parser.add_argument(
        "--profile", default="quick", choices=list(PROFILES), help="settings (default: quick)"
    )
    parser.add_argument("--root", default="runs", help="folder of the run directories")
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the real datasets ("
        + ", ".join(sorted(set(REAL_DATA.values())))
        + "); data rendered from a SoundFont when not given",
    )
    parser.add_argument(
        "--soundfont",
        default=None,
        help="a .sf2 file to render the data with (default: the General MIDI SoundFont "
        "pretty_midi ships)",
    )
    parser.add_argument(
        "--replicates", type=_positive, default=None, help="override the profile's replicates"
    )
    parser.add_argument(
        "--levels", type=_non_negative, default=None, help="override the profile's levels"
    )
    parser.add_argument(
        "--epochs", type=_positive, default=None, help="override the epochs of every task"
    )
    parser.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help="override the profile's methods, comma-separated (e.g. trim,lrr,lrr@oneshot)",
    )
    parser.add_argument(
        "--criteria",
        type=_criteria,
        default=None,
        help="override the profile's criteria, comma-separated (e.g. magnitude,information)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a number field of the profile (per-task fields: for the tasks run), e.g. "
        "--set kd_temperature=4 --set lr=3e-3; changes the run directory",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--figure", default=None, help="write Figure 2 to this path")
    parser.add_argument(
        "--threads",
        type=_positive,
        default=1,
        help="torch CPU threads, of each worker with --workers (default 1: the fastest on a "
        "small or shared CPU)",
    )
    parser.add_argument(
        "--device", default="cpu", help="where to train and evaluate, e.g. cuda (default: cpu)"
    )
    parser.add_argument(
        "--scope",
        choices=lt.options.SCOPES,
        default=None,
        help="rank every task's units in this scope (default: the profile's, which chooses "
        "per task on validation; docs/selection.md)",
    )
    parser.add_argument(
        "--references-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="a run directory of the same task whose trained references this run starts from "
        "(copied, not trained again: level 0 does not depend on the levels' settings)",
    )
    parser.add_argument(
        "--only-replicates",
        type=_replicate_list,
        default=None,
        metavar="R,R",
        help="run only these replicates, e.g. 1,2 (a replicate's rows depend on its own seed "
        "alone: a long study split by replicate fills one run directory)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="lottery cells run at once, in local worker processes of --threads threads each "
        "(default 1: in this process); with --device cuda they share the visible GPUs",
    )
    return parser.parse_args(argv)


def _integer(text: str, minimum: int) -> int:
    """``text`` as an integer of at least ``minimum``, or an argparse error saying why not."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _positive(text: str) -> int:
    """An integer >= 1, for argparse."""
    return _integer(text, 1)


def _non_negative(text: str) -> int:
    """An integer >= 0, for argparse."""
    return _integer(text, 0)


def _methods(text: str) -> tuple[str, ...]:
    """Comma-separated method names, each one the runner knows (``+kd`` and ``@PACING``
    included: ``lrr+kd@oneshot``), for argparse."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    known = tuple(lt.methods.METHODS)
    problems: dict[str, str] = {}
    for name in names:
        try:
            lt.methods.check_method_name(name)
        except ValueError as exc:
            problems[name] = str(exc)
    if not names or problems:
        detail = "".join(f"; {why}" for why in problems.values())
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {list(problems) or text!r}{detail}; methods: {', '.join(known)}, "
            f"each with +kd to distil and @oneshot or @earlybird to trim straight to a size"
        )
    return names


def _criteria(text: str) -> tuple[str, ...]:
    """Comma-separated criterion names the library knows, for argparse."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in lt.criteria.CRITERIA]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown criterion(s) {unknown or text!r}; "
            f"criteria: {', '.join(sorted(lt.criteria.CRITERIA))}"
        )
    return names


def _replicate_list(text: str) -> list[int]:
    """``--only-replicates``: comma-separated replicate indices (0 is the first)."""
    try:
        picked = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected replicate numbers such as 1,2: {text!r}"
        ) from None
    if not picked or min(picked) < 0:
        raise argparse.ArgumentTypeError(f"expected replicate numbers such as 1,2: {text!r}")
    return picked


def _worker_devices(device: str, workers: int) -> list[str] | None:
    """One device slot per worker: ``cuda`` spreads them over the visible GPUs; else None."""
    if device != "cuda":
        return None  # the CPU, or one named device every cell uses
    count = torch.cuda.device_count()
    if count == 0:
        raise SystemExit("--device cuda: no GPU is visible")
    return [f"cuda:{i % count}" for i in range(workers)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lotteries asked for on the command line and print their Table 1 rows."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tasks = list(MIR_TASKS) if args.task == "all" else [args.task]
    profile = (
        PROFILES[args.profile]
        .override(args.replicates, args.levels, args.epochs, args.methods, args.criteria)
        .with_settings(args.set, tasks)
    )
    if args.scope is not None:
        profile = profile.with_scope(args.scope)
    beyond = [r for r in args.only_replicates or () if r >= profile.replicates]
    if beyond:
        raise SystemExit(
            f"--only-replicates {beyond[0]}: the run has {profile.replicates} replicate(s), "
            f"0 to {profile.replicates - 1} (raise --replicates)"
        )
    log = tqdm.write
    frames: list[pd.DataFrame] = []
    with contextlib.ExitStack() as stack:
        executor: Executor | None = None
        devices: list[str] | None = None
        if args.workers > 1:  # spawned workers that end with this process
            executor = stack.enter_context(lt.process_pool(args.workers))
            devices = _worker_devices(args.device, args.workers)
        for task in tasks:
            results, lottery, _ = run_task(
                task,
                profile,
                args.root,
                args.data_root,
                not args.no_progress,
                log,
                args.device,
                args.soundfont,
                executor,
                devices,
                args.threads,
                args.references_from,
                args.only_replicates,
            )
            frames.append(results)
            synthetic_splits.cache_clear()  # each task's data is used once here; free it
            rendered_splits.cache_clear()
            load_real_splits.cache_clear()
            print(f"\n{headline(results)}")
            print(f"\nTable 1, {task} ({profile.name} profile; chosen on validation error):\n")
            print(_table(results))
            print(f"\nrun directory: {lottery.directory} (results.csv, models per level)\n")
    everything = pd.concat(frames, ignore_index=True)
    if len(tasks) > 1:
        print(f"Table 1, all tasks ({profile.name} profile):\n")
        print(_table(everything))
    if args.figure is not None:
        lt.plot.figure2(everything, path=args.figure)
        print(f"Figure 2 written to {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
