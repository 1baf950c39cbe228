"""Columns are declared once: the parsers, the model and Arrow all follow the declaration.

A common column with a ``deepen=`` field is read by both parse paths and written and read back
by Arrow without any other edit; these tests fail if one of them falls back to a fill value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converters import parquet
from deepen_export.arrow import from_arrow, label_schema, to_arrow
from deepen_export.model import COMMON, KIND_SPECS, LabelSet, LabelTable
from deepen_export.parse import parse_labels
from deepen_export.parse._assemble import DEEPEN_FIELDS

VALUES = {"O": lambda i: f"value-{i}", "int64": lambda i: 1_700_000_000_000 + i}


def _labels(n: int) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        lab: dict[str, object] = {"file_id": f"{i}.png", "label_category_id": "car",
                                  "label_type": "box", "box": [1, 2, 3, 4]}  # fmt: skip
        for name, key in DEEPEN_FIELDS.items():
            lab[key] = VALUES[COMMON[name].dtype](i)
        lab["label_id"] = f"car:{i}"
        out.append(lab)
    return out


@pytest.fixture
def parsed(tmp_path: Path) -> tuple[LabelSet, LabelSet]:
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"labels": _labels(4)}))
    return parse_labels(p), parse_labels(p, fast=False)


@pytest.mark.parametrize("name", sorted(DEEPEN_FIELDS))
def test_every_declared_field_is_parsed_by_both_paths(name: str, parsed) -> None:
    fast, general = parsed
    want = [VALUES[COMMON[name].dtype](i) for i in range(4)] if name != "label_id" else None
    for ls in (fast, general):
        got = getattr(ls.boxes, name).tolist()
        assert got == (want or [f"car:{i}" for i in range(4)]), name
    assert fast == general


def test_every_declared_column_round_trips_through_arrow_and_parquet(parsed, tmp_path) -> None:
    fast, _ = parsed
    assert from_arrow(to_arrow(fast)) == fast
    parquet.write(fast, tmp_path / "pq")
    assert parquet.read(tmp_path / "pq") == fast


def test_the_arrow_schema_is_the_declaration() -> None:
    schema = label_schema()
    for name, col in LabelTable.COLUMNS.items():
        if col.arrow:
            assert schema.field(col.arrow).name == col.arrow, name
    # and every label kind is a table of the registry with the common columns
    for spec in KIND_SPECS.values():
        if spec.vector:
            assert set(COMMON) <= set(spec.table.COLUMNS)
