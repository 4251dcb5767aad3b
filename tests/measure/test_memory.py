"""The storage tracker behind the measured inference memory."""

from __future__ import annotations

import gc

import torch
from torch import nn

from lotterytrim.measure.memory import _StorageTracker, peak_activation_bytes


def test_a_storage_counts_once_from_its_writer_to_its_last_reader() -> None:
    tracker = _StorageTracker([])
    a = torch.zeros(1000)
    tracker.add(a)
    gc.collect()  # the Python wrapper of a's storage is gone; the storage is not
    b = torch.ones(500)
    tracker.add(b, inputs=(a,))  # a is read here, so both are live at this step
    assert (tracker.current, tracker.peak) == (6000, 6000)
    tracker.add(a.view(10, 100), inputs=(b,))  # a view of a counted storage adds nothing
    assert tracker.current == 6000
    tracker.add(torch.empty(0))  # nothing reads a or b any more
    assert (tracker.current, tracker.peak) == (0, 6000)
    tracker.close()


def test_a_storage_nobody_reads_lives_one_step() -> None:
    tracker = _StorageTracker([])
    kept = [torch.zeros(100) for _ in range(3)]
    for tensor in kept:
        tracker.add(tensor)  # still referenced from Python, but never read again
    assert (tracker.current, tracker.peak) == (400, 400)
    tracker.keep(kept[0])  # the forward's result is live to the end
    assert tracker.current == 400
    tracker.close()


def test_external_storages_are_never_counted() -> None:
    weight = torch.randn(100)
    tracker = _StorageTracker([weight])
    tracker.add(weight[:50])
    tracker.add(weight * 2, inputs=(weight,))
    assert tracker.current == 400
    tracker.close()


class _Stack(nn.Module):
    """Linear -> ReLU -> Linear; optionally keeps every intermediate in ``held`` as a
    sampling profiler holding the forward's frame would."""

    def __init__(self, hold: bool) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(1000, 1000), nn.Linear(1000, 10)
        self.hold = hold
        self.held: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        r = torch.relu(h)
        if self.hold:
            self.held += [h, r]
        return self.b(r)


def test_references_held_outside_the_forward_do_not_change_the_peak() -> None:
    x = torch.randn(1, 1000)
    free, held = _Stack(hold=False).eval(), _Stack(hold=True).eval()
    held.load_state_dict(free.state_dict())
    assert peak_activation_bytes(held, (x,), {}) == peak_activation_bytes(free, (x,), {})
    assert peak_activation_bytes(free, (x,), {}) == 8000  # h and r live together
