"""The house rules of the package layout: no private imports across modules, no import cycles,
small modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "lotterytrim"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(tree: ast.Module) -> list[tuple[ast.ImportFrom, bool]]:
    """Every ``from lotterytrim... import`` with whether it runs at import time."""
    found: list[tuple[ast.ImportFrom, bool]] = []

    def walk(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lotterytrim"):
                found.append((node, top))
            inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for field in ("body", "orelse", "finalbody"):
                walk(getattr(node, field, []) or [], inner)
            for handler in getattr(node, "handlers", []):
                walk(handler.body, inner)

    walk(tree.body, True)
    return found


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = [
        f"{name}: from {node.module} import {alias.name}"
        for name, path in _modules().items()
        for node, _ in _imports(ast.parse(path.read_text(encoding="utf-8")))
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert bad == []


def test_no_import_cycle() -> None:
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node, top in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if not top:
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                edges[name].add(full if full in modules else str(node.module))
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(edges.get(name, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in modules:
        if name not in state:
            visit(name, [name])


def test_modules_stay_small() -> None:
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_trimming_in_a_training_script_imports_no_table_or_plot_library() -> None:
    code = (
        "import sys, torch\n"
        "from torch import nn\n"
        "import lotterytrim as lt\n"
        "m = nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(112, 3))\n"
        "t = lt.LotteryTrimmer(m, torch.randn(2, 1, 16))\n"
        "t.capture_rewind(); t.step()\n"
        "print(sorted(k for k in ('pandas', 'matplotlib', 'fvcore') if k in sys.modules))\n"
        "lt.pick_models\n"
        "print('pandas' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"  # the runner and reports load on first use
    assert out[1] == "True"


def _all_imports(path: Path) -> set[str]:
    """Every ``lotterytrim`` module ``path`` imports, ``TYPE_CHECKING`` blocks included."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lotterytrim"):
            out.add(str(node.module))
    return out


def test_methods_and_cells_do_not_import_their_drivers_even_for_typing() -> None:
    modules = _modules()
    for low, high in (
        ("lotterytrim.trimming.methods", "lotterytrim.trimming.trimmer"),
        ("lotterytrim.trimming.removal", "lotterytrim.trimming.trimmer"),
        ("lotterytrim.runner.cells", "lotterytrim.runner.lottery"),
    ):
        assert high not in _all_imports(modules[low]), f"{low} imports {high}"
