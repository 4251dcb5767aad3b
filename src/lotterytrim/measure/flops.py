"""MAC counting on top of fvcore: handlers for recurrent layers and elementwise operators.

Convention: one multiply-add is one MAC. Products (convolutions, linear layers, matrix products,
recurrent gate products) are counted in MACs exactly. Elementwise arithmetic and activation
functions count one operation per output element, reductions and adaptive average pooling one
per input element, average pooling one per output element and kernel tap. Normalisation
layers keep fvcore's rules. Operators listed in ``IGNORED_OPS`` move or compare data and count
zero. Any other operator is reported as uncounted instead of being guessed. ``docs/report.md``
states the full list.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lotterytrim.calls import TensorCall

__all__ = [
    "ELEMENTWISE_OPS",
    "IGNORED_OPS",
    "REDUCTION_OPS",
    "RECURRENT_OPS",
    "FAST_PATH_OPS",
    "MacCount",
    "count_macs",
    "mac_handles",
]

Handle = Callable[[list[Any], list[Any]], "int | Counter[str]"]

RECURRENT_OPS: tuple[str, ...] = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")
"""Whole recurrent layers: every layer, direction and time step is counted."""

RECURRENT_CELL_OPS: tuple[str, ...] = (
    "aten::lstm_cell",
    "aten::gru_cell",
    "aten::rnn_tanh_cell",
    "aten::rnn_relu_cell",
)
"""Single recurrent steps (scripted cells; traced cells decompose into linear + elementwise)."""

_ELEMENTWISE_NAMES = """
    add sub rsub mul div neg abs pow sqrt rsqrt exp log log1p log2 log10 reciprocal square
    clamp clamp_min clamp_max relu relu6 hardtanh leaky_relu elu selu celu gelu silu mish
    softplus softsign hardswish hardsigmoid prelu glu threshold sigmoid tanh log_sigmoid
    softmax log_softmax
