"""A quick trimming lottery on a synthetic onset-detection task (offline, CPU, a minute or two).

Trains a small conv net to tell whether a 2048-sample excerpt holds a percussive onset, then
runs four levels of: rank channels by magnitude, remove 30% of the weights, rewind the
survivors to their values from early training, retrain. Prints error and size per level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.measure.layers import layer_diff


def make_data(n: int, seed: int, length: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy tonal backgrounds with a note that starts somewhere; in half of the excerpts the
    note starts with a percussive noise burst (label 1), in the others with a soft attack."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000.0
    x = np.zeros((n, length), dtype=np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        x[i] = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 800) * t + rng.uniform(0, 6.28))
        x[i] += rng.normal(0, rng.uniform(0.05, 0.3), length)
        start = rng.integers(0, length - 256)
        rest = np.arange(length - start)
        note = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 1500) * rest / 16000)
        attack = np.minimum(rest / rng.uniform(10, 400), 1.0)
        x[i, start:] += note * attack
        if y[i]:
            decay = np.exp(-rest / rng.uniform(20, 200))
            x[i, start:] += rng.uniform(0.1, 0.6) * rng.normal(0, 1, rest.size) * decay
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class OnsetNet(nn.Module):
    """Four Conv1d blocks with BN and pooling, then two linear layers."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for k in (9, 7, 5, 3):
            layers += [nn.Conv1d(c, width, k, padding=k // 2), nn.BatchNorm1d(width), nn.ReLU()]
            layers.append(nn.MaxPool1d(4))
            c = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width * 8, 64)
        self.out = nn.Linear(64, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.features(x).flatten(1))))


def train(
    model: nn.Module,
    data: tuple,
    epochs: int,
    on_epoch: Callable[[int], object] | None = None,
) -> None:
    x, y = data
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch)


def error(model: nn.Module, data: tuple) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(data[0]).argmax(1) != data[1]).float().mean())


def main() -> None:
    torch.manual_seed(0)
    train_set, val_set, test_set = make_data(1200, 1), make_data(300, 2), make_data(600, 3)
    model = OnsetNet()
    example = train_set[0][:2]
    epochs = 6
    rewind: dict[str, torch.Tensor] = {}

    def capture(epoch: int) -> None:
        if epoch == epochs // 2 - 1:
            rewind.update({k: v.clone() for k, v in model.state_dict().items()})

    train(model, train_set, epochs, capture)
    plan = lt.TrimPlan.identity(model)
    params0 = sum(p.numel() for p in model.parameters())
    print(f"level 0: error {error(model, test_set):.3f}, params {params0}")
    val_batches = [val_set[0][i : i + 100] for i in range(0, 300, 100)]
    for level in range(1, 5):
        step, result = lt.trim(model, example, "activation", 0.3, data=val_batches)
        plan = plan.then(step)
        model.load_state_dict(plan.apply_to_state_dict(rewind))  # rewind survivors to W_k
        train(model, train_set, epochs)
        kept = result.params_after / params0
        print(
            f"level {level}: error {error(model, test_set):.3f}, params {result.params_after} "
            f"({kept:.1%} of the original), removed {result.achieved:.1%} this step"
        )
    widths = layer_diff(OnsetNet(), model, example)[["units_before", "units_after"]]
    print("layer widths, before and after:")
    print(widths.dropna().to_string())


if __name__ == "__main__":
    main()
