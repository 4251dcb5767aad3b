"""Export (trimmed) models to ONNX for deployment, checked against torch with onnxruntime.

Needs the optional ``onnx`` extra (``pip install lotterytrim[onnx]``); the model is exported
from an unmasked eval-mode copy and the file appears only once every check has passed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lotterytrim.calls import TensorCall, eval_mode, run_model, split_inputs, tensor_leaves
from lotterytrim.engine.masknames import masked_weights
from lotterytrim.errors import ExampleInputError, ExportError
from lotterytrim.storage.atomic import atomic_file
from lotterytrim.trimming.masking import strip_masks

__all__ = ["OnnxExport", "export_onnx"]

_ONNX_HINT = "pip install lotterytrim[onnx]"
# the TorchScript-based exporter announces its own deprecation on every call; it stays the one
# used here because it needs nothing beyond onnx and gives the same graphs offline
_LEGACY_NOTICES = (
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed",
)


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: Path  # the ONNX file
    opset: int  # default-domain opset of the graph
    inputs: tuple[str, ...]  # graph input names, in order
    outputs: tuple[str, ...]  # graph output names, in order
    max_abs_diff: float | None  # largest |onnxruntime - torch| over all checks (None: no check)
    checked_batches: tuple[int, ...]  # batch sizes run through onnxruntime (empty: no check)
    file_bytes: int  # size of the file


def _import_onnx(runtime: bool) -> tuple[Any, Any]:
    """Import onnx (and onnxruntime when ``runtime``) lazily, naming the extra if missing."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"export_onnx needs the onnx package: {_ONNX_HINT}") from exc
    ort: Any = None
    if runtime:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError(
                f"export_onnx(check=True) needs onnxruntime: {_ONNX_HINT} "
                "(or pass check=False to skip the check)"
            ) from exc
        ort = onnxruntime
    return onnx, ort


