"""lotterytrim.report: exact numbers on hand-computed models, tables, errors, model untouched."""

from __future__ import annotations

import copy
import json
import math
import os
import struct
import tempfile
import time
import warnings

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune
from zoo_transformers import EncoderClassifier, SpectrogramViT

import lotterytrim as lt
import lotterytrim.storage.io
from lotterytrim.measure.layers import REST, layer_diff, layer_table
from lotterytrim.measure.report import Report, _disk_bytes, compare, median_seconds, report
from lotterytrim.measure.tables import ReportTable


def tiny_mlp() -> nn.Sequential:
    """Linear(4->3), ReLU, Linear(3->2): 23 params, 12 + 3 + 6 = 21 MACs per example."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def conv_net(width: int) -> nn.Sequential:
    """Small 1-d CNN whose cost grows with ``width``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, width, 5),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def state_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor], flags: list[bool]) -> None:
    """Same tensors bit for bit, same train/eval flags, no leftover hooks."""
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert [m.training for m in model.modules()] == flags
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_exact_numbers_on_tiny_mlp() -> None:
    model = tiny_mlp()
    result = report(model, torch.randn(1, 4), latency=False)
    assert isinstance(result, Report)
    assert result.model == "Sequential"
    assert result.params == 4 * 3 + 3 + 3 * 2 + 2 == 23
    assert result.prunable_params == 23 - 2  # the output layer's bias: outputs never shrink
    assert result.macs == 21
    assert result.macs_by_operator == {"linear": 18, "relu": 3}
    assert result.param_bytes == 23 * 4
    assert result.uncounted_ops == ()
    assert result.input_shapes == ((1, 4),)


def _saved_size(model: nn.Module, folder: os.PathLike[str] | str) -> tuple[int, int]:
    """Size of the file ``lt.save(model, path)`` writes, and the length of its JSON header."""
    path = os.path.join(folder, "model.lt")
    lt.save(model, path)
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    assert "lotterytrim" in header["__metadata__"]
    return os.path.getsize(path), header_len


def test_disk_bytes_is_the_size_of_an_lt_save_file(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = nn.Linear(3, 2)
    size, header_len = _saved_size(model, tmp_path)
    assert size == 8 + header_len + (3 * 2 + 2) * 4  # header + raw float32 data
    plain = os.path.join(tmp_path, "plain.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, plain)
    assert size > os.path.getsize(plain)  # the lotterytrim header is part of the figure

    assert report(model, torch.randn(1, 3), latency=False).disk_bytes == size
    scratch = os.path.join(tmp_path, "scratch")
    os.mkdir(scratch)
    monkeypatch.setattr(tempfile, "tempdir", scratch)
    assert _disk_bytes(model) == size
    assert os.listdir(scratch) == []  # the measured file and its folder are deleted


def test_disk_bytes_handles_shared_and_non_contiguous_tensors(
    tmp_path: os.PathLike[str],
) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight  # shared
            self.c = nn.Linear(3, 5, bias=False)
            self.c.weight = nn.Parameter(torch.randn(3, 5).t())  # non-contiguous

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    model = Tied()
    assert not model.c.weight.is_contiguous()
    size, header_len = _saved_size(model, tmp_path)
    assert size == 8 + header_len + (16 + 16 + 15) * 4  # the tied weight is written twice
    assert _disk_bytes(model) == size
    result = report(model, torch.randn(1, 4), latency=False)
    assert result.disk_bytes == size
    assert result.params == 16 + 15  # shared weight counted once
    assert result.param_bytes == (16 + 15) * 4


def test_disk_bytes_of_a_masked_model_leaves_the_masks_out(tmp_path: os.PathLike[str]) -> None:
    model = nn.Linear(4, 3)
    prune.l1_unstructured(model, "weight", amount=0.5)
    size, header_len = _saved_size(model, tmp_path)
    assert size == 8 + header_len + (12 + 3) * 4  # masked products, no weight_orig or mask
    assert _disk_bytes(model) == size


def test_trimmed_model_is_smaller_on_disk(tmp_path: os.PathLike[str]) -> None:
    model, x = conv_net(12), torch.randn(4, 1, 60)
    reference = copy.deepcopy(model)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.5)
    trimmer.capture_rewind()
    trimmer.step()
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in reference.parameters()
    )
    small = report(model, x, latency=False)
    big = report(reference, x, latency=False)
    assert small.disk_bytes < big.disk_bytes
    assert small.disk_bytes == _saved_size(model, tmp_path)[0]


