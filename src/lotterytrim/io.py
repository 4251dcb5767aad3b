"""Save and load trimmed models without pickle: one safetensors file with the plan in its header.

The header metadata holds one key, ``"lotterytrim"``: a JSON object with ``format``, ``plan``
(:meth:`TrimPlan.to_dict`), the user's ``metadata`` and, optionally, the ``trimmer`` state whose
tensors are stored next to the model's under the ``__trimmer__/`` prefix. Files are written
atomically and read only after their bytes have been checked: pickles are refused outright.

:func:`export_onnx` writes a (trimmed) model as an ONNX graph for deployment, checked against
torch with onnxruntime; it needs the optional ``onnx`` extra.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from .errors import ExampleInputError, LotteryTrimError
from .graph import _Modes, run_model
from .plan import TrimPlan

if TYPE_CHECKING:
    from .trimmer import LotteryTrimmer

__all__ = [
    "ExportError",
    "LoadError",
    "OnnxExport",
    "export_onnx",
    "save",
    "load",
    "load_state",
    "load_trimmer_state",
]

FORMAT = 1
_KEY = "lotterytrim"
_TRIMMER_PREFIX = "__trimmer__/"
_MAX_HEADER = 100 * 1024 * 1024


class LoadError(LotteryTrimError, ValueError):
    """A file cannot be read as a lotterytrim model, or does not fit the model built for it."""


# ------------------------------------------------------------------------ raw tensor files
def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """Write tensors and string metadata as safetensors, atomically (temp file, fsync, replace)."""
    data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    write_bytes_atomic(Path(path), _st_save(data, metadata=dict(meta)))


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows opening directories."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_bytes(path: Path, blob: bytes) -> dict[str, str]:
    """Validate the safetensors layout before handing bytes to the parser; return metadata."""
    # a safetensors file opens with its header length then "{"; the length's low byte may well
    # be 0x80, so the pickle signature only counts when no safetensors header follows it
    looks_safetensors = len(blob) >= 9 and blob[8:9] == b"{"
    if not looks_safetensors and (blob[:2] == b"PK" or blob[:1] == b"\x80"):
        raise LoadError(
            f"{path} is a pickle or torch.save archive; lotterytrim never unpickles files. "
            "Save models with lt.save()"
        )
    if len(blob) < 8:
        raise LoadError(f"{path} is truncated or not a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise LoadError(
            f"{path} is truncated or not a safetensors file: header of {n} bytes announced, "
            f"{len(blob) - 8} bytes present"
        )
    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path} has an unreadable safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise LoadError(f"{path} has a malformed safetensors header")
    meta = header.pop("__metadata__", None) or {}
    end = 0
    for name, info in header.items():
        try:
            lo, hi = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LoadError(f"{path}: tensor {name!r} has no valid data offsets") from exc
        end = max(end, hi)
        if lo > hi:
            raise LoadError(f"{path}: tensor {name!r} has inverted data offsets")
    if 8 + n + end > len(blob):
        raise LoadError(
            f"{path} is truncated: its tensors need {end} bytes of data, "
            f"{len(blob) - 8 - n} are present"
        )
    return {str(k): str(v) for k, v in meta.items()}


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file after checking its bytes; never unpickles."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc}") from exc
    meta = _check_bytes(path, blob)
    try:
        tensors = _st_load(blob)
    except Exception as exc:  # noqa: BLE001 - the parser's errors are not a stable type
        raise LoadError(f"{path} is not a valid safetensors file: {exc}") from exc
    return tensors, meta


# ------------------------------------------------------------------------ public API
def save(
    model: nn.Module,
    path: str | Path,
    trimmer: LotteryTrimmer | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    plan: TrimPlan | None = None,
) -> None:
    """Write ``model``'s tensors, its trimming plan and optional trimmer state to one file.

    The plan is ``plan`` if given, else ``trimmer``'s cumulative plan, else the identity of
    ``model``. Passing ``plan`` without ``trimmer`` writes a loadable model without the (larger)
    trimmer state.
    """
    from .masking import plain_state

    if metadata is not None:
        try:
            json.dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
    if trimmer is not None and trimmer.model is not model:
        raise ValueError("trimmer drives a different model than the one being saved")
    if trimmer is not None:
        trimmer._check_model()  # the plan written must describe the tensors written
    tensors = plain_state(model)
    if plan is None:
        plan = trimmer.plan if trimmer is not None else TrimPlan.identity(model)
    else:
        _check_plan_fits(plan, model)
    header: dict[str, Any] = {
        "format": FORMAT,
        "plan": plan.to_dict(),
        "metadata": dict(metadata or {}),
    }
    if trimmer is not None:
        state = trimmer.state_dict()
        header["trimmer"] = state["meta"]
        for k, v in state["tensors"].items():
            tensors[_TRIMMER_PREFIX + k] = v
    write_tensors(Path(path), tensors, {_KEY: json.dumps(header, separators=(",", ":"))})


def _check_plan_fits(plan: TrimPlan, model: nn.Module) -> None:
    """Refuse a plan whose current shapes are not the model's: the file would not load."""
    from .rewind import model_tensors

    current = {n: tuple(t.shape) for n, t in model_tensors(model).items()}
    for name, shape in plan.current_shapes().items():
        if current.get(name) != tuple(shape):
            raise ValueError(
                f"plan does not describe the model: tensor {name!r} is {current.get(name)} in the "
                f"model, the plan says {tuple(shape)}"
            )


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = read_tensors(path)
    if _KEY not in meta:
        raise LoadError(f"{path} is a safetensors file but was not written by lt.save()")
    try:
        header = json.loads(meta[_KEY])
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: the lotterytrim header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise LoadError(f"{path}: unknown lotterytrim file format {got!r}")
    return tensors, header


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], TrimPlan, dict[str, Any]]:
    """The model tensors, trimming plan and user metadata of a file, without building a model."""
    tensors, header = _read(path)
    try:
        plan = TrimPlan.from_dict(header["plan"])
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path}: malformed trimming plan: {exc}") from exc
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith(_TRIMMER_PREFIX)}
    return model_tensors, plan, dict(header.get("metadata") or {})


