"""Deployment of trimmed models: ONNX export checked by onnxruntime, TorchScript, torch.compile."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lotterytrim as lt
from examples.mir.models import MIR_TASKS, build_model, example_input
from lotterytrim.export import ExportError, export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-4
JIT_DEPRECATED = "ignore:`torch.jit.*:DeprecationWarning"


def _calibrate_norms(model: nn.Module, x: torch.Tensor, seed: int) -> None:
    """Give every batch norm real running statistics (and a non-trivial affine), so that
    eval mode really differs from train mode and no layer is dead."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.abs_().add_(0.05)  # narrow trimmed heads behind ReLUs stay alive
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        model.train()
        for _ in range(4):
            model(torch.randn(8, *x.shape[1:], generator=gen))
    for m in norms:
        m.momentum = 0.1


@pytest.fixture(scope="module")
def trimmed() -> dict[str, tuple[nn.Module, torch.Tensor, int]]:
    """Every example model at "tiny" size after one real 30% trimming step (left in train mode)."""
    out = {}
    for i, task in enumerate(MIR_TASKS):
        torch.manual_seed(i)
        model = build_model(task, "tiny")
        x = example_input(task, "tiny", batch=3, seed=i)
        before = sum(p.numel() for p in model.parameters())
        lt.trim(model, x, "magnitude", 0.3)
        _calibrate_norms(model, x, i)
        model.train()
        out[task] = (model, x, before)
    return out


def _eval_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for m, flag in flags:
            m.training = flag


def _ort_run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: x.numpy()})[0]


@pytest.mark.parametrize("task", list(MIR_TASKS))
def test_trimmed_example_models_export_and_match_torch(task, trimmed, tmp_path):
    model, x, before = trimmed[task]
    assert sum(p.numel() for p in model.parameters()) < 0.8 * before  # really trimmed
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / f"{task}.onnx"
    result = export_onnx(model, x, path)
    assert result.path == path and path.is_file() and result.file_bytes == path.stat().st_size
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOL
    assert result.checked_batches == (3, 1)
    assert result.inputs == ("input_0",) and result.outputs == ("output_0",)
    # the model is left as it was: train mode, same tensors
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # onnxruntime, run here independently, computes what torch does in eval mode, at any batch
    onnx.checker.check_model(str(path))
    for batch in (1, 5):
        xb = example_input(task, "tiny", batch=batch, seed=99)
        got = _ort_run(path, xb)
        want = _eval_output(model, xb).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert want.std(axis=0).max() > 1e-3  # outputs depend on the input: a meaningful check
    # and not what it does in train mode (dropout, batch statistics): eval really was exported
    with torch.no_grad():
        train_out = model(example_input(task, "tiny", batch=5, seed=99)).numpy()
    assert not np.allclose(got, train_out, atol=TOL)
    # trimmed widths are what the graph holds: every weight initializer matches the module
    shapes = {i.name: tuple(i.dims) for i in onnx.load(str(path)).graph.initializer}
    for name, p in model.named_parameters():
        if name in shapes:
            assert shapes[name] == tuple(p.shape), name


