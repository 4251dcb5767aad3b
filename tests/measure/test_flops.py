"""MAC counting: cross-checks against FlopCounterMode and closed forms, handler coverage."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.flop_counter import FlopCounterMode

from lotterytrim.measure.flops import ELEMENTWISE_OPS, IGNORED_OPS, count_macs, mac_handles


def reference_flops(model: nn.Module, *args: torch.Tensor) -> int:
    """FLOPs by torch's own counter (two per multiply-add)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops()


def conv_macs(n: int, c_out: int, c_in: int, groups: int, kernel: int, length_out: int) -> int:
    """Closed form of a 1-d convolution: every output position sees c_in/groups*k weights."""
    return n * c_out * (c_in // groups) * kernel * length_out


def recurrent_macs(
    gates: int, tokens: int, input_size: int, hidden: int, layers: int, directions: int
) -> int:
    """Closed form of a stacked recurrent layer: gates*H*(in + H) per token, layer, direction."""
    total = 0
    for layer in range(layers):
        width_in = input_size if layer == 0 else hidden * directions
        total += directions * gates * hidden * (width_in + hidden)
    return tokens * total


def assert_close(ours: int, expected: int, rel: float = 0.01) -> None:
    """Agreement within a relative tolerance (1% by default)."""
    assert abs(ours - expected) <= rel * expected, (ours, expected)


CONV_CASES = {
    "plain": (nn.Conv1d(4, 8, 3), (2, 4, 50)),
    "batched_n5": (nn.Conv1d(3, 6, 5), (5, 3, 40)),
    "dilated": (nn.Conv1d(4, 8, 3, dilation=4), (3, 4, 64)),
    "strided": (nn.Conv1d(4, 8, 7, stride=3, padding=2), (2, 4, 100)),
    "grouped": (nn.Conv1d(8, 16, 3, groups=4), (2, 8, 33)),
    "depthwise": (nn.Conv1d(6, 6, 5, groups=6, padding=2), (1, 6, 20)),
    "unbatched": (nn.Conv1d(3, 5, 3), (3, 25)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv1d_matches_flop_counter_and_closed_form(case: str) -> None:
    conv, shape = CONV_CASES[case]
    x = torch.randn(*shape)
    out_len = conv(x).shape[-1]
    n = shape[0] if len(shape) == 3 else 1
    expected = conv_macs(
        n, conv.out_channels, conv.in_channels, conv.groups, conv.kernel_size[0], out_len
    )
    macs = count_macs(conv, (x,)).total
    assert macs == expected
    assert_close(macs * 2, reference_flops(conv, x))


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 4),
    groups=st.sampled_from([1, 2, 4]),
    c_in_per_group=st.integers(1, 3),
    c_out_per_group=st.integers(1, 3),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    padding=st.integers(0, 2),
)
def test_conv1d_property(
    n: int,
    groups: int,
    c_in_per_group: int,
    c_out_per_group: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: int,
) -> None:
    conv = nn.Conv1d(
        c_in_per_group * groups,
        c_out_per_group * groups,
        kernel,
        stride=stride,
        dilation=dilation,
        padding=padding,
        groups=groups,
    )
    x = torch.randn(n, conv.in_channels, 40)
    out_len = conv(x).shape[-1]
    expected = conv_macs(n, conv.out_channels, conv.in_channels, groups, kernel, out_len)
    assert count_macs(conv, (x,)).total == expected
    assert count_macs(conv, (x,)).total * 2 == reference_flops(conv, x)


def test_conv2d_transposed_and_linear_stack_match_flop_counter() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 8, (3, 5), stride=(1, 2), dilation=(2, 1), groups=2),
        nn.ConvTranspose2d(8, 4, 3, stride=2),
    )
    x = torch.randn(2, 2, 16, 20)
    assert_close(count_macs(model, (x,)).total * 2, reference_flops(model, x))


