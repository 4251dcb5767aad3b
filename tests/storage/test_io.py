"""One-file save/load without pickle: round trips, strict checking, refused and broken files."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from torch import nn
from zoo_patterns import ConvFlatten, EmbedGRU

import lotterytrim as lt
from lotterytrim.storage.io import has_saved_state, load_state, saved_metadata
from lotterytrim.trimming.state import load_trimmer_state


def _trimmed(method: str = "trim"):
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.4, method=method)
    trimmer.capture_rewind()
    trimmer.step()
    return model, trimmer, x


def test_round_trip_rebuilds_the_trimmed_model(tmp_path):
    model, trimmer, x = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path, trimmer, metadata={"task": "onset", "level": 1})
    loaded = lt.load(path, ConvFlatten)
    assert loaded.fc1.out_features == model.fc1.out_features
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))
    tensors, plan, meta = load_state(path)
    assert plan == trimmer.plan and meta == {"task": "onset", "level": 1}
    assert set(tensors) == set(model.state_dict())


def test_header_layout(tmp_path):
    model, trimmer, _ = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path, trimmer)
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    info = json.loads(header["__metadata__"]["lotterytrim"])
    assert info["format"] == 1 and set(info) == {"format", "plan", "metadata", "trimmer"}
    assert lt.TrimPlan.from_dict(info["plan"]) == trimmer.plan


def test_plain_model_without_trimmer(tmp_path):
    torch.manual_seed(0)
    model = EmbedGRU()
    lt.save(model, tmp_path / "g.lt")
    loaded = lt.load(tmp_path / "g.lt", EmbedGRU)
    pairs = zip(model.parameters(), loaded.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert load_trimmer_state(tmp_path / "g.lt") is None


def test_masked_model_saves_as_plain_weights(tmp_path):
    model, trimmer, x = _trimmed("mask")
    lt.save(model, tmp_path / "m.lt", trimmer)
    loaded = lt.load(tmp_path / "m.lt", ConvFlatten)
    assert not hasattr(loaded.fc1, "weight_mask")
    assert torch.equal(loaded.fc1.weight, model.fc1.weight)
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))


class _Wider(ConvFlatten):
    def __init__(self) -> None:
        super().__init__()
        self.fc2 = nn.Linear(24, 7)


def test_wrong_build_model_names_the_tensor(tmp_path):
    model, trimmer, _ = _trimmed()
    lt.save(model, tmp_path / "m.lt", trimmer)
    with pytest.raises(lt.errors.LoadError, match=r"fc2\.weight"):
        lt.load(tmp_path / "m.lt", _Wider)
    with pytest.raises(lt.errors.LoadError, match="build_model"):
        lt.load(tmp_path / "m.lt", EmbedGRU)


def test_truncated_file(tmp_path):
    model, trimmer, _ = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path, trimmer)
    blob = path.read_bytes()
    for cut in (len(blob) - 100, 40, 5):
        path.write_bytes(blob[:cut])
        with pytest.raises(lt.errors.LoadError, match="truncated"):
            lt.load(path, ConvFlatten)


def test_header_length_that_starts_like_a_pickle_still_loads(tmp_path):
    # a header of 0x..80 bytes makes the file's first byte 0x80, the pickle protocol marker
    model, trimmer, _ = _trimmed()
    path = tmp_path / "m.lt"
    for pad in range(256):
        lt.save(model, path, trimmer, metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    loaded = lt.load(path, ConvFlatten)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("kind", ["zip", "pickle"])
def test_pickle_files_are_refused(tmp_path, kind):
    path = tmp_path / "m.pt"
    model = ConvFlatten()
    if kind == "zip":
        torch.save(model.state_dict(), path)
    else:
        torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(lt.errors.LoadError, match="never unpickles"):
        lt.load(path, ConvFlatten)
    with pytest.raises(lt.errors.LoadError, match="never unpickles"):
        load_state(path)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(lt.errors.LoadError, match="not written by lt.save"):
        lt.load(tmp_path / "x.safetensors", ConvFlatten)


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    model, trimmer, _ = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path, trimmer)
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        lt.save(ConvFlatten(), path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.lt"]


def test_bad_metadata_is_refused_before_writing(tmp_path):
    model, trimmer, _ = _trimmed()
    with pytest.raises(ValueError, match="JSON"):
        lt.save(model, tmp_path / "m.lt", trimmer, metadata={"x": object()})
    assert not (tmp_path / "m.lt").exists()


def test_save_refuses_a_trimmer_whose_plan_is_stale(tmp_path):
    model, trimmer, x = _trimmed()
    lt.trim(model, x, "magnitude", 0.2)
    with pytest.raises(lt.errors.TrimmerStateError, match="outside the trimmer"):
        lt.save(model, tmp_path / "m.lt", trimmer)
    assert not (tmp_path / "m.lt").exists()


class _Windowed(nn.Module):
    """A front end with non-persistent buffers, as mel filterbanks and windows are registered."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(32), persistent=False)
        self.register_buffer("steps", torch.arange(32), persistent=False)  # int64, kept as is
        self.conv = nn.Conv1d(1, 8, 3, padding=1)
        self.register_buffer("gain", torch.linspace(0.5, 1.5, 8), persistent=False)
        self.fc = nn.Linear(8 * 32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x * self.window)) * self.gain[: self.conv.out_channels, None]
        return self.fc(y.flatten(1)) + 0 * self.steps[:1]


