"""The layers: each imports only the ones below it, as docs/design.md (Layers) says.

    features   lightwork._pipeline, _shared, lab, workloads, checkpoint, joblib, _argtypes, _cli
    engine     lightwork._engine       the Executor, result streaming, map/imap/starmap, auto
    backends   lightwork._backends     serial, threads, async, processes, Dask; pickling
    core       lightwork._core         errors, options, tasks, the run loop, slot, streams...

``lightwork/__init__.py`` (the public surface) sits on top and nothing inside imports it. The
test reads every import statement of every module, those inside functions and under
``TYPE_CHECKING`` too, so a lazy import can't hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "lightwork"
LAYERS = {
    "lightwork._core": 0,
    "lightwork._backends": 1,
    "lightwork._engine": 2,
    "lightwork._pipeline": 3,
    "lightwork._shared": 3,
    "lightwork.lab": 3,
    "lightwork.workloads": 3,
    "lightwork.checkpoint": 3,
    "lightwork.joblib": 3,
    "lightwork._argtypes": 3,
    "lightwork._cli": 3,
    "lightwork.__main__": 3,
}
LAYER_NAMES = ["core", "backends", "engine", "features"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a lightwork module; None for the package itself (the public surface)."""
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(path: Path) -> set[str]:
    """The lightwork modules (or the package itself) that ``path`` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "lightwork")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "lightwork":
                target = node.module
            else:
                continue
            for alias in node.names:  # "from . import _random" imports a module
                submodule = f"{target}.{alias.name}"
                found.add(submodule if is_module(submodule) else target)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_has_a_layer() -> None:
    assert [module_name(p) for p in MODULES if layer_of(module_name(p)) is None] == []


def describe(module: str) -> str:
    layer = layer_of(module)
    return f"{module} ({'the public surface' if layer is None else LAYER_NAMES[layer]})"


def is_above(target: str, layer: int) -> bool:
    target_layer = layer_of(target)
    return target_layer is None or target_layer > layer


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    name = module_name(path)
    layer = layer_of(name)
    assert layer is not None
    upward = [describe(t) for t in sorted(imported(path)) if is_above(t, layer)]
    assert upward == [], f"{describe(name)} imports from above it: {upward}"


def test_the_test_sees_imports_inside_functions() -> None:
    # create_backend imports each backend's module when it is first asked for.
    assert "lightwork._backends._serial" in imported(PACKAGE / "_backends" / "__init__.py")
