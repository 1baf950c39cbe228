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