def test_disk_bytes_failure_is_a_value_error_naming_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(model: nn.Module, path: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(lotterytrim.storage.io, "save", broken)
    with pytest.raises(ValueError, match="Sequential.*disk full") as info:
        report(tiny_mlp(), torch.randn(1, 4), latency=False)
    assert isinstance(info.value.__cause__, OSError)


def test_activation_memory_of_a_known_chain() -> None:
    # Linear(1000->1000) output (4000 B) and ReLU output (4000 B) are alive together while
    # ReLU runs, so the peak is at least 8000 B; the only other activation is the final
    # 10-float output (40 B), so it is at most 8040 B.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))
    result = report(model, torch.randn(1, 1000), latency=False)
    assert 8000 <= result.peak_activation_bytes <= 8040
    assert result.param_bytes == (1000 * 1000 + 1000 + 1000 * 10 + 10) * 4
    assert result.memory_bytes == result.param_bytes + result.peak_activation_bytes


def test_in_place_activation_allocates_nothing_new() -> None:
    # With ReLU(inplace=True) only one 4000 B tensor is alive before the final 40 B output.
    model = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU(inplace=True), nn.Linear(1000, 10))
    result = report(model, torch.randn(1, 1000), latency=False)
    assert 4000 <= result.peak_activation_bytes <= 4040


def test_batch_is_cut_to_one_example() -> None:
    model = conv_net(8)
    single = report(model, torch.randn(1, 1, 200), latency=False)
    batched = report(model, torch.randn(6, 1, 200), latency=False)
    assert batched.input_shapes == ((1, 1, 200),)
    assert batched.macs == single.macs
    assert batched.peak_activation_bytes == single.peak_activation_bytes
    whole = report(model, torch.randn(6, 1, 200), latency=False, batch_dim=None)
    assert whole.input_shapes == ((6, 1, 200),)
    assert whole.macs == 6 * single.macs


def test_smaller_model_is_strictly_cheaper() -> None:
    x = torch.randn(2, 1, 400)
    big = report(conv_net(32), x, latency=False)
    small = report(conv_net(8), x, latency=False)
    for metric in (
        "params",
        "prunable_params",
        "macs",
        "disk_bytes",
        "param_bytes",
        "peak_activation_bytes",
        "memory_bytes",
    ):
        assert getattr(small, metric) < getattr(big, metric), metric


def test_recurrent_model_macs_closed_form() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(8, 6, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.gru(x)[0])

    result = report(Tagger(), torch.randn(4, 20, 8), latency=False)
    gru = 20 * 2 * (3 * 6 * (8 + 6) + 3 * 6 * (12 + 6))  # batch 1, 20 steps, 2 directions
    assert result.macs == gru + 20 * 12 * 3
    assert result.macs_by_operator["gru"] == gru


def test_latency_fields_and_threads_restored() -> None:
    model = tiny_mlp()
    before = torch.get_num_threads()
    result = report(model, torch.randn(1, 4), runs=5, warmup=1, threads=1)
    assert torch.get_num_threads() == before
    assert result.latency_median_s is not None and result.latency_median_s > 0
    assert result.latency_iqr_s is not None and result.latency_iqr_s >= 0
    assert result.threads == 1 and result.runs == 5
    skipped = report(model, torch.randn(1, 4), latency=False)
    assert skipped.latency_median_s is None and skipped.latency_iqr_s is None
    assert skipped.threads is None and skipped.runs == 0


def test_train_mode_flags_and_parameters_are_left_as_they_were() -> None:
    model = conv_net(4)
    model.train()
    model[1].eval()  # a mix of modes must come back exactly
    flags = [m.training for m in model.modules()]
    before = state_snapshot(model)
    report(model, torch.randn(3, 1, 50), runs=2, warmup=0)
    layer_table(model, torch.randn(3, 1, 50))
    assert_unchanged(model, before, flags)


