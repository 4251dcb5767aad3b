"""Time one 30% trimming step (trace, rank, trim) against torch-pruning on the same models.

Run:  python benchmarks/engine_speed.py [--repeats 3] [--out docs/benchmarks.md]
Both engines start from a fresh copy of the same model in the same process; the table reports
medians and the ratio lotterytrim / torch-pruning (below 1 means lotterytrim is faster).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

import lotterytrim as lt


class DilatedClassifier(nn.Module):
    """8 dilated Conv1d layers of 256 channels on 16000 samples, flattened into a Linear."""

    def __init__(self, channels: int = 256, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for i in range(8):
            stride = 2 if i < 4 else 1
            layers += [
                nn.Conv1d(c, channels, 3, stride=stride, dilation=2**i, padding=2**i),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            ]
            c = channels
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels * 1000, 64)
        self.out = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.features(x).flatten(1))))


class Crepe(nn.Module):
    """CREPE 'full': 6 conv layers (1024, 128, 128, 128, 256, 512 filters), about 22M params."""

    def __init__(self) -> None:
        super().__init__()
        filters, widths, strides = [1024, 128, 128, 128, 256, 512], [512] + [64] * 5, [4] + [1] * 5
        layers: list[nn.Module] = []
        c = 1
        for f, w, s in zip(filters, widths, strides, strict=True):
            pad = (w - 1) // 2
            layers += [
                nn.Conv2d(c, f, (w, 1), stride=(s, 1), padding=(pad, 0)),
                nn.ReLU(),
                nn.BatchNorm2d(f),
                nn.MaxPool2d((2, 1)),
            ]
            c = f
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, 1, 1024, 1)).numel()
        self.out = nn.Linear(flat, 360)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.view(x.shape[0], 1, -1, 1))
        return self.out(h.flatten(1))


class BiGRUTagger(nn.Module):
    """Conv front end, 2-layer bidirectional GRU of 256 units, frame classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(64, 128, 3, padding=1)
        self.gru = nn.GRU(128, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).transpose(1, 2)
        return self.out(self.gru(h)[0])


def _time(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ours(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        m = copy.deepcopy(model)
        lt.trim(m, x, "magnitude", 0.3)

    return run


def _theirs(model: nn.Module, x: torch.Tensor, head: str) -> Callable[[], None]:
    def run() -> None:
        m = copy.deepcopy(model)
        pruner = tp.pruner.MetaPruner(
            m,
            x,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=0.3,
            global_pruning=True,
            ignored_layers=[m.get_submodule(head)],
        )
        pruner.step()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="append the markdown table to this file")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases = [
        (
            "Conv1d classifier (8x256 dilated, flatten)",
            DilatedClassifier(),
            torch.randn(1, 1, 16000),
            "out",
        ),
        ("CREPE full (6 conv)", Crepe(), torch.randn(1, 1024), "out"),
        ("2-layer biGRU tagger", BiGRUTagger(), torch.randn(1, 64, 100), None),
    ]
    rows = []
    for name, model, x, head in cases:
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        ours = _time(_ours(model, x), args.repeats)
        if head is None:
            theirs_s = "cannot (no GRU pruner)"
            ratio = "-"
        else:
            try:
                theirs = _time(_theirs(model, x, head), args.repeats)
                theirs_s, ratio = f"{theirs:.2f}", f"{ours / theirs:.2f}"
            except Exception as exc:  # noqa: BLE001 - record what the other engine does
                theirs_s, ratio = f"crash: {type(exc).__name__}", "-"
        rows.append((name, f"{params / 1e6:.1f}M", f"{ours:.2f}", theirs_s, ratio))
        print(rows[-1], flush=True)
    lines = [
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, torch-pruning {tp.__version__}; median of {args.repeats}.",
        "",
        "| model | params | lotterytrim s | torch-pruning s | ratio |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
