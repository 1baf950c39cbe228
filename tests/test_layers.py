"""The import graph of the whole package holds the layers of DESIGN.md, and has no cycle.

Every ``import`` counts, including those inside functions (a lazy import is still a
dependency); only ``if TYPE_CHECKING:`` blocks are left out (they never run). The checker is
run on the real tree and on small fake trees, so it is seen to fail on a forbidden import.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The modules everyone may use: leaves and the model (DESIGN.md, "The house").
_LOW = {
    "deepen_export.geometry",
    "deepen_export._progress",
    "deepen_export._media",
    "deepen_export.model",
    "deepen_export.errors",
    "deepen_export.report",
    "deepen_export._io",
    "deepen_export.snapshot",
    "deepen_export._guard",
}
_PROJECT = {"deepen_export", "converters"}

ALLOWED: dict[str, set[str]] = {
    # group (module name prefix) -> what it may import (module name prefixes)
    "deepen_export.geometry": {"deepen_export.geometry"},
    "deepen_export._progress": set(),
    "deepen_export._media": {
        "deepen_export.model",
        "deepen_export.snapshot",
        "deepen_export.errors",
    },
    "deepen_export.model": {"deepen_export.geometry.spatial"},  # the one quaternion formula
    "deepen_export.errors": {"deepen_export.model"},  # re-exports LabelError
    "deepen_export.report": {"deepen_export.model"},
    "deepen_export._io": {"deepen_export.errors"},
    "deepen_export.snapshot": {"deepen_export.errors"},
    "deepen_export._guard": {"deepen_export.errors", "deepen_export._io", "deepen_export"},
    "deepen_export.parse": _LOW | {"deepen_export.parse"},
    "deepen_export.arrow": _LOW,
    "deepen_export.preview": _LOW,
    "deepen_export.stats": _LOW,
    "deepen_export.api": _LOW | {"deepen_export.api"},
    # the deepen format's reader and `--from` detection read Deepen JSON through parse (which is
    # upstream of every converter and never imports one)
    "converters": _LOW | {"converters", "deepen_export.arrow", "deepen_export.parse"},
    # the one orchestration layer above both api and converters
    "deepen_export.distributed": {"deepen_export.pipeline"},  # a deprecated alias of it
    "deepen_export.pipeline": _LOW | {"deepen_export.api", "deepen_export.parse", "converters"},
    "deepen_export.push": _LOW | {"deepen_export.api", "deepen_export.parse", "converters"},
    "deepen_export.commands": _PROJECT,
    "deepen_export.cli": _PROJECT,
    "deepen_export.__main__": _PROJECT,
}
FACADE = "deepen_export"
"""The package itself: anyone may import it (``__version__``); it imports parse and api lazily."""
ALLOWED_FACADE = {"deepen_export.model", "deepen_export.errors", "deepen_export.report",
                  "deepen_export.parse", "deepen_export.api"}  # fmt: skip


def _within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _group(module: str) -> str | None:
    best = [g for g in ALLOWED if _within(module, {g})]
    return max(best, key=len) if best else None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for n in ast.walk(node))
    return out


@functools.cache
def _raw_imports(module: str, source: str, is_package: bool) -> frozenset[tuple[str, str]]:
    """``(name, fallback)`` of every import in ``source`` (functions included, absolute names)."""
    tree = ast.parse(source)
    skip = _type_checking_nodes(tree)
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update((a.name, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            found.update((f"{base}.{a.name}", base) for a in node.names)
    return frozenset(found)


def imports_of(module: str, source: str, modules: set[str], is_package: bool) -> set[str]:
    """Project modules ``module`` imports anywhere in ``source`` (functions included)."""
    out = set()
    for sub, base in _raw_imports(module, source, is_package):
        name = sub if sub in modules else base
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: (source, is_package)}`` -> ``{module: project modules it imports}``."""
    names = set(sources)
    return {m: imports_of(m, src, names, pkg) for m, (src, pkg) in sources.items()}


def violations(g: Mapping[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(g.items()):
        if module == FACADE:
            allowed = ALLOWED_FACADE
        else:
            group = _group(module)
            if group is None:
                out.append(f"{module} belongs to no layer (add it to tests/test_layers.py)")
                continue
            allowed = ALLOWED[group]
        for t in sorted(targets):
            if t != FACADE and not _within(t, allowed | {module}):
                out.append(f"{module} imports {t}")
    return out


def cycles(g: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), the facade left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w == FACADE:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v != FACADE and v not in index:
            visit(v)
    return out


@functools.lru_cache(maxsize=1)
def _real_tree() -> tuple[tuple[str, tuple[str, bool]], ...]:
    return tuple(_read_tree().items())


def _tree() -> dict[str, tuple[str, bool]]:
    return dict(_real_tree())


def _read_tree() -> dict[str, tuple[str, bool]]:
    out = {}
    for pkg in ("deepen_export", "converters"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_pkg else parts)
            out[name] = (p.read_text(encoding="utf-8"), is_pkg)
    return out


def test_the_package_keeps_its_layers() -> None:
    assert violations(graph(_tree())) == []


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(graph(_tree())) == []


def _with(fake: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
    tree = _tree()
    for name, src in fake.items():
        tree[name] = (src, False)
    return tree


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # the model reaching up into the fetch layer, lazily
        (
            "deepen_export.model",
            "def f():\n    from deepen_export.api import Client\n",
            "deepen_export.model imports deepen_export.api",
        ),
        # a converter importing the API client
        (
            "converters.fake",
            "import deepen_export.api._client\n",
            "converters.fake imports deepen_export.api._client",
        ),
        # the API importing a format
        (
            "deepen_export.api._fake",
            "from converters import coco\n",
            "deepen_export.api._fake imports converters.coco",
        ),
        # parse depending on Arrow (relative import)
        (
            "deepen_export.parse._fake",
            "from .. import arrow\n",
            "deepen_export.parse._fake imports deepen_export.arrow",
        ),
    ],
)
def test_a_forbidden_import_is_caught(module: str, source: str, expected: str) -> None:
    assert expected in violations(graph(_with({module: source})))


def test_type_checking_imports_do_not_count() -> None:
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deepen_export.api import Client\n"
    assert violations(graph(_with({"deepen_export.model": src}))) == []


def test_a_cycle_is_caught() -> None:
    fake = {
        "deepen_export.parse._a": "from deepen_export.parse import _b\n",
        "deepen_export.parse._b": "def g():\n    import deepen_export.parse._a\n",
    }
    assert ["deepen_export.parse._a", "deepen_export.parse._b"] in cycles(graph(_with(fake)))