def load_trimmer_state(path: str | Path) -> dict[str, Any] | None:
    """The trimmer state saved with the model (for ``trimmer.load_state_dict``), or None."""
    tensors, header = _read(path)
    if "trimmer" not in header:
        return None
    n = len(_TRIMMER_PREFIX)
    return {
        "meta": header["trimmer"],
        "tensors": {k[n:]: v for k, v in tensors.items() if k.startswith(_TRIMMER_PREFIX)},
    }


def load(path: str | Path, build_model: Callable[[], nn.Module]) -> nn.Module:
    """Build the original model, resize it by the saved plan and load the tensors strictly."""
    tensors, plan, _ = load_state(path)
    model = build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model() must return an nn.Module, got {type(model).__name__}")
    try:
        plan.apply_to_model(model)
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not fit the model from build_model(): {exc}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise LoadError(
            f"{path} does not fit the model from build_model(): tensors missing from the file "
            f"{missing[:5]}, tensors the model lacks {unexpected[:5]}"
        )
    for name, t in expected.items():
        if tuple(t.shape) != tuple(tensors[name].shape):
            raise LoadError(
                f"{path} does not fit the model from build_model(): tensor {name!r} is "
                f"{tuple(tensors[name].shape)} in the file, {tuple(t.shape)} in the model"
            )
    model.load_state_dict(tensors, strict=True)
    return model


# ------------------------------------------------------------------------ ONNX export
_ONNX_HINT = "pip install lotterytrim[onnx]"
# the TorchScript-based exporter announces its own deprecation on every call; it stays the one
# used here because it needs nothing beyond onnx and gives the same graphs offline
_LEGACY_NOTICES = (
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed",
)


class ExportError(LotteryTrimError, RuntimeError):
    """A model could not be exported, or the exported graph does not compute what torch does."""


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
    ort = None
    if runtime:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(
                f"export_onnx(check=True) needs onnxruntime: {_ONNX_HINT} "
                "(or pass check=False to skip the check)"
            ) from exc
    return onnx, ort


