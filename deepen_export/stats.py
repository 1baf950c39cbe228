"""What is in a label set: counts, statuses, who labelled what, tracks, sizes and distances.

:func:`compute_stats` turns a :class:`~deepen_export.model.LabelSet` into a :class:`Stats`: a
list of :class:`StatTable` (title, column names, rows) and a list of :class:`Distribution`
(title, unit, values). :func:`print_stats` shows them in a terminal with rich; :func:`html_report`
makes one self-contained HTML page of the same tables with a histogram per distribution (PNG
drawn with Pillow, inlined as a ``data:`` URI: the page needs no network and no other file).

Examples
--------
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> labels = LabelSet(
...     frames=Frames.from_columns(file_id=["a.png", "b.png"], status=[3, 2]),
...     categories=("car",),
...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 0, 4, 3]]),
... )
>>> stats = compute_stats(labels)
>>> stats.table("Labels by category and kind").rows
[('car', 1, 1), ('total', 1, 1)]
>>> stats.distribution("Box width").values.tolist()
[4.0]
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deepen_export.model import LABEL_KINDS, FrameStatus, LabelSet

__all__ = [
    "Distribution",
    "StatTable",
    "Stats",
    "compute_stats",
    "histogram_png",
    "html_report",
    "print_stats",
    "sample_data_dir",
    "write_html_report",
]

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class StatTable:
    """One table of the summary: a title, column names and rows of plain Python values."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""


@dataclass(frozen=True)
class Distribution:
    """Values of one quantity (one per label or per frame), to summarize and plot."""

    title: str
    unit: str
    values: Array
    note: str = ""

    def summary(self) -> tuple[Any, ...]:
        """``(n, min, p25, median, p75, max, mean)``, rounded for display (NaN-free)."""
        v = self.values[np.isfinite(self.values)]
        if len(v) == 0:
            return (0, "", "", "", "", "", "")
        q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
        return (len(v), *(_fmt(x) for x in q), _fmt(float(v.mean())))


@dataclass(frozen=True)
class Stats:
    """Every table and distribution of one label set."""

    title: str
    tables: list[StatTable] = field(default_factory=list)
    distributions: list[Distribution] = field(default_factory=list)

    def table(self, title: str) -> StatTable:
        """The table called ``title`` (KeyError if absent)."""
        for t in self.tables:
            if t.title == title:
                return t
        raise KeyError(title)

    def distribution(self, title: str) -> Distribution:
        """The distribution whose title starts with ``title`` (KeyError if absent)."""
        for d in self.distributions:
            if d.title.startswith(title):
                return d
        raise KeyError(title)

    def distribution_table(self) -> StatTable:
        """One row per distribution: n, min, quartiles, max and mean."""
        return StatTable(
            "Distributions",
            ("quantity", "unit", "n", "min", "p25", "median", "p75", "max", "mean"),
            [(d.title, d.unit, *d.summary()) for d in self.distributions],
        )


def _fmt(x: float) -> float | int:
    if float(x).is_integer():
        return int(x)
    return round(float(x), 2 if abs(x) < 100 else 1)


def _frame_index(labels: LabelSet, kinds: Sequence[str]) -> Array:
    return np.concatenate(
        [np.asarray(labels.table(k).frame, dtype=np.int64) for k in kinds]  # type: ignore[attr-defined]
    )


def _common(labels: LabelSet, column: str) -> Array:
    parts = [np.asarray(getattr(labels.table(k), column)) for k in LABEL_KINDS]
    if column in ("stage", "labeller", "label_id", "label_set"):
        out = np.empty(sum(len(p) for p in parts), dtype=object)
        out[:] = [x for p in parts for x in p]
        return out
    return np.concatenate(parts)