def test_non_module_is_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="function"):
        report(lambda x: x, torch.randn(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        layer_table("model", torch.randn(1))  # type: ignore[arg-type]


def test_bad_example_inputs_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="example_inputs"):
        report(tiny_mlp(), 3.0, latency=False)


def test_failing_model_is_a_value_error_and_model_unchanged() -> None:
    model = conv_net(4).train()
    flags = [m.training for m in model.modules()]
    before = state_snapshot(model)
    with pytest.raises(ValueError, match="Sequential") as info:
        report(model, torch.randn(1, 3, 50))  # 3 channels, conv expects 1
    assert "channels" in str(info.value)
    assert "batch_dim" not in str(info.value)  # nothing was cut
    assert isinstance(info.value.__cause__, RuntimeError)
    assert_unchanged(model, before, flags)
    with pytest.raises(ValueError, match="batch_dim=None"):
        report(model, torch.randn(4, 3, 50))  # cut to one example: the error says so
    assert_unchanged(model, before, flags)


def test_invalid_counts_are_value_errors() -> None:
    with pytest.raises(ValueError, match="runs"):
        report(tiny_mlp(), torch.randn(1, 4), runs=0)
    with pytest.raises(ValueError, match="threads"):
        report(tiny_mlp(), torch.randn(1, 4), threads=0)
    with pytest.raises(ValueError, match="batch_dim"):
        report(tiny_mlp(), torch.randn(1, 4), batch_dim=-1)


def test_unprunable_modules_are_excluded() -> None:
    model = conv_net(4)
    x = torch.randn(1, 1, 50)
    full = report(model, x, latency=False)
    assert full.params == 24 + 8 + 52 + 50
    assert full.prunable_params == full.params - 10  # only the output bias is out of reach
    # the output layer was already kept whole; its input columns still follow conv 3's units
    assert report(model, x, latency=False, unprunable=[model[7]]).prunable_params == 124
    # conv 3 keeps its 4 channels: its bias and the head's weight stay, its input columns go
    middle = report(model, x, latency=False, unprunable=[model[3]])
    assert middle.prunable_params == 124 - 4 - 4 * 10


class _Scaled(nn.Module):
    """fc1 (9 params), a module-owned scale on its 3 features, fc2 (8 params) to the output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.scale = nn.Parameter(torch.ones(3))
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.scale)


def test_module_owned_parameters_are_prunable() -> None:
    result = report(_Scaled(), torch.randn(1, 2), latency=False)
    assert result.params == 9 + 3 + 8
    assert result.prunable_params == 9 + 3 + 6  # the scale shrinks with fc1; fc2's bias stays


@lt.unprunable
class _KeptLinear(nn.Linear):
    """A Linear subclass tagged through the class decorator: every instance is unprunable."""


class _Tagged(nn.Module):
    """Hand-counted parameters, 112 in all; 106 of them prunable.

    stem Conv1d(2->4, k3): 2*4*3 + 4 = 28; norm BatchNorm1d(4): 8;
    block Linear(4->5) + Linear(5->5): 25 + 30 = 55; head Linear(5->3): 15 + 3 bias;
    scale: 3, on the output. The output keeps its width, so the head's bias and the scale stay.
    """

    def __init__(self, head: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv1d(2, 4, 3)
        self.norm = nn.BatchNorm1d(4)
        self.block = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5))
        self.head = head(5, 3)
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.stem(x))).mean(-1)
        return self.head(self.block(h)) * self.scale


def test_prunable_params_leave_out_tagged_modules() -> None:
    x = torch.randn(1, 2, 10)
    plain = report(_Tagged(), x, latency=False)
    assert plain.params == 112
    assert plain.prunable_params == 112 - 3 - 3

    model = _Tagged()
    lt.unprunable(model.head)  # its outputs were kept anyway; its inputs follow the block
    assert report(model, x, latency=False).prunable_params == 106
    lt.unprunable(model.block)  # a tagged container takes its children with it
    # block.0 keeps its rows (bias included) but loses columns with the stem; block.2 and the
    # head's weight follow only protected units
    assert report(model, x, latency=False).prunable_params == 28 + 8 + 4 * 5
    both = report(model, x, latency=False, unprunable=[model.block, model.stem])
    assert both.prunable_params == 0  # argument and tags add up: no unit is left to remove

    by_class = report(_Tagged(head=_KeptLinear), x, latency=False)
    assert by_class.prunable_params == 106
    assert not getattr(nn.Linear, "_lotterytrim_unprunable", False)  # no tag leaked


def test_a_tied_weight_that_the_trimmer_keeps_whole_is_not_prunable() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)  # 16 + 4
            self.b = nn.Linear(4, 4)  # own bias 4, weight shared with a
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    model = Shared()
    x = torch.randn(1, 4)
    # a's units are rows of the weight b reads by columns: tied, so the trimmer keeps them
    assert report(model, x, latency=False).prunable_params == 0
    _, result = lt.trim(model, x, "magnitude", 0.3)
    assert result.params_after == result.params_before == 24


def test_tuple_and_dict_inputs_and_dict_outputs() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 2)
            self.b = nn.Linear(5, 2)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"sum": self.a(x) + self.b(y)}

    model = TwoInputs()
    x, y = torch.randn(4, 3), torch.randn(4, 5)
    positional = report(model, (x, y), latency=False)
    keywords = report(model, {"x": x, "y": y}, latency=False)
    assert positional.macs == keywords.macs == 3 * 2 + 5 * 2 + 2
    assert positional.input_shapes == ((1, 3), (1, 5))


def test_uncounted_operators_warn_and_are_listed() -> None:
    class Cumulative(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(self.fc(x), dim=-1)

    with pytest.warns(UserWarning, match="aten::cumsum"):
        result = report(Cumulative(), torch.randn(1, 3), latency=False)
    assert result.uncounted_ops == ("aten::cumsum",)


def test_report_renders_and_serialises() -> None:
    result = report(conv_net(8), torch.randn(1, 1, 100), runs=2, warmup=0)
    markdown = result.to_markdown()
    assert markdown.startswith("| metric | Sequential |")
    assert "| macs |" in markdown and " K |" in markdown
    assert "<table>" in result._repr_html_()
    data = json.loads(json.dumps(result.as_dict()))
    assert data["macs"] == result.macs
    with pytest.raises(AttributeError):
        result.params = 0  # type: ignore[misc]


def test_compare_table_raw_numbers_and_ratios() -> None:
    x = torch.randn(1, 1, 200)
    ref = report(conv_net(16), x, latency=False)
    trim = report(conv_net(4), x, runs=2, warmup=0)
    table = compare({"reference": ref, "trimmed": trim})
    assert isinstance(table, pd.DataFrame) and isinstance(table, ReportTable)
    assert list(table.columns) == ["reference", "trimmed", "trimmed / reference"]
    assert table.loc["params", "reference"] == ref.params
    assert table.loc["macs", "trimmed / reference"] == pytest.approx(trim.macs / ref.macs)
    assert math.isnan(table.loc["latency_median_s", "reference"])
    assert math.isnan(table.loc["latency_median_s", "trimmed / reference"])
    assert list(table.index) == [
        "params",
        "prunable_params",
        "macs",
        "disk_bytes",
        "param_bytes",
        "peak_activation_bytes",
        "memory_bytes",
        "latency_median_s",
        "latency_iqr_s",
    ]
    markdown = table.to_markdown()
    assert "| metric | reference | trimmed | trimmed / reference |" in markdown
    assert "KB" in markdown and "x |" in markdown
    assert "<table>" in table._repr_html_()
    assert "trimmed / reference" in repr(table)
    derived = table[["reference"]]
    assert type(derived) is pd.DataFrame


def test_compare_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        compare([report(tiny_mlp(), torch.randn(1, 4), latency=False)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compare({})
    with pytest.raises(TypeError, match="'x'"):
        compare({"x": 1})  # type: ignore[dict-item]


def test_layer_table_rows() -> None:
    model = conv_net(8)
    table = layer_table(model, torch.randn(3, 1, 100))
    assert list(table.index) == ["0", "1", "3", "7", REST]
    assert list(table.columns) == ["type", "units", "params", "macs"]
    assert table.loc["0", "type"] == "Conv1d"
    assert table.loc["0", "units"] == 8
    assert table.loc["3", "params"] == 8 * 8 * 3 + 8
    assert table.loc["0", "macs"] == 8 * 1 * 5 * 96  # batch 1, 96 output positions
    assert table.loc["7", "units"] == 10
    assert table["params"].sum() == sum(p.numel() for p in model.parameters())
    whole = report(model, torch.randn(3, 1, 100), latency=False)
    assert table["macs"].sum() == whole.macs  # ReLUs and pooling are in the last row
    assert table.loc[REST, "macs"] == whole.macs - table["macs"].iloc[:-1].sum() > 0
    assert table.loc[REST, "params"] == 0 and pd.isna(table.loc[REST, "units"])
    assert "| layer | type | units | params | macs |" in table.to_markdown()


def test_layer_diff_matches_layers_by_name() -> None:
    x = torch.randn(1, 1, 100)
    diff = layer_diff(conv_net(16), conv_net(4), x)
    assert diff.loc["0", "units_before"] == 16 and diff.loc["0", "units_after"] == 4
    assert diff.loc["0", "units_ratio"] == pytest.approx(0.25)
    assert diff.loc["3", "params_ratio"] == pytest.approx((4 * 4 * 3 + 4) / (16 * 16 * 3 + 16))
    assert diff.loc["3", "macs_after"] < diff.loc["3", "macs_before"]
    assert diff.loc["7", "units_ratio"] == 1.0

    extra = conv_net(4)
    extra.add_module("extra", nn.Linear(10, 2))
    diff2 = layer_diff(conv_net(4), extra, x, x)
    assert "extra" in diff2.index
    assert pd.isna(diff2.loc["extra", "params_before"])
    assert diff2.loc["extra", "params_after"] == 22
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "extra" in diff2.to_markdown()


def test_prunable_params_are_what_the_trimmer_removes() -> None:
    torch.manual_seed(0)
    model, x = EncoderClassifier(), torch.randn(2, 10, 16)  # nn.MultiheadAttention, pos table
    first = report(model, x, latency=False)
    # everything but the output bias: attention projections and the position table included
    assert first.prunable_params == first.params - model.head.bias.numel()
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3)
    trimmer.capture_rewind()
    for _ in range(2):
        before = report(model, x, latency=False)
        step = trimmer.step()
        after = report(model, x, latency=False)
        removed = before.params - after.params
        assert removed == step.params_before - step.params_after > 0
        assert before.prunable_params - after.prunable_params == removed
        assert after.prunable_params == after.params - model.head.bias.numel()


def test_prunable_params_of_a_model_the_trimmer_cannot_trace_is_zero_with_a_warning() -> None:
    class NoTensorOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> dict[str, int]:
            return {"label": int(self.fc(x).argmax())}

    with pytest.warns(UserWarning, match="prunable_params is 0.*NoTensorOut"):
        result = report(NoTensorOut(), torch.randn(1, 2), latency=False)
    assert result.params == 9 and result.prunable_params == 0


def test_layer_diff_columns_add_up_to_the_model_totals() -> None:
    torch.manual_seed(0)
    model, x = SpectrogramViT(), torch.randn(2, 1, 16, 16)  # owns cls_token and pos_embed
    reference = copy.deepcopy(model)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3)
    trimmer.capture_rewind()
    trimmer.step()
    diff = layer_diff(reference, model, x)
    assert "" not in diff.index and list(diff.index)[-1] == REST
    for side, net in (("before", reference), ("after", model)):
        whole = report(net, x, latency=False)
        assert diff[f"params_{side}"].sum() == whole.params, side
        assert diff[f"macs_{side}"].sum() == whole.macs, side
    own = model.cls_token.numel() + model.pos_embed.numel()
    assert diff.loc[REST, "params_after"] == own  # the model's own parameters, nothing else
    block = layer_table(model, x).loc["blocks.0"]  # holds only the layer-scale vector
    assert block["params"] == model.blocks[0].gamma.numel()
    assert 0 < block["macs"] < diff.loc["blocks.0.fc1", "macs_after"]


def test_median_seconds_times_any_callable_as_report_times_latency() -> None:
    """Warm-up calls untimed, ``runs`` timed ones, on the threads asked, threads restored."""
    calls, threads = [], []

    def work() -> None:
        calls.append(torch.is_inference_mode_enabled())
        threads.append(torch.get_num_threads())
        time.sleep(0.002 if len(calls) > 3 else 0.05)  # slow warm-up, excluded from timing

    before = torch.get_num_threads()
    median, iqr = median_seconds(work, threads=1, runs=5, warmup=3)
    assert len(calls) == 8 and all(calls) and set(threads) == {1}
    assert 0.002 <= median < 0.05 and iqr >= 0
    assert torch.get_num_threads() == before