def _split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword inputs from a tensor, a tuple/list or a dict of inputs."""
    if isinstance(example_inputs, torch.Tensor):
        args: tuple[Any, ...] = (example_inputs,)
        kwargs: dict[str, Any] = {}
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    elif isinstance(example_inputs, Mapping):
        args, kwargs = (), {str(k): v for k, v in example_inputs.items()}
    else:
        raise TypeError(
            "example_inputs must be a tensor, a tuple/list of positional inputs or a dict of "
            f"keyword inputs, got {type(example_inputs).__name__}"
        )
    if not any(isinstance(v, torch.Tensor) for v in (*args, *kwargs.values())):
        raise TypeError("example_inputs must hold at least one tensor (the graph's inputs)")
    return args, kwargs


def _tensor_leaves(value: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) model output or input, in the exporter's flattening order."""
    from torch.utils._pytree import tree_leaves

    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def _plain_copy(model: nn.Module) -> nn.Module:
    """``model`` itself, or a copy with masks baked in when it carries pruning masks."""
    from .masking import maskable, strip_masks

    masked = any(attr + "_orig" in m._parameters for m, attr in maskable(model).values())
    if not masked:
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


class _Flat(nn.Module):
    """Call a model with tensors only: non-tensor inputs are bound, outputs flattened.

    The wrapper shares the model's submodules, parameters and buffers (not as a child), so
    the graph's weight names are the model's own state_dict names.
    """

    def __init__(self, model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__()
        from torch.utils._pytree import tree_flatten

        self._modules = model._modules
        self._parameters = model._parameters
        self._buffers = model._buffers
        self.training = model.training
        leaves, self._spec = tree_flatten((args, kwargs))
        self._leaves = leaves
        self._slots = [i for i, v in enumerate(leaves) if isinstance(v, torch.Tensor)]
        object.__setattr__(self, "_call", model)  # not registered: no name prefix

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from torch.utils._pytree import tree_unflatten

        leaves = list(self._leaves)
        for slot, t in zip(self._slots, tensors, strict=True):
            leaves[slot] = t
        args, kwargs = tree_unflatten(leaves, self._spec)
        return tuple(_tensor_leaves(self._call(*args, **kwargs)))


def _rebatch(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], int] | None:
    """The inputs at another batch size (1, or 2 when the batch is 1), if they share a batch."""
    tensors = [v for v in _tensor_leaves((args, kwargs)) if v.dim() >= 1]
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
    modes = _Modes(plain)
    plain.eval()
    try:
        try:
            with torch.no_grad():
                reference = _tensor_leaves(run_model(plain, example_inputs))
        except Exception as exc:  # noqa: BLE001 - any failure means the inputs do not fit
            raise ExampleInputError(
                f"{type(model).__name__} cannot run on the example inputs: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not reference:
            raise ExampleInputError(f"{type(model).__name__} returned no tensor to export")
        in_tensors = _tensor_leaves((args, kwargs))
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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
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
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
    finally:
        modes.restore()
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
    names = [f"input_{i}" for i in range(len(_tensor_leaves(args)))]
    for key, value in kwargs.items():
        leaves = _tensor_leaves(value)
        names += [key] if len(leaves) == 1 else [f"{key}_{i}" for i in range(len(leaves))]
    return names


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
            with torch.no_grad():
                torch.onnx.export(
                    _Flat(model, args, kwargs),
                    tuple(_tensor_leaves((args, kwargs))),
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
        tensors = _tensor_leaves((a, k))
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(input_names, tensors, strict=True)}
        try:
            return list(session.run(None, {n: feeds[n] for n in wanted}))
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not a stable type
            raise ExportError(f"onnxruntime cannot run the exported graph: {exc}") from exc

    first = next((t for t in _tensor_leaves((args, kwargs)) if t.dim()), None)
    batch = int(first.shape[0]) if first is not None else 1
    worst = _compare(run(args, kwargs), reference, atol, rtol, batch)
    batches = [batch]
    other = _rebatch(args, kwargs) if dynamic_batch else None
    if other is not None:
        a2, k2, size = other
        try:
            with torch.no_grad():
                ref2 = _tensor_leaves(run_model(model, k2 if k2 else a2))
        except Exception:  # noqa: BLE001 - the model itself does not take this batch size
            ref2 = None
        if ref2 is not None:
            worst = max(worst, _compare(run(a2, k2), ref2, atol, rtol, size))
            batches.append(size)
    return worst, batches
