"""``deepen-export preview``, ``deepen-export stats`` and ``deepen-export demo``: seeing the labels."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from deepen_export.model import LabelSet

__all__ = ["DemoOutput", "image_sources", "register", "run_demo", "select_frames"]


def _load(
    source: Path,
    *,
    from_format: str | None,
    frames_zip: Path | None,
    images: Path | None,
) -> LabelSet:
    if from_format:
        import converters

        fmt = converters.get_format(from_format)
        reader = converters.get(fmt.name)
        if not fmt.readable or not hasattr(reader, "read"):
            raise click.UsageError(
                f"{fmt.name} cannot be read back; readable formats: "
                + ", ".join(f.name for f in converters.FORMATS.values() if f.readable)
            )
        params = inspect.signature(reader.read).parameters
        options: dict[str, Any] = {}
        if images is not None and "images" in params:
            options["images"] = images
        return converters.read(source, fmt.name, **options)
    from deepen_export import read_labels

    return read_labels(source, frames=frames_zip, images=images)


def image_sources(source: Path, images: Path | None, frames_zip: Path | None) -> list[Path]:
    """Where to look for image pixels: ``--images``, then what sits with SOURCE, then the zip.

    For a snapshot folder: its ``images/`` folder and its ``media/*.zip`` (the dataset's upload,
    which holds the camera images of 3D frames); for a labels file: an ``images/`` folder beside
    it; and ``--frames-zip`` when given.

    Examples
    --------
    >>> image_sources(Path("labels.json"), None, None)
    []
    """
    out = [images] if images is not None else []
    base = source if source.is_dir() else source.parent
    if (base / "images").is_dir():
        out.append(base / "images")
    if source.is_dir():
        out.extend(sorted((source / "media").glob("*.zip")))
    if frames_zip is not None:
        out.append(frames_zip)
    return list(dict.fromkeys(out))


def select_frames(labels: LabelSet, spec: str | None) -> list[int] | None:
    """Frame rows chosen by ``--frames``: ``N`` (the first N files) or comma-separated file ids.

    A "file" is one ``(dataset_id, file_id)``: a LiDAR frame counts once with its camera images.

    Parameters
    ----------
    labels : LabelSet
    spec : str or None
        ``"5"`` or ``"0.pcd,1.pcd"``; ``None`` selects everything.

    Returns
    -------
    list of int or None
        Rows of ``labels.frames`` (``None`` for all).

    Raises
    ------
    click.BadParameter
        When a file id is not in the labels.

    Examples
    --------
    >>> from deepen_export.model import Frames
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a", "a", "b"], sensor_id=["lidar", "camera_0", "lidar"]))
    >>> select_frames(ls, "1"), select_frames(ls, "b")
    ([0, 1], [2])
    """
    if spec is None or spec.strip() == "":
        return None
    f = labels.frames
    keys = list(zip(f.dataset_id.tolist(), f.file_id.tolist(), strict=True))
    spec = spec.strip()
    file_ids = set(f.file_id.tolist())
    if spec.isdigit() and spec not in file_ids:
        first = list(dict.fromkeys(keys))[: int(spec)]
        chosen = set(first)
        return [i for i, k in enumerate(keys) if k in chosen]
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    missing = [w for w in wanted if w not in file_ids]
    if missing:
        known = ", ".join(list(dict.fromkeys(f.file_id.tolist()))[:5])
        raise click.BadParameter(
            f"no frame with file id {', '.join(missing)} (file ids look like: {known})",
            param_hint="--frames",
        )
    want = set(wanted)
    return [i for i, fid in enumerate(f.file_id.tolist()) if fid in want]


_source_arg = click.argument("source", type=click.Path(exists=True, path_type=Path))
_from_format_opt = click.option(
    "--from-format",
    metavar="FORMAT",
    help="Read SOURCE as a converted output in FORMAT (kitti, coco, yolo, ...): see what the "
    "files on disk say.",
)
_frames_zip_opt = click.option(
    "--frames-zip",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The dataset's uploaded zip (json_data.zip): calibration and points for 3D frames.",
)
_images_opt = click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the images, looked up by file id (grey canvases where one is missing).",
)


@click.command()
@_source_arg
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder for the PNGs."
)
@click.option(
    "--frames",
    "frames_spec",
    metavar="N|FILE_IDS",
    help="Only the first N files, or these comma-separated file ids.",
)
@_images_opt
@_from_format_opt
@_frames_zip_opt
@click.option("--tracks", is_flag=True, help="Write the track number next to each label.")
@click.option("--attributes", is_flag=True, help="Write each label's attributes next to it.")
@click.option(
    "--bev-range",
    type=click.FloatRange(min=1.0),
    metavar="METRES",
    help="Half-width of the bird's-eye views (default: fits the labels).",
)
@click.option(
    "--bev-size",
    type=click.IntRange(min=64),
    metavar="PX",
    default=800,
    show_default=True,
    help="Bird's-eye view size in pixels.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing OUTPUT folder that deepen-export did not create.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")
def preview(
    source: Path,
    output: Path,
    frames_spec: str | None,
    images: Path | None,
    from_format: str | None,
    frames_zip: Path | None,
    tracks: bool,
    attributes: bool,
    bev_range: float | None,
    bev_size: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Draw the labels over their images as PNGs in OUTPUT.

    2D labels go over each image; cuboids are projected into every camera image of a 3D frame
    and each LiDAR frame gets a bird's-eye view (<file>.bev.png) with its points. Category
    colours are the same in every picture.

    \b
    Examples:
      deepen-export preview labels.json -o previews --images images/ --frames 10
      deepen-export preview snapshots/ds1 -o previews --frames 0.pcd,1.pcd --tracks
      deepen-export preview out/kitti --from-format kitti -o previews/kitti
    """
    from deepen_export._guard import check_output, stamp, unmarked
    from deepen_export.commands.convert import lossy_lines
    from deepen_export.preview import write_previews

    sources = image_sources(source, images, frames_zip)
    inputs = [("SOURCE", source), ("--frames-zip", frames_zip)]
    target = check_output(output, inputs + [("images", p) for p in sources], overwrite=overwrite)
    labels = _load(source, from_format=from_format, frames_zip=frames_zip, images=images)
    rows = select_frames(labels, frames_spec)
    with unmarked(target), lossy_lines() as unreadable:
        written = write_previews(
            labels,
            output,
            frames=rows,
            images=sources,
            tracks=tracks,
            attributes=attributes,
            bev_extent=bev_range,
            bev_size=bev_size,
        )
    stamp(target, format="preview")
    if as_json:
        doc = {"output": str(output), "previews": written, "unreadable": unreadable}
        click.echo(json.dumps(doc, indent=2))
        return
    for line in unreadable:
        click.echo(f"  {line}", err=True)
    click.echo(f"wrote {len(written)} preview(s) to {output}")


@click.command()
@_source_arg
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report (tables and plots) here.",
)
@_images_opt
@_from_format_opt
@_frames_zip_opt
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON (for scripts).")
def stats(
    source: Path,
    output: Path | None,
    images: Path | None,
    from_format: str | None,
    frames_zip: Path | None,
    as_json: bool,
) -> None:
    """Summarize the labels: counts per kind and category, frame statuses, stages, labellers,
    tracks, box sizes and cuboid distances.

    \b
    Examples:
      deepen-export stats labels.json
      deepen-export stats snapshots/ds1 -o report.html
      deepen-export stats out/coco --from-format coco
    """
    from deepen_export.stats import compute_stats, print_stats, write_html_report

    labels = _load(source, from_format=from_format, frames_zip=frames_zip, images=images)
    summary = compute_stats(labels, title=str(source))
    if as_json:
        doc = dataclasses.asdict(summary) | {"html": str(output) if output else None}
        if output is not None:
            write_html_report(summary, output)
        import orjson

        opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        click.echo(orjson.dumps(doc, option=opts).decode())
        return
    print_stats(summary)
    if output is not None:
        write_html_report(summary, output)
        click.echo(f"wrote {output}")


# ---------------------------------------------------------------------------------------
# demo


@dataclass(frozen=True)
class DemoOutput:
    """One line of the demo's summary: what was written where, or why not."""

    dataset: str
    what: str
    status: str
    path: Path | None
    detail: str = ""


@dataclass(frozen=True)
class _Sample:
    name: str
    source: Path
    load: Callable[[], LabelSet]


def _samples(root: Path) -> list[_Sample]:
    """The sample datasets: every snapshot-like folder (labels.json or manifest.json), and the
    2D painting on top of the image dataset."""
    from deepen_export import read_labels

    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / "labels.json").is_file() or (d / "manifest.json").is_file():
            out.append(_Sample(d.name, d, functools.partial(read_labels, d)))
    painting, images = root / "painting2d", root / "image_dataset"
    if painting.is_dir() and images.is_dir():

        def load() -> LabelSet:
            from deepen_export.parse import parse_painting2d

            return parse_painting2d(painting, read_labels(images))

        out.append(_Sample("painting2d", images, load))
    return out


def run_demo(
    dest: str | Path,
    *,
    sample_dir: str | Path | None = None,
    preview_frames: int = 10,
) -> list[DemoOutput]:
    """Convert every sample dataset to every format that can hold its labels, and draw previews.

    For each dataset in the sample data: one folder per format whose kinds overlap the
    dataset's (written with ``on_unsupported="drop"``; what was dropped is in each output's
    ``report.json``), previews of its first ``preview_frames`` files and a ``report.html``.

    Parameters
    ----------
    dest : path
        Output folder (``dest/<dataset>/<format>``, ``dest/<dataset>/preview``,
        ``dest/<dataset>/report.html``).
    sample_dir : path, optional
        Sample data folder (default: :func:`deepen_export.stats.sample_data_dir`).
    preview_frames : int
        Files per dataset to draw.

    Returns
    -------
    list of DemoOutput
        One entry per output, with ``status`` ``"ok"``, ``"not available"`` (format module not
        in this build) or ``"failed"``.
    """
    import converters
    from deepen_export.errors import ConversionError
    from deepen_export.preview import write_previews
    from deepen_export.stats import compute_stats, sample_data_dir, write_html_report

    root = Path(sample_dir) if sample_dir is not None else sample_data_dir()
    dest = Path(dest)
    results: list[DemoOutput] = []
    for sample in _samples(root):
        labels = sample.load()
        kinds = set(labels.kinds_present())
        for fmt in converters.FORMATS.values():
            if not fmt.kinds & kinds or not all(len(getattr(labels, t)) for t in fmt.needs):
                continue
            out = dest / sample.name / fmt.name
            try:
                module = converters.get(fmt.name)
            except ConversionError as exc:
                results.append(DemoOutput(sample.name, fmt.name, "not available", None, str(exc)))
                continue
            params = inspect.signature(module.write).parameters
            options: dict[str, Any] = {"on_unsupported": "drop"}
            if "images" in params and (sample.source / "images").is_dir():
                options["images"] = sample.source / "images"
            try:
                report = module.write(labels, out, **options)
            except Exception as exc:  # a demo reports every format and goes on
                results.append(
                    DemoOutput(
                        sample.name, fmt.name, "failed", None, f"{type(exc).__name__}: {exc}"
                    )
                )
                continue
            dropped = report.counts().get("dropped", 0)
            detail = f"{dropped} label(s) dropped (see report.json)" if dropped else ""
            results.append(DemoOutput(sample.name, fmt.name, "ok", out, detail))
        rows = select_frames(labels, str(preview_frames))
        shots = write_previews(
            labels,
            dest / sample.name / "preview",
            frames=rows,
            images=image_sources(sample.source, None, None),
            bev_size=600,
        )
        results.append(
            DemoOutput(
                sample.name, "preview", "ok", dest / sample.name / "preview", f"{len(shots)} PNG(s)"
            )
        )
        report_path = write_html_report(
            compute_stats(labels, title=sample.name), dest / sample.name / "report.html"
        )
        results.append(DemoOutput(sample.name, "stats", "ok", report_path))
    return results


@click.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder.",
)
def demo(output: Path) -> None:
    """Convert the bundled sample datasets to every format and draw previews: no token needed.

    Writes OUTPUT/<dataset>/<format>/ for every format that can hold the dataset's labels,
    OUTPUT/<dataset>/preview/*.png and OUTPUT/<dataset>/report.html, then lists them.

    \b
    Example:
      deepen-export demo -o demo-out
    """
    from rich.console import Console
    from rich.table import Table

    start = time.perf_counter()
    results = run_demo(output)
    table = Table(title=f"deepen-export demo: everything is under {output}", title_justify="left")
    for col in ("dataset", "output", "status", "where (under the output folder)"):
        table.add_column(col, overflow="fold")
    missing: dict[str, list[str]] = {}
    for r in results:
        if r.status == "not available":
            missing.setdefault(r.dataset, []).append(r.what)
            continue
        where = r.path.relative_to(output).as_posix() if r.path is not None else ""
        table.add_row(r.dataset, r.what, r.status, "  ".join(x for x in (where, r.detail) if x))
    for dataset, names in missing.items():
        table.add_row(dataset, ", ".join(names), "not available", "not in this build yet")
    console = Console()
    console.print(table)
    ok = sum(r.status == "ok" for r in results)
    failed = [r for r in results if r.status == "failed"]
    console.print(f"{ok} of {len(results)} outputs written in {time.perf_counter() - start:.1f} s")
    console.print(
        "Open the report.html files in a browser and the preview/ folders in an image viewer; "
        "read a converted output back with `deepen-export stats DIR --from-format FORMAT`."
    )
    if failed:
        raise click.ClickException(
            "; ".join(f"{r.dataset}/{r.what} failed: {r.detail}" for r in failed)
        )


def register(group: click.Group) -> None:
    """Add ``preview``, ``stats`` and ``demo`` to the command group."""
    group.add_command(preview)
    group.add_command(stats)
    group.add_command(demo)