def test_linear_on_sequence_input_matches_closed_form_and_flop_counter() -> None:
    model = nn.Sequential(nn.Linear(12, 30), nn.Linear(30, 5))
    x = torch.randn(3, 7, 12)
    expected = 3 * 7 * (12 * 30 + 30 * 5)
    assert count_macs(model, (x,)).total == expected
    assert_close(expected * 2, reference_flops(model, x))


@pytest.mark.parametrize(
    ("cls", "gates"), [(nn.GRU, 3), (nn.LSTM, 4), (nn.RNN, 1)], ids=["gru", "lstm", "rnn"]
)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_two_layers_closed_form(cls: type, gates: int, bidirectional: bool) -> None:
    rnn = cls(6, 5, num_layers=2, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(3, 11, 6)
    expected = recurrent_macs(gates, 3 * 11, 6, 5, 2, 2 if bidirectional else 1)
    result = count_macs(rnn, (x,))
    assert result.total == expected
    assert not result.uncounted


def test_rnn_relu_time_major_and_unbatched_inputs() -> None:
    rnn = nn.RNN(4, 3, nonlinearity="relu")
    assert count_macs(rnn, (torch.randn(9, 2, 4),)).total == recurrent_macs(1, 18, 4, 3, 1, 1)
    assert count_macs(rnn, (torch.randn(9, 4),)).total == recurrent_macs(1, 9, 4, 3, 1, 1)
    assert count_macs(rnn, (torch.randn(9, 4),)).by_operator == {"rnn_relu": 9 * 3 * 7}


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_with_projection_counts_projection_matrix() -> None:
    lstm = nn.LSTM(10, 8, proj_size=3, bidirectional=True)
    x = torch.randn(7, 1, 10)
    # per direction and token: W_ih (4H x in), W_hh (4H x P), W_hr (P x H)
    expected = 7 * 2 * (4 * 8 * 10 + 4 * 8 * 3 + 3 * 8)
    assert count_macs(lstm, (x,)).total == expected


def test_packed_sequence_counts_real_tokens_only() -> None:
    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(pack_padded_sequence(x, torch.tensor([5, 2])))
            return out.data

    macs = count_macs(Packed(), (torch.randn(5, 2, 4),))
    assert macs.total == recurrent_macs(4, 5 + 2, 4, 6, 1, 1)
    assert macs.by_module["lstm"] == macs.total


def test_lstm_cell_step_counts_both_products() -> None:
    cell = nn.LSTMCell(5, 7)
    macs = count_macs(cell, (torch.randn(3, 5),))
    products = 3 * (4 * 7 * 5 + 4 * 7 * 7)
    assert macs.total >= products
    assert macs.by_operator.get("linear", 0) + macs.by_operator.get("lstm_cell", 0) == products


class Elementwise(nn.Module):
    """Known elementwise workload on a (2, 3, 4) tensor (24 elements)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x) * x + 1.0  # sigmoid, mul, add: 24 each
        y = torch.tanh(y) - torch.relu(y)  # tanh, relu, sub: 24 each
        y = nn.functional.relu(y, inplace=True)  # in place: counted under "relu"
        return y.softmax(-1) / 2  # softmax, div: 24 each


def test_elementwise_ops_count_one_per_output_element() -> None:
    macs = count_macs(Elementwise(), (torch.randn(2, 3, 4),))
    assert macs.by_operator == {
        "sigmoid": 24,
        "mul": 24,
        "add": 24,
        "tanh": 24,
        "relu": 48,
        "sub": 24,
        "softmax": 24,
        "div": 24,
    }
    assert macs.total == 24 * 9
    assert not macs.uncounted


def test_broadcast_elementwise_counts_output_elements() -> None:
    class Broadcast(nn.Module):
        def forward(self, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return x + b

    macs = count_macs(Broadcast(), (torch.randn(4, 5), torch.randn(5)))
    assert macs.total == 20


def test_reductions_and_pooling() -> None:
    class Pools(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (
                x.mean(),  # 2*3*12 = 72 input elements
                nn.functional.avg_pool1d(x, 3, stride=1),  # 2*3*10 outputs x 3 taps = 180
                nn.functional.adaptive_avg_pool1d(x, 1),  # 72 input elements
                nn.functional.max_pool1d(x, 2),  # ignored: comparisons only
            )

    macs = count_macs(Pools(), (torch.randn(2, 3, 12),))
    assert macs.by_operator == {"mean": 72, "avg_pool1d": 180, "adaptive_avg_pool1d": 72}
    assert not macs.uncounted


def test_avg_pool2d_counts_square_kernel_taps() -> None:
    pool = nn.AvgPool2d(2)
    macs = count_macs(pool, (torch.randn(1, 3, 8, 8),))
    assert macs.total == 3 * 4 * 4 * 4


def test_matrix_products_and_attention() -> None:
    class Products(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            p = torch.matmul(a, b)  # (2, 3, 4) @ (4, 5): 2*3*5 outputs x 4
            q = torch.bmm(p, b.t().expand(2, 5, 4))  # (2, 3, 5) @ (2, 5, 4): 2*3*4 x 5
            r = torch.matmul(q, v)  # (2, 3, 4) @ (4,): 6 outputs x 4
            return r

    a, b, v = torch.randn(2, 3, 4), torch.randn(4, 5), torch.randn(4)
    macs = count_macs(Products(), (a, b, v))
    assert macs.total == 2 * 3 * 5 * 4 + 2 * 3 * 4 * 5 + 6 * 4

    class Attention(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(1, 2, 6, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 4)
    weights = 2 * 6 * 10
    expected = weights * 8 + weights * 4 + weights
    assert count_macs(Attention(), (q, k, v)).total == expected


def test_ignored_ops_are_silent_and_unknown_ops_reported(caplog: pytest.LogCaptureFixture) -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.drop = nn.Dropout(0.5)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            x = self.drop(self.emb(idx))
            x = nn.functional.max_pool1d(x.transpose(0, 1).unsqueeze(0), 2)
            return torch.cumsum(x, dim=-1)

    macs = count_macs(Mixed().eval(), (torch.tensor([1, 2, 3, 4]),))
    assert macs.total == 0
    assert macs.uncounted == {"aten::cumsum": 1}
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]


def test_handles_cover_every_listed_op() -> None:
    handles = mac_handles()
    for op in ELEMENTWISE_OPS:
        assert handles[op] is not None
    for op in IGNORED_OPS:
        assert handles[op] is None
    for op in ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu"):
        assert handles[op] is not None


def test_keyword_inputs_constants_and_dict_outputs() -> None:
    class KwModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor, *, scale: float, mask: torch.Tensor) -> dict:
            return {"y": self.fc(x) * scale, "aux": [mask]}

    kwargs = {"x": torch.randn(2, 3), "scale": 2.0, "mask": torch.ones(2)}
    macs = count_macs(KwModel(), (), kwargs)
    assert macs.by_module["fc"] == 2 * 3 * 4
    assert macs.total == 2 * 3 * 4 + 2 * 4


def test_module_names_match_the_model() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Conv1d(2, 2, 1)))
    macs = count_macs(model, (torch.randn(1, 1, 10),))
    assert set(macs.by_module) == {name for name, _ in model.named_modules()}
    assert macs.by_module["0"] == 2 * 3 * 8
    assert macs.by_module["1.1"] == 2 * 2 * 8
    assert macs.by_module["1"] == 2 * 2 * 8 + 16
    assert macs.total == macs.by_module[""]


def test_failed_trace_leaves_no_hooks() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) @ torch.ones(5, 5)

    model = Broken()
    with pytest.raises(RuntimeError):
        count_macs(model, (torch.randn(1, 3),))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_counts_are_integers() -> None:
    macs = count_macs(nn.Linear(3, 2), (torch.randn(1, 3),))
    assert isinstance(macs.total, int)
    assert all(isinstance(v, int) for v in macs.by_module.values())
    assert math.isfinite(macs.total)
