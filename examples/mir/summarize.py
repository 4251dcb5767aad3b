"""Result rows of the task lotteries, and every table and figure of ``docs/results.md`` from them.

    python -m examples.mir.summarize --runs runs/quick --rows results/quick \\
        --doc docs/results.md --figure docs/figures/figure2_quick.png

``--runs`` exports the finished cells of every run directory under it to one small CSV per task
in ``--rows`` (one row per cell and level, with a batch-1 CPU latency measured from the level's
model file), replacing that task's file. Without ``--runs`` only the committed rows are read.
The tables are printed; ``--doc`` rewrites the blocks between ``<!-- summarize:NAME -->`` and
``<!-- /summarize:NAME -->`` in a markdown file with them, and ``--check`` only says whether that
file is up to date. Models are chosen on validation error (``lt.pick_models``); test error reports.
The rows are read and written by :mod:`examples.mir.row_files`, the tables built by
:mod:`examples.mir.tables`; this module is the command and the doc update.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import lotterytrim as lt

from .row_files import export, load_rows
from .tables import render

__all__ = ["main", "update_doc"]

_BLOCK = re.compile(r"(<!-- summarize:([\w-]+) -->\n)(.*?)(<!-- /summarize:\2 -->)", re.S)


def update_doc(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with each marked block replaced by the table of that name."""
    found = {m.group(2) for m in _BLOCK.finditer(text)}
    unknown = found - set(blocks)
    if unknown:
        raise SystemExit(f"the doc names blocks this command does not make: {sorted(unknown)}")
    return _BLOCK.sub(lambda m: f"{m.group(1)}{blocks[m.group(2)]}\n{m.group(4)}", text)


def main(argv: Sequence[str] | None = None) -> int:
    """Export rows (with ``--runs``), print the tables, update the doc and draw Figure 2."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.mir.summarize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=Path, default=Path("results/quick"), help="row files")
    parser.add_argument("--runs", type=Path, default=None, help="export these run dirs first")
    parser.add_argument("--tasks", default=None, help="with --runs: only these, comma-separated")
    parser.add_argument("--doc", type=Path, default=None, help="markdown file to update")
    parser.add_argument("--check", action="store_true", help="only check --doc is up to date")
    parser.add_argument("--figure", type=Path, default=None, help="write Figure 2 here")
    args = parser.parse_args(argv)
    if args.runs is not None:
        tasks = None if args.tasks is None else args.tasks.split(",")
        for path in export(args.runs, args.rows, tasks=tasks):
            print(f"rows written: {path}")
    results = load_rows(args.rows)
    blocks = render(results)
    if args.doc is not None:
        old = args.doc.read_text(encoding="utf-8")
        new = update_doc(old, blocks)
        if args.check:
            if new != old:
                print(f"{args.doc} is not what the rows under {args.rows} give", file=sys.stderr)
                return 1
            print(f"{args.doc} matches the rows under {args.rows}")
            return 0
        args.doc.write_text(new, encoding="utf-8")
        print(f"updated {args.doc}")
    if args.figure is not None:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        lt.plot.figure2(results, path=args.figure)
        print(f"Figure 2: {args.figure}")
    for name, table in blocks.items():
        print(f"\n{name}:\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
