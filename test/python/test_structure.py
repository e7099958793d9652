"""The layering the README promises, checked on the code: passes are IR to IR, and pconv-opt
runs every pass with only the base dependencies (xdsl, numpy)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "pconv_mlir": ROOT / "pconv_mlir",
    "pconv_mlir.dialects": ROOT / "dialects",
    "pconv_mlir.passes": ROOT / "passes",
    "pconv_mlir.lowering": ROOT / "lowering",
    "pconv_mlir.models": ROOT / "models",
}

LEAVES = {
    "pconv_mlir",
    "pconv_mlir.elements",
    "pconv_mlir.errors",
    "pconv_mlir.fkw",
    "pconv_mlir.patterns",
}
"""The modules of pconv_mlir that a pass may import (besides the dialect and other passes)."""

PURE = {"xdsl", "numpy", "__future__"}
"""Third-party packages a pass may import (the standard library is always allowed)."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "pconv_mlir" and parts and parts[0] in ("dialects", "passes"):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every module `name` imports, at the top or inside a function."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m in MODULES or not m.startswith("pconv_mlir")}


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in _imports(name) if m in MODULES]
    return seen


PASS_MODULES = sorted(m for m in MODULES if m.startswith("pconv_mlir.passes."))


@pytest.mark.parametrize("name", [*PASS_MODULES, "pconv_mlir.lowering.convert_pconv_to_loops"])
def test_passes_import_only_the_dialect_xdsl_and_leaf_modules(name: str) -> None:
    reached = _closure(name)
    ours = {m for m in reached if m in MODULES}
    allowed = {
        m
        for m in ours
        if m in LEAVES or m.startswith(("pconv_mlir.dialects", "pconv_mlir.passes")) or m == name
    }
    assert ours == allowed, f"{name} reaches {sorted(ours - allowed)}"
    third_party = {
        m.split(".")[0]
        for r in reached
        for m in _imports(r)
        if m not in MODULES and m.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party <= PURE, f"{name} reaches {sorted(third_party - PURE)}"


def test_the_checker_sees_a_reach_up() -> None:
    """The closure follows imports made inside functions too (the old pconv-tune's kind)."""
    assert "pconv_mlir.pipeline" in _closure("pconv_mlir.tune")
    assert "pconv_mlir.frontend" in _closure("pconv_mlir.compiler") or any(
        "frontend" in m for m in _imports("pconv_mlir.compiler")
    )


def test_leaf_modules_import_no_layer_above() -> None:
    for leaf in LEAVES - {"pconv_mlir"}:
        above = {m for m in _closure(leaf) if m in MODULES} - LEAVES
        assert not above, f"{leaf} reaches {sorted(above)}"
    assert {m for m in _closure("pconv_mlir.patterns") if m in MODULES} == {"pconv_mlir.patterns"}


NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("torch", "torch_mlir", "sklearn"):
                raise ImportError(f"{name} is made unimportable by the test")
            return None

    sys.meta_path.insert(0, NoTorch())
    from pconv_mlir.tools.pconv_opt import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_pconv_opt_runs_every_pass_without_torch() -> None:
    source = ROOT / "test" / "frontend" / "inputs" / "pattern_cnn.mlir"
    pipeline = (
        "pconv-from-linalg{mode=project patterns=2 connectivity=2.0},pconv-fkr,"
        "pconv-fkw-pack{tile_channels=2},pconv-schedule{unroll_rows=2},"
        "convert-pconv-to-loops,pconv-lre"
    )
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(source), "-p", pipeline],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "vector.fma" in done.stdout and "pconv." not in done.stdout
    listed = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "--list-passes"], capture_output=True, text=True
    )
    assert listed.returncode == 0 and "pconv-apply-tuning" in listed.stdout
    assert "(unavailable)" not in listed.stdout.split("upstream xDSL passes:")[0]
