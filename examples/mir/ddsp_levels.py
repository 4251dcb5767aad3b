"""The generative example's quality against size: a finished ddsp run's rows, summarised per
criterion and level (spectral loss and f0 check of the resynthesis), the level validation
chooses, and a figure of both measures against the share of weights kept.

    python -m examples.mir.ddsp_levels --run runs/ddsp-<hash> \\
        --rows results/generative/ddsp-rows.csv --figure docs/figures/ddsp_levels.png \\
        --doc docs/generative.md

copies the run's rows (``--rows``), prints the tables and writes them into ``--doc`` between
``<!-- ddsp:levels -->`` and ``<!-- /ddsp:levels -->``. ``--from-rows`` rebuilds from the
committed rows alone, without the run directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import lotterytrim as lt

__all__ = ["WITHIN", "choose_level", "level_table", "main", "plot_levels"]

#: a trimmed level qualifies when its mean validation loss is at most this times the reference's
WITHIN = 1.1
_MARKERS = ("<!-- ddsp:levels -->", "<!-- /ddsp:levels -->")


def level_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over replicates per criterion and level: share kept, validation and test spectral
    loss, both as ratios to the same replicates' reference, the f0 check, epochs and seconds."""
    ref = rows[rows.level == 0].drop_duplicates("replicate").set_index("replicate")
    trimmed = rows[rows.level > 0].copy()
    trimmed["val_x"] = trimmed.val_error / trimmed.replicate.map(ref.val_error)
    trimmed["test_x"] = trimmed.error / trimmed.replicate.map(ref.error)
    reference = ref.reset_index().assign(criterion="reference", val_x=1.0, test_x=1.0)
    both = pd.concat([reference, trimmed], ignore_index=True)
    table = both.groupby(["criterion", "level"], sort=False).agg(
        kept=("kept", "mean"),
        params=("params", "mean"),
        val_loss=("val_error", "mean"),
        val_x=("val_x", "mean"),
        test_loss=("error", "mean"),
        test_x=("test_x", "mean"),
        f0_within_50=("f0_within_50", "mean"),
        f0_cents=("f0_cents", "mean"),
        epochs=("epochs", "mean"),
        train_seconds=("train_seconds", "mean"),
        replicates=("replicate", "nunique"),
    )
    return table.reset_index()


def choose_level(table: pd.DataFrame, within: float = WITHIN) -> pd.Series | None:
    """The row of ``level_table`` with the fewest parameters among trimmed levels whose mean
    validation loss is at most ``within`` times the reference's (None when none is)."""
    ok = table[(table.level > 0) & (table.val_x <= within)]
    return None if ok.empty else ok.sort_values(["params", "val_x"]).iloc[0]


def plot_levels(table: pd.DataFrame, path: Path) -> None:
    """Spectral loss (test, as a ratio to the reference) and the median f0 error of the
    resynthesis in cents against the share of weights kept, one line per criterion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    ref = table[table.criterion == "reference"].iloc[0]
    for criterion, rows in table[table.criterion != "reference"].groupby("criterion"):
        rows = pd.concat([ref.to_frame().T, rows]).astype({"kept": float})
        axes[0].plot(rows.kept, rows.test_x.astype(float), "o-", label=criterion)
        axes[1].plot(rows.kept, rows.f0_cents.astype(float), "o-", label=criterion)
    axes[0].axhline(WITHIN, color="grey", lw=0.8, ls="--", label=f"{WITHIN}x the reference")
    axes[0].set_ylabel("test spectral loss / reference's")
    axes[1].set_ylabel("median f0 error on voiced frames (cents)")
    axes[1].set_ylim(bottom=0)
    ticks = [1.0, 0.5, 0.25, 0.1, 0.05]
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:.0%}" for t in ticks])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("share of the reference's weights kept")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame, within: float = WITHIN) -> str:
    """The level table and the chosen level as markdown."""
    shown = table.drop(columns=["params"]).copy()
    shown["f0_within_50"] = (100 * shown.f0_within_50).round(1)
    text = shown.to_markdown(index=False, floatfmt=".3f") + "\n\n"
    best = choose_level(table, within)
    if best is None:
        return text + f"No trimmed level is within {within}x of the reference on validation.\n"
    n = int(best.replicates)
    return text + (
        f"Chosen on validation (mean of {n} replicate{'s' if n > 1 else ''}): the fewest "
        f"parameters within {within}x of the reference's validation loss is "
        f"{best.criterion} level {int(best.level)}, "
        f"{100 * (1 - best.kept):.1f}% of the weights removed, validation {best.val_x:.3f}x and "
        f"test {best.test_x:.3f}x the reference's spectral loss, f0 within 50 cents on "
        f"{100 * best.f0_within_50:.1f}% of voiced frames.\n"
    )


def _into_doc(doc: Path, text: str) -> None:
    """Replace the text between the markers of ``doc``; missing markers are an error."""
    content = doc.read_text()
    start, end = (content.find(m) for m in _MARKERS)
    if start < 0 or end < start:
        raise SystemExit(f"{doc} has no {_MARKERS[0]} ... {_MARKERS[1]} block")
    head = content[: start + len(_MARKERS[0])]
    doc.write_text(head + "\n" + text + content[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.mir.ddsp_levels", description=__doc__)
    parser.add_argument("--run", type=Path, default=None, help="a ddsp run directory")
    parser.add_argument("--rows", type=Path, required=True, help="the rows' CSV (written or read)")
    parser.add_argument("--from-rows", action="store_true", help="read --rows, not the run")
    parser.add_argument("--figure", type=Path, default=None, help="write the figure here")
    parser.add_argument("--doc", type=Path, default=None, help="write the tables into this doc")
    args = parser.parse_args(argv)
    if args.from_rows:
        rows = pd.read_csv(args.rows)
    else:
        if args.run is None or not (args.run / "settings.json").is_file():
            raise SystemExit(f"{args.run} is not a run directory (no settings.json)")
        rows = lt.load_results(args.run)  # every finished level, also while the run goes on
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.rows, index=False, float_format="%.6g")
    if set(rows.task) != {"ddsp"}:
        raise SystemExit(f"the rows are of {sorted(set(rows.task))}, not ddsp")
    table = level_table(rows)
    text = markdown(table)
    print(text, end="")
    if args.figure is not None:
        plot_levels(table, args.figure)
    if args.doc is not None:
        _into_doc(args.doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