def _factorize(values: Array) -> tuple[list[Any], Array]:
    """Distinct values in order of first appearance and each value's code (``None`` as ``""``).

    Strings go through Arrow's hash-based dictionary encoding (sorting a million strings with
    numpy takes seconds); anything else through a dict.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pc.fill_null(pa.array(values, type=pa.string(), from_pandas=True), "")
    except (pa.ArrowException, TypeError):
        table: dict[Any, int] = {}
        codes = [table.setdefault("" if v is None else v, len(table)) for v in values.tolist()]
        return list(table), np.asarray(codes, dtype=np.int64)
    enc = arr.dictionary_encode()
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    return enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _count_table(
    title: str,
    header: str,
    values: Array,
    *,
    frames: Array | None = None,
    times: Array | None = None,
) -> StatTable:
    """Labels per distinct value, most first; with the distinct frames and the last time."""
    cols = [header, "labels"] + (["frames"] if frames is not None else [])
    cols += ["last update (UTC)"] if times is not None else []
    if len(values) == 0:
        return StatTable(title, tuple(cols), [])
    uniq, codes = _factorize(values)
    counts = np.bincount(codes, minlength=len(uniq))
    per_frames = per_time = None
    if frames is not None:
        pairs = np.unique(codes * (int(frames.max()) + 1) + frames)
        per_frames = np.bincount(pairs // (int(frames.max()) + 1), minlength=len(uniq))
    if times is not None:
        per_time = np.full(len(uniq), -1, dtype=np.int64)
        np.maximum.at(per_time, codes, times)
    rows = []
    for i in sorted(range(len(uniq)), key=lambda i: (-counts[i], str(uniq[i]))):
        name = "(none)" if uniq[i] in ("", None) else str(uniq[i])
        row: list[Any] = [name, int(counts[i])]
        if per_frames is not None:
            row.append(int(per_frames[i]))
        if per_time is not None:
            row.append(_when(int(per_time[i])) if per_time[i] >= 0 else "")
        rows.append(tuple(row))
    return StatTable(title, tuple(cols), rows)


def compute_stats(labels: LabelSet, *, title: str = "") -> Stats:
    """Count and measure everything in ``labels``.

    Tables: labels by category and kind, frames by review status (labelled, empty,
    unlabelled, unknown, and how many of each actually carry labels), labels by stage, by
    labeller (with the frames they touched and their last update), tracks by category (a track
    is one ``label_id`` with a track number, followed across the frames of its dataset, a
    cuboid and a camera box with the same id being one track), and
    painted points / pixels by category. Distributions: box width and height in pixels, cuboid
    distance from the device (3D Euclidean distance from the LiDAR's position in that frame;
    world-frame cuboids on frames without a device pose are left out and counted in a note),
    track lengths in frames and labels per frame. Input issues met while reading (unknown label
    types, bad geometry) get a table of their own.

    Parameters
    ----------
    labels : LabelSet
        The labels to describe.
    title : str
        Heading of the summary (default: the label set's ``meta["source"]`` or "labels").

    Returns
    -------
    Stats

    Examples
    --------
    >>> from deepen_export.model import Cuboids, Frames, LabelSet
    >>> labels = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car",),
    ...     cuboids=Cuboids.from_columns(frame=[0], category=[0], label_id=["car:1"],
    ...         center=[[3, 4, 0]], size=[[4, 2, 1.5]], quat=[[0, 0, 0, 1]], frame_of_reference="lidar"))
    >>> compute_stats(labels).distribution("Cuboid distance").values.tolist()
    [5.0]
    """
    title = title or str(labels.meta.get("source", "")) or "labels"
    tables = [
        _overview(labels),
        _by_category(labels),
        _by_status(labels),
        _count_table("Labels by stage", "stage", _common(labels, "stage")),
        _count_table(
            "Labels by labeller",
            "labeller",
            _common(labels, "labeller"),
            frames=_frame_index(labels, LABEL_KINDS),
            times=_common(labels, "update_time"),
        ),
    ]
    track_table, track_lengths = _tracks(labels)
    tables.append(track_table)
    tables.extend(_painting(labels))
    if labels.issues:
        tables.append(_issues(labels))

    boxes = labels.boxes.xyxy
    dists = [
        Distribution("Box width", "px", boxes[:, 2] - boxes[:, 0]),
        Distribution("Box height", "px", boxes[:, 3] - boxes[:, 1]),
        _cuboid_distance(labels),
        Distribution("Track length", "frames", track_lengths.astype(np.float64)),
        Distribution(
            "Labels per labelled frame",
            "labels",
            _labels_per_frame(labels),
        ),
    ]
    return Stats(title, tables, dists)


def _overview(labels: LabelSet) -> StatTable:
    rows: list[tuple[Any, ...]] = [
        ("frames", len(labels.frames)),
        ("categories", len(labels.categories)),
    ]
    rows += [(kind, len(t)) for kind, t in labels]
    rows.append(("labels (all kinds)", len(labels)))
    if len(labels.pointclouds):
        rows.append(("LiDAR points", len(labels.pointclouds.xyz)))
    if len(labels.cameras):
        rows.append(("camera images (calibrated)", len(labels.cameras)))
    if labels.issues:
        rows.append(("input issues", len(labels.issues)))
    return StatTable("Overview", ("what", "count"), rows)


def _by_category(labels: LabelSet) -> StatTable:
    kinds = [k for k in LABEL_KINDS if len(labels.table(k))]
    nc = len(labels.categories)
    counts = np.stack(
        [np.bincount(labels.table(k).category, minlength=nc) for k in kinds]  # type: ignore[attr-defined]
        or [np.zeros(nc, dtype=np.int64)],
        axis=1,
    )[:, : len(kinds)]
    total = counts.sum(axis=1)
    rows = [
        (name, *map(int, counts[i]), int(total[i]))
        for i, name in enumerate(labels.categories)
        if total[i] > 0
    ]
    rows.append(("total", *map(int, counts.sum(axis=0)), int(total.sum())))
    return StatTable("Labels by category and kind", ("category", *kinds, "total"), rows)


def _labelled_frames(labels: LabelSet) -> Array:
    has = np.zeros(len(labels.frames), dtype=bool)
    has[_frame_index(labels, (*LABEL_KINDS, "point_segmentation", "masks2d"))] = True
    return has


def _by_status(labels: LabelSet) -> StatTable:
    status = labels.frames.status
    has = _labelled_frames(labels)
    rows = []
    for s in (FrameStatus.LABELLED, FrameStatus.EMPTY, FrameStatus.UNLABELLED, FrameStatus.UNKNOWN):
        m = status == int(s)
        rows.append((s.name.lower(), int(m.sum()), int((m & has).sum())))
    rows.append(("total", len(status), int(has.sum())))
    return StatTable(
        "Frames by status",
        ("status", "frames", "with labels"),
        rows,
        note="empty = labelled and reviewed with no labels; unlabelled = not labelled yet; "
        "unknown = the source does not say",
    )


def _tracks(labels: LabelSet) -> tuple[StatTable, Array]:
    f = labels.frames
    parts_ds, parts_id, parts_seq, parts_cat = [], [], [], []
    for k in LABEL_KINDS:
        t: Any = labels.table(k)
        m = t.track >= 0
        fr = t.frame[m]
        parts_ds.append(f.dataset_id[fr])
        parts_id.append(t.label_id[m])
        # position in the sequence; a frame without one stands alone (negative, never shared)
        parts_seq.append(np.where(f.index[fr] >= 0, f.index[fr], -1 - fr))
        parts_cat.append(t.category[m])
    header = ("category", "tracks", "labels", "shortest", "median", "longest")
    seq = np.concatenate(parts_seq)
    if len(seq) == 0:
        return StatTable("Tracks by category", header, []), np.zeros(0)
    _, ds = _factorize(np.concatenate(parts_ds))
    ids, lid = _factorize(np.concatenate(parts_id))
    cats = np.concatenate(parts_cat)
    # a track is (dataset, label id); its length is the number of distinct sequence positions
    uniq, inv = np.unique(ds * len(ids) + lid, return_inverse=True)
    span = int(seq.max() - seq.min()) + 1
    pairs = np.unique(inv.astype(np.int64) * span + (seq - seq.min()))
    lengths = np.bincount(pairs // span, minlength=len(uniq))
    track_cat = np.zeros(len(uniq), dtype=np.int64)
    track_cat[inv] = cats
    label_counts = np.bincount(inv, minlength=len(uniq))
    rows = []
    for c in np.unique(track_cat):
        m = track_cat == c
        ln = lengths[m]
        rows.append(
            (
                labels.categories[c],
                int(m.sum()),
                int(label_counts[m].sum()),
                int(ln.min()),
                _fmt(float(np.median(ln))),
                int(ln.max()),
            )
        )
    rows.sort(key=lambda r: (-r[1], r[0]))
    note = (
        "a track is one label id (car:4) followed across the frames of its dataset, its 3D "
        "and 2D labels together; lengths in frames"
    )
    return StatTable("Tracks by category", header, rows, note=note), lengths


def _issues(labels: LabelSet) -> StatTable:
    counts: dict[tuple[str, str, str], int] = {}
    for i in labels.issues:
        key = (i.action, i.kind or "", i.reason)
        counts[key] = counts.get(key, 0) + 1
    rows = [(*k, n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return StatTable(
        "Input issues",
        ("action", "kind", "reason", "labels"),
        rows,
        note="input that could not be taken as it was, while reading the source",
    )


def _painting(labels: LabelSet) -> list[StatTable]:
    out = []
    nc = len(labels.categories)
    for kind, codes, what in (
        ("point_segmentation", labels.point_segmentation.category, "points"),
        ("masks2d", labels.masks2d.pixels, "pixels"),
    ):
        if len(labels.table(kind)) == 0:
            continue
        counts = np.bincount(codes[codes >= 0], minlength=nc)
        rows: list[tuple[Any, ...]] = [
            (labels.categories[i], int(counts[i]))
            for i in np.argsort(-counts, kind="stable")
            if counts[i]
        ]
        rows.append(("(unpainted)", int((codes < 0).sum())))
        title = "3D painting" if kind == "point_segmentation" else "2D painting"
        out.append(StatTable(f"{title}: {what} by category", ("category", what), rows))
    return out


def _cuboid_distance(labels: LabelSet) -> Distribution:
    c = labels.cuboids
    title, unit = "Cuboid distance from the device", "m"
    if c.frame_of_reference == "lidar":
        return Distribution(title, unit, np.linalg.norm(c.center, axis=1))
    pose_of = np.full(len(labels.frames), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    p = pose_of[c.frame]
    has = p >= 0
    d = np.linalg.norm(c.center[has] - labels.poses.position[p[has]], axis=1)
    note = ""
    if (~has).any():
        note = f"{int((~has).sum())} world-frame cuboid(s) on frames without a device pose left out"
    return Distribution(title, unit, d, note)


def _labels_per_frame(labels: LabelSet) -> Array:
    per = np.bincount(_frame_index(labels, LABEL_KINDS), minlength=len(labels.frames))
    return per[per > 0].astype(np.float64)


# ---------------------------------------------------------------------------------------
# terminal

_BARS = " ▁▂▃▄▅▆▇█"


def _spark(values: Array, bins: int = 24) -> str:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return ""
    counts, _ = np.histogram(v, bins=bins)
    levels = np.ceil(counts / max(counts.max(), 1) * (len(_BARS) - 1)).astype(int)
    return "".join(_BARS[i] for i in levels)


def print_stats(stats: Stats, console: Any = None) -> None:
    """Print the tables and a one-line histogram per distribution with rich.

    Parameters
    ----------
    stats : Stats
        From :func:`compute_stats`.
    console : rich.console.Console, optional
        Where to print (default: standard output).
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]{stats.title}[/bold]")
    for t in [*stats.tables, stats.distribution_table()]:
        if not t.rows:
            console.print(f"{t.title}: none")
            continue
        table = Table(title=t.title, title_justify="left", caption=t.note or None)
        for i, col in enumerate(t.columns):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in t.rows:
            table.add_row(*("" if x is None else str(x) for x in row))
        console.print(table)
    for d in stats.distributions:
        if len(d.values):
            console.print(f"{d.title} ({d.unit}): {_spark(d.values)}")
        if d.note:
            console.print(f"  note: {d.note}")