""".split()

ELEMENTWISE_OPS: tuple[str, ...] = tuple(
    f"aten::{name}{suffix}" for name in _ELEMENTWISE_NAMES for suffix in ("", "_")
)
"""Arithmetic and activation functions: one operation per output element (``_`` = in place)."""

REDUCTION_OPS: tuple[str, ...] = (
    "aten::mean",
    "aten::sum",
    "aten::adaptive_avg_pool1d",
    "aten::adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d",
)
"""Reductions and adaptive average pooling: one operation per input element."""

AVG_POOL_OPS: dict[str, int] = {"aten::avg_pool1d": 1, "aten::avg_pool2d": 2, "aten::avg_pool3d": 3}
"""Average pooling: one operation per output element and kernel tap."""

MATMUL_OPS: dict[str, int] = {"aten::matmul": 0, "aten::mm": 0, "aten::bmm": 0, "aten::baddbmm": 1}
"""Matrix products (index of the left operand): output elements x contracted size, in MACs."""

INTERPOLATION_OPS: dict[str, int] = {
    "aten::upsample_nearest1d": 1,
    "aten::upsample_nearest2d": 1,
    "aten::upsample_nearest3d": 1,
    "aten::upsample_linear1d": 2,
    "aten::upsample_bilinear2d": 4,
    "aten::upsample_trilinear3d": 8,
}
"""Interpolation: operations per output element (fvcore's rule, extended to 1-d and 3-d)."""

_IGNORED_NAMES = """
    max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices
    max_pool3d_with_indices adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d
    amax amin argmax argmin min topk sort where lt le ne logical_and logical_or logical_not sign
    dropout_ feature_dropout feature_dropout_ alpha_dropout alpha_dropout_
    feature_alpha_dropout feature_alpha_dropout_
    embedding pad reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d
    replication_pad2d replication_pad3d clone repeat tile expand_as view_as reshape_as flip
    unflatten movedim pixel_shuffle pixel_unshuffle unfold index_select masked_select
    masked_fill_ unsafe_chunk unsafe_split as_strided diagonal tril triu squeeze_ ones_like
    empty_like new_ones zero_ fill_ lift_fresh alias detach_ numel dim scalar_tensor tensor
    Float Bool item rand randn rand_like randn_like resolve_conj resolve_neg
""".split()

IGNORED_OPS: tuple[str, ...] = tuple(f"aten::{name}" for name in _IGNORED_NAMES)
"""Operators deliberately counted as zero (fvcore's own zero-cost list is kept as well)."""


@dataclass(frozen=True)
class MacCount:
    """Result of one MAC count: total, per module, per operator and uncounted operators.

    Attributes:
        total: MACs of the whole model (see the module docstring for the convention).
        by_module: MACs per submodule name ("" is the model itself), every module listed.
        by_operator: MACs per operator (short names such as ``"conv"``, ``"lstm"``, ``"add"``).
        uncounted: operators met in the trace with no counting rule, with their call counts.
    """

    total: int
    by_module: dict[str, int]
    by_operator: dict[str, int]
    uncounted: dict[str, int]


def _shape(value: Any) -> list[int] | None:
    """Return the static shape of a traced tensor value, or None when it has none."""
    if not isinstance(value.type(), torch._C.TensorType) or not value.isCompleteTensor():
        return None
    return list(value.type().sizes())


def _numel(value: Any) -> int:
    """Number of elements of a traced tensor value (0 for non-tensors or unknown shapes)."""
    shape = _shape(value)
    return 0 if shape is None else math.prod(shape)


def _int_list(value: Any) -> list[int]:
    """Read a constant int list argument of a traced node (folded or built by ListConstruct)."""
    constant = value.toIValue()
    if constant is not None:
        return [int(constant)] if isinstance(constant, int) else [int(v) for v in constant]
    return [int(v.toIValue()) for v in value.node().inputs()]


def _short(op: str) -> str:
    """Short operator name used in by_operator: ``aten::relu_`` -> ``relu``."""
    name = op.split("::", 1)[-1]
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _per_output_element(op: str, scale: int = 1) -> Handle:
    """Handle counting ``scale`` operations per element of the first output."""
    key = _short(op)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({key: scale * _numel(outputs[0])})

    return handle


def _per_input_element(op: str) -> Handle:
    """Handle counting one operation per element of the first input."""
    key = _short(op)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({key: _numel(inputs[0])})

    return handle


def _avg_pool(op: str, dims: int) -> Handle:
    """Average pooling over ``dims`` spatial dims: one operation per output element and tap."""
    key = _short(op)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        kernel = _int_list(inputs[1])
        taps = kernel[0] ** dims if len(kernel) == 1 else math.prod(kernel)
        return Counter({key: taps * _numel(outputs[0])})

    return handle


def _product(op: str, operand: int) -> Handle:
    """Matrix product whose left operand is input ``operand``: output size x contracted size."""
    key = _short(op)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        left = _shape(inputs[operand])
        if not left:
            return Counter()
        return Counter({key: _numel(outputs[0]) * left[-1]})

    return handle


def _recurrent(inputs: list[Any], outputs: list[Any]) -> int:
    """Whole recurrent layer: tokens x sum of the gate weight matrix sizes.

    ``aten::lstm/gru/rnn_*`` carry every layer's and direction's weights in one list: each
    2-d weight (input-to-hidden, hidden-to-hidden, LSTM projection) is applied once per time
    step and batch element, so MACs = tokens * sum(rows * cols). Packed sequences pass their
    flattened data, whose first dimension already is the token count.
    """
    params_index = 3 if inputs[3].type().kind() == "ListType" else 2
    x_shape = _shape(inputs[0])
    if x_shape is None:
        return 0
    tokens = math.prod(x_shape[:-1])
    weights = [_shape(v) for v in inputs[params_index].node().inputs()]
    per_token = sum(s[0] * s[1] for s in weights if s is not None and len(s) == 2)
    return tokens * per_token


def _recurrent_cell(inputs: list[Any], outputs: list[Any]) -> int:
    """One recurrent step: batch x (input-to-hidden + hidden-to-hidden weight sizes)."""
    x_shape = _shape(inputs[0])
    if x_shape is None:
        return 0
    tokens = math.prod(x_shape[:-1])
    weights = [_shape(v) for v in inputs[2:4]]
    return tokens * sum(s[0] * s[1] for s in weights if s is not None and len(s) == 2)


def _attention(inputs: list[Any], outputs: list[Any]) -> int:
    """Scaled dot-product attention: the two products plus one per attention weight."""
    q, k, v = (_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        return 0
    weights = math.prod(q[:-1]) * k[-2]
    return weights * q[-1] + weights * v[-1] + weights


def _constant_int(value: Any) -> int | None:
    """An integer argument of a traced node (None when it is not a constant)."""
    constant = value.toIValue()
    return int(constant) if isinstance(constant, int) else None


def _mha_macs(q: list[int], k: list[int], embed: int, heads: int) -> int:
    """Multi-head attention as its math path counts it: q/k/v and output projections, then
    per head the score and weighted-sum products plus one operation per attention weight."""
    tokens_q, tokens_k = math.prod(q[:-1]), math.prod(k[:-1])
    projections = tokens_q * q[-1] * embed + 2 * tokens_k * k[-1] * embed + tokens_q * embed**2
    weights = tokens_q * k[-2] * heads
    return projections + weights * (2 * (embed // heads) + 1)


def _native_mha(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``aten::_native_multi_head_attention``: nn.MultiheadAttention's fused eval path."""
    q, k = _shape(inputs[0]), _shape(inputs[1])
    embed, heads = _constant_int(inputs[3]), _constant_int(inputs[4])
    if q is None or k is None or not embed or not heads:
        return Counter()
    return Counter({"multi_head_attention": _mha_macs(q, k, embed, heads)})


def _encoder_layer(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``aten::_transformer_encoder_layer_fwd``: nn.TransformerEncoderLayer's fused eval path.

    Self-attention (as :func:`_native_mha`), two feed-forward products, the activation (one
    per hidden element), two residual adds and two layer norms (5 per element, fvcore's rule).
    """
    x, ffn = _shape(inputs[0]), _shape(inputs[14])
    embed, heads = _constant_int(inputs[1]), _constant_int(inputs[2])
    if x is None or ffn is None or not embed or not heads:
        return Counter()
    tokens = math.prod(x[:-1])
    return Counter(
        {
            "multi_head_attention": _mha_macs(x, x, embed, heads),
            "linear": 2 * tokens * embed * ffn[0],
            "gelu" if inputs[7].toIValue() else "relu": tokens * ffn[0],
            "add": 2 * tokens * embed,
            "layer_norm": 2 * 5 * tokens * embed,
        }
    )


FAST_PATH_OPS: dict[str, Handle] = {
    "aten::_native_multi_head_attention": _native_mha,
    "aten::_transformer_encoder_layer_fwd": _encoder_layer,
}
"""PyTorch's fused eval-mode attention kernels, counted as their math path would be."""


def mac_handles() -> dict[str, Handle | None]:
    """All handlers added to fvcore's defaults; a None handler marks an ignored operator."""
    handles: dict[str, Handle | None] = {op: _recurrent for op in RECURRENT_OPS}
    handles.update({op: _recurrent_cell for op in RECURRENT_CELL_OPS})
    handles.update({op: _per_output_element(op) for op in ELEMENTWISE_OPS})
    handles.update({op: _per_input_element(op) for op in REDUCTION_OPS})
    handles.update({op: _avg_pool(op, dims) for op, dims in AVG_POOL_OPS.items()})
    handles.update({op: _product(op, operand) for op, operand in MATMUL_OPS.items()})
    handles.update({op: _per_output_element(op, s) for op, s in INTERPOLATION_OPS.items()})
    handles["aten::scaled_dot_product_attention"] = _attention
    handles.update(FAST_PATH_OPS)
    handles.update({op: None for op in IGNORED_OPS})
    return handles


@contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """Silence fvcore's logger and tracer warnings; uncounted ops are reported by the caller."""
    logger = logging.getLogger("fvcore.nn.jit_analysis")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            yield
    finally:
        logger.setLevel(previous)


def count_macs(
    model: nn.Module, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> MacCount:
    """Count the MACs of ``model(*args, **kwargs)`` with fvcore and this module's handlers.

    The inputs are used as given (no batch slicing). The model is traced under no_grad in its
    current mode; fvcore's temporary hooks are always removed, even when tracing fails.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore's import-time jit use
        from fvcore.nn import FlopCountAnalysis

    adapter = TensorCall(model, tuple(args), kwargs or {})
    analysis = FlopCountAnalysis(adapter, adapter.tensors)
    analysis.set_op_handle(**mac_handles())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with _quiet_fvcore(), torch.no_grad(), _hooks_restored(adapter):
        by_module = {name: int(round(v)) for name, v in analysis.by_module().items()}
        by_operator = analysis.by_operator()
        uncounted = analysis.unsupported_ops()
    return MacCount(
        total=by_module.get("", 0),
        by_module=by_module,
        by_operator={op: int(round(v)) for op, v in by_operator.items() if v},
        uncounted=dict(uncounted),
    )


_HOOK_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


@contextmanager
def _hooks_restored(model: nn.Module) -> Iterator[None]:
    """Remove any forward hook added to the model's modules while the block runs."""
    before = {
        (id(module), attr): set(getattr(module, attr, {}))
        for module in model.modules()
        for attr in _HOOK_DICTS
    }
    try:
        yield
    finally:
        for module in model.modules():
            for attr in _HOOK_DICTS:
                hooks = getattr(module, attr, None)
                if hooks is None:
                    continue
                for key in set(hooks) - before.get((id(module), attr), set()):
                    del hooks[key]
