"""The storage tracker behind the measured inference memory."""

from __future__ import annotations

import gc

import torch

from lotterytrim.measure.memory import _StorageTracker


def test_tracker_counts_each_storage_once_until_it_is_freed() -> None:
    tracker = _StorageTracker([])
    a = torch.zeros(1000)
    tracker.add(a)
    gc.collect()  # the Python wrapper of a's storage is gone; the storage is not
    b = torch.ones(500)
    tracker.add(b)
    assert (tracker.current, tracker.peak) == (6000, 6000)
    tracker.add(a.view(10, 100))  # a view of a counted storage adds nothing
    assert tracker.current == 6000
    del a
    tracker.add(torch.empty(0))  # frees are seen before the next outputs are counted
    assert (tracker.current, tracker.peak) == (2000, 6000)
    tracker.close()


def test_external_storages_are_never_counted() -> None:
    weight = torch.randn(100)
    tracker = _StorageTracker([weight])
    tracker.add(weight[:50])
    tracker.add(weight * 2)
    assert tracker.current == 400
    tracker.close()