# ---------------------------------------------------------------------------------------
# plots and HTML


def histogram_png(
    dist: Distribution, *, width: int = 520, height: int = 240, bins: int = 30
) -> bytes:
    """A bar histogram of ``dist`` as PNG bytes (Pillow, no plotting library needed).

    Parameters
    ----------
    dist : Distribution
        Values to plot (non-finite values are left out).
    width, height : int
        Size in pixels.
    bins : int
        Number of bars (fewer when the values are integers over a shorter range).

    Returns
    -------
    bytes

    Examples
    --------
    >>> png = histogram_png(Distribution("x", "m", np.array([1.0, 2.0, 2.5])))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=12)
    left, right, top, bottom = 48, width - 12, 24, height - 36
    draw.text((left, 4), f"{dist.title} ({dist.unit})", fill=(20, 20, 20), font=font)
    v = dist.values[np.isfinite(dist.values)]
    if len(v) == 0:
        draw.text((left, height // 2), "no values", fill=(120, 120, 120), font=font)
    else:
        lo, hi = float(v.min()), float(v.max())
        if np.all(v == np.round(v)) and hi - lo + 1 <= bins:
            edges = np.arange(lo - 0.5, hi + 1.0)
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        counts, edges = np.histogram(v, bins=edges)
        peak = max(int(counts.max()), 1)
        bw = (right - left) / len(counts)
        for i, n in enumerate(counts.tolist()):
            if n:
                y = bottom - (bottom - top) * n / peak
                x0 = left + i * bw
                draw.rectangle((x0 + 1, y, x0 + max(bw - 1, 1), bottom), fill=(66, 120, 200))
        draw.line((left, bottom, right, bottom), fill=(40, 40, 40))
        draw.line((left, top, left, bottom), fill=(40, 40, 40))
        draw.text((left - 6, bottom + 4), f"{_fmt(edges[0])}", fill=(40, 40, 40), font=font)
        end = f"{_fmt(edges[-1])}"
        draw.text(
            (right - draw.textlength(end, font=font), bottom + 4), end, fill=(40, 40, 40), font=font
        )
        draw.text((4, top - 4), str(peak), fill=(40, 40, 40), font=font)
        draw.text((4, bottom - 12), "0", fill=(40, 40, 40), font=font)
        draw.text(
            (left + (right - left) / 2 - 30, height - 16),
            f"n = {len(v)}",
            fill=(40, 40, 40),
            font=font,
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 9px; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #666; font-size: .9em; margin: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; }
"""


