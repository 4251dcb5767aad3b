"""The public surface: a light ``import lotterytrim``, a core that runs without the optional
packages, each public name in one place, and extras that the ``dev`` install covers."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import lotterytrim as lt

ROOT = Path(__file__).resolve().parents[1]
# loaded only by the reports, the runner and the plots (or an ONNX export)
OPTIONAL = ("pandas", "matplotlib", "tqdm", "fvcore", "filelock", "onnx", "onnxruntime")
# names that are not at the top level: each lives in the module that owns it
ELSEWHERE = {
    "Criterion": "lotterytrim.criteria",
    "LayerCriterion": "lotterytrim.criteria",
    "LotteryTrimError": "lotterytrim.errors",
    "LoadError": "lotterytrim.errors",
    "register_adapter": "lotterytrim.adapters",
    "layer_units": "lotterytrim.engine.layers",
    "select_units": "lotterytrim.selection.rank",
    "TrimGraph": "lotterytrim.engine.graph",
    "load_state": "lotterytrim.storage.io",
    "load_trimmer_state": "lotterytrim.trimming.state",
}


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter on this checkout's sources; return its stdout."""
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_loads_no_optional_package() -> None:
    code = (
        "import json, sys\n"
        f"optional = {OPTIONAL!r}\n"
        "import torch\n"
        "by_torch = [m for m in optional if m in sys.modules]\n"
        "import lotterytrim\n"
        "print(json.dumps([by_torch, [m for m in optional if m in sys.modules]]))\n"
    )
    by_torch, loaded = json.loads(_run(code))
    assert "pandas" not in loaded and "matplotlib" not in loaded
    assert set(loaded) == set(by_torch)  # tqdm, when installed, comes from torch.hub


def test_trimming_saving_and_loading_run_without_the_optional_packages(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        f"for name in {OPTIONAL!r}:\n"
        "    sys.modules[name] = None  # any import of it now raises ImportError\n"
        "import torch\n"
        "from torch import nn\n"
        "import lotterytrim as lt\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(112, 3))\n"
        "model, x = build(), torch.randn(2, 1, 16)\n"
        "trimmer = lt.LotteryTrimmer(model, x)\n"
        "trimmer.capture_rewind()\n"
        "result = trimmer.step()\n"
        f"lt.save(model, {str(tmp_path / 'm.lt')!r}, trimmer)\n"
        f"again = lt.load({str(tmp_path / 'm.lt')!r}, build)\n"
        "print(result.params_after < result.params_before, torch.equal(again(x), model(x)))\n"
    )
    assert _run(code).split() == ["True", "True"]


def test_pick_models_is_public_and_the_vague_name_is_gone() -> None:
    from lotterytrim.runner.results import pick_models

    assert "pick_models" in lt.__all__ and lt.pick_models is pick_models
    assert "select" not in lt.__all__ and not hasattr(lt, "select")


@pytest.mark.parametrize("name", sorted(ELSEWHERE))
def test_a_name_lives_in_its_module_and_not_at_the_top(name: str) -> None:
    assert name not in lt.__all__ and not hasattr(lt, name)
    assert getattr(importlib.import_module(ELSEWHERE[name]), name) is not None


def test_every_public_name_resolves_and_none_repeats_a_public_module() -> None:
    values = {name: getattr(lt, name) for name in lt.__all__}
    modules = {n: v for n, v in values.items() if isinstance(v, types.ModuleType)}
    assert {"criteria", "methods", "adapters", "errors", "plot"} <= set(modules)
    repeated = {
        f"lt.{name} = lt.{home}.{name}"
        for name in values
        for home, module in modules.items()
        if name in getattr(module, "__all__", ())
    }
    assert repeated == set()
    assert sorted(dir(lt)) == dir(lt) and set(lt.__all__) <= set(dir(lt))


def test_every_lt_name_in_the_readme_and_docs_resolves() -> None:
    missing = set()
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for found in re.finditer(
            r"(?<![\w.])lt\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", path.read_text()
        ):
            value: object = lt
            for part in found.group(1).split("."):
                if not hasattr(value, part):
                    missing.add(f"{path.name}: {found.group(0)}")
                    break
                value = getattr(value, part)
    assert missing == set()


def test_dev_installs_every_extra_and_the_core_needs_no_plotting() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}

    core = names(project["dependencies"])
    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    assert {"torch", "numpy", "torch-pruning", "fvcore", "safetensors", "pandas"} <= core
    assert "matplotlib" not in core and extras["plot"] == {"matplotlib"}
    for extra, wanted in extras.items():
        assert wanted <= extras["dev"], f"dev lacks {sorted(wanted - extras['dev'])} of {extra}"