def _split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword inputs, refusing anything but a tensor, a tuple/list or a dict."""
    if not isinstance(example_inputs, (torch.Tensor, tuple, list, Mapping)):
        raise TypeError(
            "example_inputs must be a tensor, a tuple/list of positional inputs or a dict of "
            f"keyword inputs, got {type(example_inputs).__name__}"
        )
    args, kwargs = split_inputs(example_inputs)
    if not any(isinstance(v, torch.Tensor) for v in (*args, *kwargs.values())):
        raise TypeError("example_inputs must hold at least one tensor (the graph's inputs)")
    return args, kwargs


def _plain_copy(model: nn.Module) -> nn.Module:
    """``model`` itself, or a copy with masks baked in when it carries pruning masks."""
    if not masked_weights(model):
        return model
    # a masked weight is a computed (non-leaf) tensor attribute, which deepcopy refuses: hand
    # deepcopy detached clones of such attributes; strip_masks recomputes them anyway
    memo: dict[int, Any] = {}
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    plain = copy.deepcopy(model, memo)
    strip_masks(plain)
    return plain


def _rebatch(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], int] | None:
    """The inputs at another batch size (1, or 2 when the batch is 1), if they share a batch."""
    tensors = [v for v in tensor_leaves((args, kwargs)) if v.dim() >= 1]
    sizes = {int(t.shape[0]) for t in tensors}
    if len(sizes) != 1:
        return None
    batch = sizes.pop()
    new = 1 if batch > 1 else 2

    def cut(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.dim() >= 1:
            return v[:1] if new == 1 else torch.cat([v, v.flip(0)], dim=0)
        return v

    from torch.utils._pytree import tree_map

    return tree_map(cut, args), tree_map(cut, kwargs), new


def _compare(
    ort_out: Sequence[Any], ref: Sequence[torch.Tensor], atol: float, rtol: float, batch: int
) -> float:
    """Largest absolute difference; raise :class:`ExportError` past ``atol + rtol * |ref|``."""
    import numpy as np

    if len(ort_out) != len(ref):
        raise ExportError(
            f"onnxruntime returned {len(ort_out)} outputs at batch {batch}, torch {len(ref)}"
        )
    worst = 0.0
    for i, (got, want) in enumerate(zip(ort_out, ref, strict=True)):
        want_np = want.detach().cpu().double().numpy()
        got_np = np.asarray(got, dtype=np.float64)
        if got_np.shape != want_np.shape:
            raise ExportError(
                f"output {i} has shape {got_np.shape} in onnxruntime but {want_np.shape} in "
                f"torch at batch {batch}"
            )
        same_nan = np.isnan(got_np) & np.isnan(want_np)
        diff = np.where(same_nan, 0.0, np.abs(got_np - want_np))
        if diff.size:
            worst = max(worst, float(np.max(np.nan_to_num(diff, nan=np.inf))))
        if not bool((diff <= atol + rtol * np.abs(want_np)).all()):
            raise ExportError(
                f"the ONNX graph does not compute what torch does: output {i} differs by up to "
                f"{float(np.max(np.nan_to_num(diff, nan=np.inf))):.3g} at batch {batch} "
                f"(tolerance {atol:g} + {rtol:g} x |torch output|)"
            )
    return worst


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> OnnxExport:
    """Export ``model`` (trimmed, masked or plain) to an ONNX file, checked against torch.

    The model is exported in eval mode (its train/eval flags are restored afterwards); pruning
    masks are baked into a copy first, so the model passed in is never changed. The graph is
    traced by torch's TorchScript-based exporter, validated with ``onnx.checker`` and, when
    ``check`` is true, run by onnxruntime on ``example_inputs`` (and, with ``dynamic_batch``,
    at a second batch size) and compared with torch within ``atol + rtol * |torch output|``.
    The file is written to a temporary file beside ``path`` and renamed only when every check
    passed, so a failure leaves no file behind (and an existing ``path`` untouched).

    ``example_inputs`` is a tensor, a tuple/list of positional inputs or a dict of keyword
    inputs; with ``dynamic_batch``, dimension 0 of every input and output is left symbolic.
    Needs the ``onnx`` extra (``pip install lotterytrim[onnx]``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    args, kwargs = _split_inputs(example_inputs)
    if opset is not None and (not isinstance(opset, int) or opset < 7):
        raise ValueError(f"opset must be an int >= 7 or None, got {opset!r}")
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol and rtol must be >= 0, got {atol} and {rtol}")
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write the ONNX file: {target} is a directory")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write the ONNX file: directory {folder} does not exist")
    onnx, ort = _import_onnx(runtime=check)

    plain = _plain_copy(model)
    with eval_mode(plain):
        try:
            with torch.no_grad():
                reference = tensor_leaves(run_model(plain, example_inputs))
        except Exception as exc:  # noqa: BLE001 - any failure means the inputs do not fit
            raise ExampleInputError(
                f"{type(model).__name__} cannot run on the example inputs: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not reference:
            raise ExampleInputError(f"{type(model).__name__} returned no tensor to export")
        in_tensors = TensorCall(plain, args, kwargs).tensors
        names_in = list(input_names) if input_names is not None else _default_in(args, kwargs)
        names_out = (
            list(output_names)
            if output_names is not None
            else [f"output_{i}" for i in range(len(reference))]
        )
        if len(names_in) != len(in_tensors):
            raise ValueError(
                f"input_names has {len(names_in)} names for {len(in_tensors)} input tensors"
            )
        if len(names_out) != len(reference):
            raise ValueError(
                f"output_names has {len(names_out)} names for {len(reference)} output tensors"
            )
        axes: dict[str, dict[int, str]] | None = None
        if dynamic_batch:
            axes = {n: {0: "batch"} for n, t in zip(names_in, in_tensors, strict=True) if t.dim()}
            axes.update(
                {n: {0: "batch"} for n, t in zip(names_out, reference, strict=True) if t.dim()}
            )
        with atomic_file(target) as tmp:
            _export(plain, args, kwargs, tmp, opset, names_in, names_out, axes)
            try:
                onnx.checker.check_model(str(tmp))
                proto = onnx.load(str(tmp), load_external_data=False)
            except Exception as exc:  # noqa: BLE001 - the checker raises several types
                raise ExportError(f"the exported ONNX graph is invalid: {exc}") from exc
            version = next(
                (int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0
            )
            worst: float | None = None
            batches: list[int] = []
            if check:
                worst, batches = _check_runtime(
                    ort, plain, tmp, args, kwargs, names_in, reference, dynamic_batch, atol, rtol
                )
    return OnnxExport(
        path=target,
        opset=version,
        inputs=tuple(i.name for i in proto.graph.input),
        outputs=tuple(o.name for o in proto.graph.output),
        max_abs_diff=worst,
        checked_batches=tuple(batches),
        file_bytes=target.stat().st_size,
    )


def _default_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[str]:
    """``input_0, input_1, ...`` for positional tensors, the keyword for keyword tensors."""
    names = [f"input_{i}" for i in range(len(tensor_leaves(args)))]
    for key, value in kwargs.items():
        leaves = tensor_leaves(value)
        names += [key] if len(leaves) == 1 else [f"{key}_{i}" for i in range(len(leaves))]
    return names


@contextlib.contextmanager
def _math_attention() -> Iterator[None]:
    """Trace attention's math path: PyTorch's fused eval kernels have no ONNX form.

    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` switch to fused kernels in
    eval mode without gradients; the exported graph computes the same with plain ops, and the
    onnxruntime check compares it with the fused outputs torch gives.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def _export(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    path: Path,
    opset: int | None,
    input_names: list[str],
    output_names: list[str],
    axes: dict[str, dict[int, str]] | None,
) -> None:
    """Run torch's TorchScript-based ONNX exporter, with its failures as :class:`ExportError`."""
    with warnings.catch_warnings():
        for notice in _LEGACY_NOTICES:
            warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
        try:
            with torch.no_grad(), _math_attention():
                call = TensorCall(model, args, kwargs)
                torch.onnx.export(
                    call,
                    call.tensors,
                    str(path),
                    dynamo=False,
                    opset_version=opset,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise ExportError(
                f"torch.onnx could not export {type(model).__name__}: {type(exc).__name__}: {exc}"
            ) from exc


def _check_runtime(
    ort: Any,
    model: nn.Module,
    path: Path,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    input_names: list[str],
    reference: list[torch.Tensor],
    dynamic_batch: bool,
    atol: float,
    rtol: float,
) -> tuple[float, list[int]]:
    """Run the graph in onnxruntime and compare with torch; at a second batch if dynamic."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not a stable type
        raise ExportError(f"onnxruntime cannot load the exported graph: {exc}") from exc
    wanted = [i.name for i in session.get_inputs()]

    def run(a: tuple[Any, ...], k: dict[str, Any]) -> list[Any]:
        tensors = TensorCall(model, a, k).tensors
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(input_names, tensors, strict=True)}
        try:
            return list(session.run(None, {n: feeds[n] for n in wanted}))
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not a stable type
            raise ExportError(f"onnxruntime cannot run the exported graph: {exc}") from exc

    first = next((t for t in tensor_leaves((args, kwargs)) if t.dim()), None)
    batch = int(first.shape[0]) if first is not None else 1
    worst = _compare(run(args, kwargs), reference, atol, rtol, batch)
    batches = [batch]
    other = _rebatch(args, kwargs) if dynamic_batch else None
    if other is not None:
        a2, k2, size = other
        try:
            with torch.no_grad():
                ref2 = tensor_leaves(run_model(model, k2 if k2 else a2))
        except Exception:  # noqa: BLE001 - the model itself does not take this batch size
            ref2 = None
        if ref2 is not None:
            worst = max(worst, _compare(run(a2, k2), ref2, atol, rtol, size))
            batches.append(size)
    return worst, batches
