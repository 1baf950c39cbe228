"""Docstring examples run, and every name in __all__ exists."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import converters
import deepen_export

MODULES = sorted(
    {
        m.name
        for pkg in (deepen_export, converters)
        for m in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + ".")
        if ".commands." not in m.name and not m.name.endswith("__main__")
    }
    | {"deepen_export", "converters"}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


@pytest.mark.parametrize("name", MODULES)
def test_all_resolves(name):
    # ruff (RUF022) keeps __all__ sorted; this checks that every listed name exists
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:
        return
    for n in names:
        assert hasattr(module, n), f"{name}.__all__ lists {n!r}, which does not exist"


def test_top_level_entry_points():
    assert callable(deepen_export.read_labels)
    assert deepen_export.LabelSet.__name__ == "LabelSet"
    for fmt in converters.FORMATS.values():
        assert fmt.kinds <= set(deepen_export.model.KINDS), fmt.name


def _project_imports(path) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("deepen_export", "converters")}


def test_data_flows_one_way_as_design_says():
    # DESIGN.md: model imports nothing of the project but the geometry leaf (the one quaternion
    # formula); converters never import api; api knows nothing of formats. Imports inside
    # functions count too. tests/test_layers.py checks the whole graph.
    from pathlib import Path

    pkg = Path(deepen_export.__file__).parent
    assert _project_imports(pkg / "model.py") <= {"deepen_export.geometry.spatial"}
    for f in Path(converters.__file__).parent.glob("*.py"):
        bad = {m for m in _project_imports(f) if m.startswith("deepen_export.api")}
        assert not bad, f"{f.name} imports {bad}"
    for f in (pkg / "api").glob("*.py"):
        bad = {m for m in _project_imports(f) if m.startswith("converters")}
        assert not bad, f"api/{f.name} imports {bad}"