def test_non_persistent_buffers_save_and_load(tmp_path):
    torch.manual_seed(0)
    model, x = _Windowed(), torch.randn(4, 1, 32)
    path = tmp_path / "plain.lt"
    lt.save(model, path)
    loaded = lt.load(path, _Windowed)
    assert torch.equal(loaded.window, model.window) and loaded.steps.dtype == torch.int64
    trimmer = lt.LotteryTrimmer(model, x, amount=0.4)
    trimmer.capture_rewind()
    trimmer.step()
    assert model.conv.out_channels < 8
    model.window.mul_(2)  # a buffer changed after construction comes back as it was saved
    lt.save(model, path, trimmer)
    loaded = lt.load(path, _Windowed)
    assert loaded.conv.out_channels == model.conv.out_channels
    assert torch.equal(loaded.window, model.window) and torch.equal(loaded.steps, model.steps)
    assert "window" not in loaded.state_dict()  # still non-persistent after loading
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))
    # the trimmer resumes from the file and trims further
    again = lt.LotteryTrimmer(loaded, x, amount=0.4)
    again.load_state_dict(load_trimmer_state(path))
    again.step()
    assert again.level == 2 and loaded.conv.out_channels < model.conv.out_channels


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "sparse"])
def test_load_checks_the_path_before_reading_it(tmp_path, kind):
    path = tmp_path / "m.lt"
    if kind == "device":
        path.symlink_to("/dev/zero")  # would read until memory runs out
    elif kind == "fifo":
        os.mkfifo(path)  # would block forever on open
    elif kind == "directory":
        path.mkdir()
    else:
        with open(path, "wb") as handle:  # 4 GiB of zeros, no disk used: a bogus header
            handle.truncate(4 << 30)
    with pytest.raises(lt.errors.LoadError, match=str(path.name)):
        lt.load(path, ConvFlatten)
    with pytest.raises(lt.errors.LoadError):
        load_state(path)
    for header_only in (has_saved_state, saved_metadata):  # the runner's checks, too
        with pytest.raises(lt.errors.LoadError, match=str(path.name)):
            header_only(path)


def test_header_only_readers_see_the_metadata_and_the_state(tmp_path):
    model, trimmer, _ = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path, trimmer, metadata={"task": "onset", "level": 1})
    assert saved_metadata(path) == {"task": "onset", "level": 1} and has_saved_state(path)
    lt.save(model, path, metadata={"level": 2}, plan=trimmer.plan)
    assert saved_metadata(path) == {"level": 2} and not has_saved_state(path)


def test_a_header_announcing_more_data_than_the_file_holds_is_refused_before_reading(tmp_path):
    model, _, _ = _trimmed()
    path = tmp_path / "m.lt"
    lt.save(model, path)
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    path.write_bytes(blob[: 8 + n + 16])  # the header intact, the tensors cut short
    with pytest.raises(lt.errors.LoadError, match="truncated: its tensors need"):
        lt.load(path, ConvFlatten)
