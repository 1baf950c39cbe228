"""Each package pins its public names: ``__all__`` is exactly what it offers (as httpx's
``test_exported_members``).

A public name is one a module defines at its top level without a leading underscore (function,
class or constant; type aliases such as ``Array`` are implementation detail); a facade package
(``FACADES``) also offers what it imports from the project (its re-exports). Every name in
``__all__`` must exist (some come through ``from x import *`` or a lazy ``__getattr__``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

MODULES = [
    "deepen_export",
    "deepen_export.model",
    "deepen_export.parse",
    "deepen_export.arrow",
    "deepen_export.geometry",
    "deepen_export.geometry.planar",
    "deepen_export.geometry.spatial",
    "deepen_export.snapshot",
    "deepen_export._media",
    "deepen_export._io",
    "deepen_export.report",
    "deepen_export.errors",
    "deepen_export.preview",
    "deepen_export.stats",
    "deepen_export.api",
    "converters",
]


FACADES = {"deepen_export", "deepen_export.parse", "deepen_export.geometry", "deepen_export.api"}
"""Packages whose ``__init__`` is made of re-exports (``converters`` is the registry itself: its
imports serve its own annotations)."""


def _is_type_alias(value: ast.expr) -> bool:
    return isinstance(value, ast.Subscript) or (
        isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr)
    )


def _project(node: ast.ImportFrom) -> bool:
    return node.level == 0 and (node.module or "").split(".")[0] in ("deepen_export", "converters")


def public_names(path: Path, *, package: bool) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and not _is_type_alias(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is None or not _is_type_alias(node.value):
                names.add(node.target.id)
        elif package and isinstance(node, ast.ImportFrom) and _project(node):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    path = Path(str(module.__file__))
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = public_names(path, package=name in FACADES) - set(exported)
    assert not missing, f"{name} offers {sorted(missing)} without listing them in __all__"
    absent = [n for n in exported if not hasattr(module, n)]
    assert not absent, f"{name}.__all__ lists {absent}, which do not exist"


def test_a_name_left_out_of_all_is_caught(tmp_path: Path) -> None:
    p = tmp_path / "mod.py"
    p.write_text("import numpy as np\nArray = list[int]\n_private = 1\nLIMIT = 3\ndef run(): ...\n")
    assert public_names(p, package=False) == {"LIMIT", "run"}
