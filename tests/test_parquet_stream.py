"""The CLI's default Parquet export streams: the same files as the whole-file path, batch by batch.

``deepen-export convert labels.json --to parquet`` parses the file in batches
(``iter_label_batches``) and writes them with ``write_stream(spill=True)``; ``-O stream=false``
keeps the whole-file path. Both must write the same bytes (and DuckDB / pyarrow must read the
same rows), whatever the batch size: frames in their sequence order with the whole file's
``frame_index``, categories in the whole file's order, the report in the same order.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import deepen_export
from converters import parquet
from deepen_export.cli import main
from deepen_export.errors import ConversionError
from deepen_export.pipeline import _ahead, stream_parquet
from tests.conftest import SAMPLES

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
SAMPLE_FILES = [
    "image_dataset/labels.json",
    "image_dataset/labels_by_file.json",
    "image_dataset/all_labels.json",
    "lidar_sequence/labels.json",
]
"""The committed Deepen labels files (list- and dict-shaped, 2D and 3D)."""


UNORDERED = ["10.png", "10.png", "2.png", "b/1.png", "2.png", "1.png", "10.png", "3.png"]
"""File order is not sequence order: "10.png" comes first, natural order puts "2.png" first."""
ORDERED = ["1.png", "1.png", "2.png", "3.png", "3.png", "10.png", "b/1.png", "b/1.png"]
"""Labels listed in sequence order (natural order of the file ids), as Deepen lists them."""


def _labels(files: list[str] = UNORDERED) -> list[dict]:
    """Kinds, categories and frames that first appear in different batches (of 3 labels)."""
    out: list[dict] = []
    for i, fid in enumerate(files):
        common = {
            "file_id": fid,
            "label_id": f"{['zebra', 'car', 'bus'][i % 3]}:{i + 1}",
            "label_category_id": ["zebra", "car", "bus"][i % 3],
            "stage_id": "QA",
            "labeller_email": f"l{i % 2}@example.com",
            "create_time_millis": 1700000000000 + i,
            "attributes": {"occluded": ["no", "yes"][i % 2]},
        }
        if i % 4 == 0:
            out.append({**common, "label_type": "box", "box": [i, 2, 30, 40]})
        elif i % 4 == 1:  # a square with a 2-vertex ring: the ring is left out (reported)
            out.append({**common, "label_type": "polygon", "polygons": [SQUARE, [[1, 1], [2, 2]]]})
        elif i % 4 == 2:  # a bow tie: repaired (reported)
            out.append(
                {**common, "label_type": "polygon", "polygons": [[[0, 0], [4, 4], [4, 0], [0, 4]]]}
            )
        else:
            out.append({**common, "label_type": "lane", "polygons": [[[0, 0], [5, 5], [9, 2]]]})
    # input issues, reported first in both paths: an unknown type, a label without a category
    out.append({**common, "label_id": "car:99", "label_type": "line"})
    out.append({"file_id": "4.png", "label_type": "box"})
    return out


@pytest.fixture
def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"labels": _labels()}))
    return path


@pytest.fixture
def ordered_file(tmp_path: Path) -> Path:
    path = tmp_path / "ordered.json"
    path.write_text(json.dumps({"labels": _labels(ORDERED)}))
    return path


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_streamed_files_equal_the_whole_file_write(labels_file, tmp_path, batch_size):
    whole = tmp_path / "whole"
    report = parquet.write(deepen_export.read_labels(labels_file), whole)
    assert report.counts()["repaired"] >= 2  # the left-out ring and the bow tie are reported
    done = stream_parquet(labels_file, tmp_path / "streamed", batch_size=batch_size)
    assert done.labels == report.written["labels"] == 8
    assert done.input_issues == 2
    _same_files(whole, tmp_path / "streamed")


def test_streamed_rows_read_back_the_same_in_duckdb_and_pyarrow(labels_file, tmp_path):
    parquet.write(deepen_export.read_labels(labels_file), tmp_path / "whole")
    stream_parquet(labels_file, tmp_path / "streamed", batch_size=2)
    for table in ("labels", "frames"):
        a = pq.read_table(tmp_path / "whole" / f"{table}.parquet")
        b = pq.read_table(tmp_path / "streamed" / f"{table}.parquet")
        assert a.equals(b)
    con = duckdb.connect()
    sql = (
        "SELECT file_id, frame_index, category::VARCHAR, label_id, geometry, bbox, xy, attributes "
        "FROM read_parquet('{}') ORDER BY label_id"
    )
    whole, streamed = (
        con.execute(sql.format(tmp_path / d / "labels.parquet")).fetchall()
        for d in ("whole", "streamed")
    )
    assert whole == streamed and len(whole) == 8
    # the sequence order of the whole file: natural order of the file ids, not file order
    frames = tmp_path / "streamed" / "frames.parquet"
    got = con.execute(f"SELECT file_id, frame_index FROM read_parquet('{frames}')").fetchall()
    assert got == [("1.png", 0), ("2.png", 1), ("3.png", 2), ("10.png", 3), ("b/1.png", 4)]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_input_in_sequence_order_is_written_as_it_comes_with_the_same_rows(
    ordered_file, tmp_path, batch_size
):
    whole, streamed = tmp_path / "whole", tmp_path / "streamed"
    parquet.write(deepen_export.read_labels(ordered_file), whole)
    stream_parquet(ordered_file, streamed, batch_size=batch_size)
    # written batch by batch (row groups per batch), not held back
    assert pq.ParquetFile(streamed / "labels.parquet").metadata.num_row_groups > 1
    for name in ("frames.parquet", "report.json"):  # frames in sequence order, same report
        assert (whole / name).read_bytes() == (streamed / name).read_bytes(), name
    a, b = (pq.read_schema(d / "labels.parquet") for d in (whole, streamed))
    assert a == b and a.metadata == b.metadata  # categories, attribute keys, geo bbox, types
    con = duckdb.connect()
    sql = "SELECT * EXCLUDE (category), category::VARCHAR FROM read_parquet('{}') ORDER BY label_id"
    rows = [con.execute(sql.format(d / "labels.parquet")).fetchall() for d in (whole, streamed)]
    assert rows[0] == rows[1] and len(rows[0]) == 8
    frame_index = "SELECT DISTINCT file_id, frame_index FROM read_parquet('{}') ORDER BY 1"
    assert con.execute(frame_index.format(streamed / "labels.parquet")).fetchall() == [
        ("1.png", 0),
        ("10.png", 3),
        ("2.png", 1),
        ("3.png", 2),
        ("b/1.png", 4),
    ]


def test_ordered_write_refuses_a_batch_out_of_sequence_order(tmp_path):
    def batch(fid: str):  # as iter_label_batches gives them: sequence position unknown (-1)
        ls = deepen_export.read_labels({"labels": _labels([fid])})
        frames = dataclasses.replace(ls.frames, index=np.full(len(ls.frames), -1))
        return ls.replace(frames=frames)

    out = tmp_path / "o"
    with pytest.raises(ConversionError, match=r"2\.png"):
        parquet.write_stream([batch("10.png"), batch("2.png")], out, ordered=True)
    assert not out.exists()  # nothing committed: the caller can write again with spill=True


def _same_output(whole: Path, streamed: Path) -> None:
    """Frames, report and metadata byte for byte; the labels rows equal as a multiset."""
    for name in ("frames.parquet", "report.json"):
        assert (whole / name).read_bytes() == (streamed / name).read_bytes(), name
    a, b = (pq.read_schema(d / "labels.parquet") for d in (whole, streamed))
    assert a == b and a.metadata == b.metadata
    rows = "SELECT * EXCLUDE (category), category::VARCHAR FROM read_parquet('{}')"
    con = duckdb.connect()
    for x, y in ((whole, streamed), (streamed, whole)):
        left, right = (rows.format(d / "labels.parquet") for d in (x, y))
        assert con.execute(f"SELECT count(*) FROM ({left} EXCEPT ALL {right})").fetchone() == (0,)
    counts = [pq.read_metadata(d / "labels.parquet").num_rows for d in (whole, streamed)]
    assert counts[0] == counts[1]


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("source", SAMPLE_FILES)
def test_sample_files_in_small_batches_give_the_whole_file_output(source, batch_size, tmp_path):
    parquet.write(deepen_export.read_labels(SAMPLES / source), tmp_path / "whole")
    stream_parquet(SAMPLES / source, tmp_path / "streamed", batch_size=batch_size)
    _same_output(tmp_path / "whole", tmp_path / "streamed")


def test_a_later_batch_that_changes_the_attribute_columns_is_written_with_the_whole_files(
    tmp_path,
):
    labels = _labels(ORDERED)
    for i, lab in enumerate(labels[:-2]):
        # strings in the first batch, a number later: the first batch alone would decide a
        # typed string column and verbatim strings; the whole file has no typed column and
        # JSON text (with no "changed" entries)
        lab["attributes"] = {"score": "high" if i < 2 else i}
    src = tmp_path / "labels.json"
    src.write_text(json.dumps({"labels": labels}))
    parquet.write(deepen_export.read_labels({"labels": labels[:2]}), tmp_path / "first")
    assert "attr_score" in pq.read_schema(tmp_path / "first" / "labels.parquet").names
    whole = parquet.write(deepen_export.read_labels(src), tmp_path / "whole")
    assert "attr_score" not in pq.read_schema(tmp_path / "whole" / "labels.parquet").names
    assert not [i for i in whole.issues if i.action == "changed"]
    stream_parquet(src, tmp_path / "streamed", batch_size=2)
    _same_output(tmp_path / "whole", tmp_path / "streamed")


def _convert(*args: str):
    return CliRunner().invoke(main, ["convert", *args], catch_exceptions=False)


@pytest.mark.parametrize("source", SAMPLE_FILES)
def test_cli_streams_by_default_and_stream_false_keeps_the_whole_file_path(source, tmp_path):
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    a = _convert(str(SAMPLES / source), "--to", "parquet", "-o", str(streamed), "--json")
    b = _convert(
        str(SAMPLES / source), "--to", "parquet", "-o", str(whole), "-O", "stream=false", "--json"
    )
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert json.loads(a.stdout) == json.loads(b.stdout) | {"output": str(streamed)}
    _same_files(whole, streamed)


def test_cli_stream_option_must_be_a_boolean(labels_file, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(labels_file),
            "--to",
            "parquet",
            "-o",
            str(tmp_path / "o"),
            "-O",
            "stream=2",
        ],
    )
    assert result.exit_code == 2
    assert "stream must be true or false" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_stream_of_a_broken_file_is_one_line_and_writes_nothing(tmp_path):
    src = tmp_path / "labels.json"
    body = json.dumps({"labels": _labels()})
    src.write_text(body[: len(body) // 2])  # cut in the middle of a label
    result = CliRunner().invoke(
        main, ["convert", str(src), "--to", "parquet", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert str(src) in result.output or "labels.json" in result.output
    assert not (tmp_path / "o").exists()


def test_read_ahead_stops_its_thread_when_the_consumer_fails():
    started = threading.active_count()
    produced: list[int] = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    with pytest.raises(RuntimeError):
        for i in _ahead(items()):
            if i == 3:
                raise RuntimeError("consumer failed")
    assert threading.active_count() == started
    assert len(produced) <= 6  # one ahead of the consumer, not the whole input


def test_read_ahead_raises_the_producers_error_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad batch")

    got = []
    with pytest.raises(ValueError, match="bad batch"):
        for i in _ahead(items()):
            got.append(i)
    assert got == [1]


def test_spill_needs_the_files_layout(tmp_path):
    with pytest.raises(ValueError, match="spill"):
        parquet.write_stream([], tmp_path / "o", layout="hive", spill=True)