def test_masked_model_exports_with_masks_baked_in(tmp_path):
    torch.manual_seed(0)
    model = build_model("chord", "tiny")
    x = example_input("chord", "tiny", batch=2)
    _calibrate_norms(model, x, 0)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.5, method="mask")
    trimmer.capture_rewind()
    trimmer.step()
    trimmer.step()
    model.eval()
    result = export_onnx(model, x, tmp_path / "masked.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOL
    # the masks stay on the model; the graph holds plain weights with the zeros baked in
    assert hasattr(model.features[0], "weight_mask")
    graph = onnx.load(str(result.path)).graph
    names = [i.name for i in graph.initializer]
    assert not any(n.endswith(("_orig", "_mask")) for n in names)
    # batch norm is folded into the conv weights, which keeps exactly the masked zeros
    mask = model.features[0].weight_mask.numpy()
    assert 0.1 < float((mask == 0).mean()) < 0.9
    convs = [
        w
        for w in (onnx.numpy_helper.to_array(i) for i in graph.initializer)
        if w.shape == mask.shape
    ]
    assert any(np.array_equal(w == 0, mask == 0) for w in convs)
    with torch.no_grad():
        np.testing.assert_allclose(_ort_run(result.path, x), model(x).numpy(), atol=TOL)


def test_options_opset_static_batch_and_no_check(tmp_path):
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(3, 6)
    fixed = export_onnx(model, x, tmp_path / "fixed.onnx", opset=17, dynamic_batch=False)
    assert fixed.opset == 17 and fixed.checked_batches == (3,)
    proto = onnx.load(str(fixed.path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's error types are not public
        _ort_run(fixed.path, torch.randn(5, 6))
    free = export_onnx(model, x, tmp_path / "free.onnx", check=False)
    assert free.max_abs_diff is None and free.checked_batches == ()
    assert free.path.is_file()
    assert _ort_run(free.path, torch.randn(5, 6)).shape == (5, 2)  # batch left symbolic


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> dict:
        return {"y": self.fc(a) * scale + b, "norm": a.norm(dim=1)}


def test_keyword_inputs_and_several_outputs(tmp_path):
    model = _TwoInputs()
    a, b = torch.randn(2, 4), torch.randn(2, 3)
    result = export_onnx(model, {"a": a, "b": b}, tmp_path / "kw.onnx")
    assert result.inputs == ("a", "b") and result.outputs == ("output_0", "output_1")
    positional = export_onnx(model, (a, b, 2.0), tmp_path / "pos.onnx")
    assert positional.inputs == ("input_0", "input_1")
    session = ort.InferenceSession(str(positional.path), providers=["CPUExecutionProvider"])
    y, norm = session.run(None, {"input_0": a.numpy(), "input_1": b.numpy()})
    with torch.no_grad():
        want = model(a, b, 2.0)  # the non-tensor 2.0 is baked into the graph as a constant
    np.testing.assert_allclose(y, want["y"].numpy(), atol=TOL)
    np.testing.assert_allclose(norm, want["norm"].numpy(), atol=TOL)


class _Drifting(nn.Module):
    """Each call multiplies by the number of calls so far: tracing bakes in a stale constant."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * float(self.calls)


def test_bad_inputs_raise_clear_errors_and_leave_no_file(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Linear(4, 2))
    x = torch.randn(2, 4)
    with pytest.raises(TypeError, match="nn.Module"):
        export_onnx("not a model", x, tmp_path / "a.onnx")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(model, x, tmp_path / "missing" / "a.onnx")
    with pytest.raises(IsADirectoryError):
        export_onnx(model, x, tmp_path)
    with pytest.raises(lt.errors.ExampleInputError, match="Sequential cannot run on the example"):
        export_onnx(model, torch.randn(2, 5), tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="example_inputs"):
        export_onnx(model, "abc", tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="at least one tensor"):
        export_onnx(model, (1.0,), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="input_names"):
        export_onnx(model, x, tmp_path / "a.onnx", input_names=["a", "b"])
    assert list(tmp_path.iterdir()) == []
    # a graph that does not compute what torch does is refused; an older file stays untouched
    old = tmp_path / "drift.onnx"
    old.write_bytes(b"previous export")
    with pytest.raises(ExportError, match="does not compute what torch does"):
        export_onnx(_Drifting(), x, old)
    assert old.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.onnx"]
    # without the optional extra the error says how to install it
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install lotterytrim\[onnx\]"):
        export_onnx(model, x, tmp_path / "b.onnx")
    monkeypatch.setitem(sys.modules, "onnx", onnx)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"onnxruntime: pip install lotterytrim\[onnx\]"):
        export_onnx(model, x, tmp_path / "b.onnx")
    assert export_onnx(model, x, tmp_path / "b.onnx", check=False).max_abs_diff is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.onnx", "drift.onnx"]


@pytest.mark.filterwarnings(JIT_DEPRECATED)
@pytest.mark.parametrize("task", list(MIR_TASKS))
def test_torchscript_and_compile_match_eager(task, trimmed):
    model, x, _ = trimmed[task]
    want = _eval_output(model, x)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            traced = torch.jit.trace(model, x)
            scripted = torch.jit.script(model)
            torch._dynamo.reset()
            compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
            xb = example_input(task, "tiny", batch=2, seed=7)
            for runner in (traced, scripted, compiled):
                torch.testing.assert_close(runner(x), want, atol=TOL, rtol=0)
                torch.testing.assert_close(runner(xb), model(xb), atol=TOL, rtol=0)
    finally:
        for m, flag in flags:
            m.training = flag
        torch._dynamo.reset()
    # the trimmed widths survive the round trip through TorchScript's own format
    widths = {n: p.shape for n, p in model.named_parameters()}
    assert {n: p.shape for n, p in scripted.named_parameters()} == widths


@pytest.mark.filterwarnings(JIT_DEPRECATED)
@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile's inductor backend needs a C++ compiler",
)
def test_deploy_doc_snippets_run(tmp_path, monkeypatch):
    """docs/deploy.md runs as written: trim, ONNX, TorchScript, torch.compile with inductor."""
    text = (Path(__file__).parent.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        exec(compile("\n".join(blocks), "docs/deploy.md", "exec"), namespace)  # noqa: S102
    finally:
        torch._dynamo.reset()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.ts"]
    assert namespace["result"].max_abs_diff <= TOL
    assert namespace["model"][0].out_channels < 32  # the snippets ran on a trimmed model


def test_fast_path_transformers_export_and_match_torch(tmp_path):
    """Eval-mode encoders take fused kernels in torch; the ONNX graph is traced on the math
    path and agrees with the fused outputs, before and after trimming heads."""
    sys.path.insert(0, str(Path(__file__).parent))
    from zoo_transformers import EncoderClassifier, SpeechEncoder

    torch.manual_seed(0)
    x = torch.randn(2, 10, 16)
    model = EncoderClassifier().eval()
    before = torch.backends.mha.get_fastpath_enabled()
    out = export_onnx(model, x, tmp_path / "encoder.onnx")
    assert out.max_abs_diff is not None and out.max_abs_diff < 1e-4
    assert torch.backends.mha.get_fastpath_enabled() == before
    lt.trim(model, x, "magnitude", 0.5)
    out = export_onnx(model, x, tmp_path / "trimmed.onnx", dynamic_batch=True)
    assert out.max_abs_diff < 1e-4 and len(out.checked_batches) == 2
    speech = SpeechEncoder().eval()
    out = export_onnx(speech, torch.randn(1, 1, 400), tmp_path / "speech.onnx")
    assert out.max_abs_diff < 1e-4


def test_the_generative_decoder_is_refused_by_onnx_with_the_operator_named(tmp_path):
    """The ddsp decoder synthesises audio in its forward (FFT filtering of noise), which ONNX's
    opsets do not cover: the export fails with a clear error and writes no file."""
    torch.manual_seed(0)
    model = build_model("ddsp", "tiny").eval()
    x = example_input("ddsp", "tiny", batch=1, seed=0)
    with pytest.raises(lt.errors.ExportError, match="fft"):
        export_onnx(model, x, tmp_path / "ddsp.onnx")
    assert not (tmp_path / "ddsp.onnx").exists()