def _html_table(t: StatTable) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
    body = []
    for row in t.rows:
        cells = []
        for i, x in enumerate(row):
            cls = ' class="num"' if i > 0 and isinstance(x, int | float) else ""
            cells.append(f"<td{cls}>{e(str(x))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    note = f'<p class="note">{e(t.note)}</p>' if t.note else ""
    if not t.rows:
        return f"<h2>{e(t.title)}</h2><p>none</p>{note}"
    return (
        f"<h2>{e(t.title)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}"
    )


def html_report(stats: Stats) -> str:
    """One self-contained HTML page: every table, then a histogram per distribution.

    Styles are inline and plots are ``data:image/png;base64`` URIs, so the page opens from
    disk or an e-mail attachment with no network access.

    Parameters
    ----------
    stats : Stats
        From :func:`compute_stats`.

    Returns
    -------
    str
        The HTML text.

    Examples
    --------
    >>> page = html_report(compute_stats(LabelSet.empty()))
    >>> page.startswith("<!DOCTYPE html>") and "<table>" in page
    True
    """
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>deepen-export stats: {e(stats.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>deepen-export stats: {e(stats.title)}</h1>",
    ]
    parts += [_html_table(t) for t in stats.tables]
    parts.append(_html_table(stats.distribution_table()))
    plots = []
    for d in stats.distributions:
        png = base64.b64encode(histogram_png(d)).decode("ascii")
        alt = e(f"{d.title} ({d.unit}) histogram")
        plots.append(f'<figure><img src="data:image/png;base64,{png}" alt="{alt}">')
        if d.note:
            plots.append(f'<figcaption class="note">{e(d.note)}</figcaption>')
        plots.append("</figure>")
    parts.append(f'<h2>Plots</h2><div class="plots">{"".join(plots)}</div>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html_report(stats: Stats, path: str | os.PathLike[str]) -> Path:
    """Write :func:`html_report` to ``path`` atomically; return the path.

    Examples
    --------
    >>> import tempfile
    >>> write_html_report(compute_stats(LabelSet.empty()), tempfile.mkdtemp() + "/r.html").suffix
    '.html'
    """
    from deepen_export._io import atomic_file

    path = Path(path)
    with atomic_file(path, "w") as fh:
        fh.write(html_report(stats))
    return path


def sample_data_dir() -> Path:
    """The bundled sample datasets (``sample_data/`` of the repository checkout).

    Looked up in one place so packaging them elsewhere later changes one function: first
    ``$DEEPEN_EXPORT_SAMPLE_DATA``, then ``sample_data/`` next to the ``deepen_export`` package
    (an editable install or a source checkout), then the copy a wheel installs as package data
    (``deepen_export/_sample_data``: the three datasets the demo converts).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        With a message saying where it looked and how to point at the data.
    """
    env = os.environ.get("DEEPEN_EXPORT_SAMPLE_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "sample_data")
    candidates.append(Path(__file__).resolve().parent / "_sample_data")  # installed from a wheel
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "sample data not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); run from a source checkout installed with `pip install -e .`, or set "
        "DEEPEN_EXPORT_SAMPLE_DATA to the sample_data folder"
    )
