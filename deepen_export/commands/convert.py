"""``deepen-export convert``, ``export`` (pull + convert) and ``formats``."""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def check_from(name: str | None) -> str | None:
    """The ``--from`` value normalised; a usage error listing the readable formats otherwise."""
    from converters._detect import readable_format
    from deepen_export.errors import ConversionError

    try:
        return None if name is None else readable_format(name)
    except ConversionError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None


def _parse_option(value: str) -> tuple[str, str]:
    if "=" not in value:
        raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
    key, raw = value.split("=", 1)
    return key.strip().replace("-", "_"), raw


def _typed_options(fmt: str, write: Any, settings: tuple[str, ...]) -> dict[str, Any]:
    """``-O key=value`` settings as the types the writer's signature declares."""
    from converters._writer import typed_options
    from deepen_export.errors import ConversionError

    try:
        return typed_options(fmt, write, dict(_parse_option(s) for s in settings))
    except ConversionError as exc:
        raise click.UsageError(str(exc)) from None


_TO = click.option("--to", "to", required=True, help="Output format (see `deepen-export formats`).")
_OUTPUT = click.option(
    "-o",
    "--output",
    "output",
    required=True,
    help="Output folder, or a URI pyarrow/fsspec can write (s3://bucket/prefix, gs://...).",
)
_IMAGES = click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the images, for their sizes (and copies where a format wants them).",
)
_ON_UNSUPPORTED = click.option(
    "--on-unsupported",
    type=click.Choice(["raise", "warn", "drop"]),
    default="warn",
    show_default=True,
    help="Label kinds the format cannot hold: warn (write the rest, one line per left-out kind "
    "naming a format that takes it), drop (the same, quietly) or raise (fail; for pipelines).",
)
_JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (for scripts)."
)
_ID_MAP = click.option(
    "--id-map",
    type=click.Path(path_type=Path),
    help="JSON file pinning category/image/annotation ids across exports (read and updated).",
)
_OVERWRITE = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing OUTPUT folder that deepen-export did not create (or that holds "
    "files it did not write).",
)
_SETTINGS = click.option(
    "--set",
    "-O",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Format option, e.g. -O camera=camera_1 (values parsed as JSON when they can be).",
)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@_TO
@_OUTPUT
@click.option(
    "--media",
    "media",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The dataset's uploaded zip (json_data.zip) for calibration, points and image sizes.",
)
@click.option(
    "--frames",
    "frames_old",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    hidden=True,
    help="Deprecated spelling of --media.",
)
@_IMAGES
@click.option(
    "--copy-images",
    is_flag=True,
    help="Put the images into the output in the format's layout (hard links where possible), "
    "from --images or the snapshot's media (COCO, YOLO, VOC, CVAT).",
)
@_ON_UNSUPPORTED
@_ID_MAP
@_SETTINGS
@click.option(
    "--from",
    "from_format",
    help="Format of SOURCE (any readable one; detected when unambiguous, e.g. a COCO JSON, a "
    "YOLO folder with data.yaml, a KITTI folder, a CVAT XML, OpenLABEL, Parquet, Deepen).",
)
@_OVERWRITE
@_JSON
def convert(
    source: Path,
    to: str,
    output: str,
    media: Path | None,
    frames_old: Path | None,
    images: Path | None,
    copy_images: bool,
    on_unsupported: str,
    id_map: Path | None,
    settings: tuple[str, ...],
    from_format: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Convert SOURCE (a labels JSON file, a snapshot folder, or any readable format) to FORMAT.

    OUTPUT is a folder or any URI pyarrow/fsspec can write (s3://bucket/prefix, gs://...).
    Exits 1 when nothing of a non-empty input was written, or labels were left out because
    image sizes are unknown.

    \b
    Examples:
      deepen-export convert labels.json --to coco -o out/coco --images images/
      deepen-export convert snapshots/ds1 --to kitti -o out/kitti -O camera=camera_0
      deepen-export convert labels.json --to kitti -o out/kitti --media json_data.zip
      deepen-export convert out/coco --from coco --to yolo -o out/yolo
      deepen-export convert snapshots/ds1 --to yolo -o out/yolo --copy-images -O split=train:0.8,val:0.2
    """
    if frames_old is not None:
        click.echo(
            "note: convert --frames is deprecated (it will go in 0.3): say --media ZIP", err=True
        )
        media = media or frames_old
    if copy_images:
        settings = (*settings, "copy_images=true")
    _run_convert(
        source,
        to,
        output,
        media,
        images,
        on_unsupported,
        id_map,
        settings,
        as_json,
        from_format=from_format,
        overwrite=overwrite,
    )


def _format(name: str) -> Any:
    import converters
    from deepen_export.errors import ConversionError

    try:
        return converters.get_format(name)
    except ConversionError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None


def _run_convert(
    source: Path,
    to: str,
    output: str,
    frames: Path | None,
    images: Path | None,
    on_unsupported: str,
    id_map: Path | None,
    settings: tuple[str, ...],
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
    *,
    from_format: str | None = None,
    overwrite: bool = False,
) -> None:
    import converters
    from converters._base import remote_destination
    from deepen_export._guard import check_output, stamp, unmarked
    from deepen_export._progress import display, status

    from_format = check_from(from_format)
    fmt = _format(to)
    inputs = [("SOURCE", source), ("--media", frames), ("--images", images), ("--id-map", id_map)]
    target = check_output(output, inputs, overwrite=overwrite)
    module = converters.get(fmt.name)
    settings, batch_size = _stream_setting(fmt.name, settings)
    given = {"on_unsupported": on_unsupported, "images": images, "id_map": id_map, "media": frames}
    options = _writer_options(fmt.name, module.write, settings, given, source)
    streamed = batch_size is not None and _streams(options, source, from_format, frames, images)
    remote_destination(output)  # a URI nothing can write is refused before any work
    with display():
        if streamed:  # a batch at a time; the same files as the whole-file path
            labels, lines = _stream_parquet(source, output, options, target, batch_size)
            report, source_format, n_issues_in = labels.report, "deepen", labels.input_issues
        else:
            with status(f"reading {source}"):
                labels, source_format = _read_any(source, from_format, frames, images)
            n_issues_in = len(labels.issues)
            with (
                status(f"writing {fmt.name} ({len(labels):,} labels)"),
                lossy_lines() as lines,
                unmarked(target),
            ):
                report = module.write(labels, output, **options)
    _note_source_gaps(report, source_format, labels, fmt.kinds, output)
    stamp(target, format=fmt.name)
    failure = _failure(labels, report, n_issues_in)
    _echo_result(report, lines, failure, n_issues_in, source, output, as_json, extra)


def _writer_options(
    fmt: str, write: Any, settings: tuple[str, ...], given: dict[str, Any], source: Path
) -> dict[str, Any]:
    """The writer's options: ``-O`` settings typed by its signature, then the CLI's flags."""
    params = inspect.signature(write).parameters
    options = _typed_options(fmt, write, settings)
    for key, value in given.items():
        if value is not None and key in params:
            options.setdefault(key, value)
    if options.get("copy_images") is True and "images" in params and "images" not in options:
        from converters._dataset import ImageSource

        # a snapshot's own images: media/images/ or the uploaded media/dataset.zip
        found = ImageSource.of_snapshot(source) if source.is_dir() else None
        if found is not None:
            options["images"] = found
    unknown = [k for k in options if k not in params]
    if unknown:
        raise click.UsageError(
            f"{fmt} has no option(s) {', '.join(unknown)}; it takes: "
            + ", ".join(p for p in params if p not in ("labels", "dest"))
        )
    return options


def _echo_result(
    report: Any,
    lines: list[str],
    failure: str | None,
    n_issues_in: int,
    source: Path,
    output: str,
    as_json: bool,
    extra: dict[str, Any] | None,
) -> None:
    """The summary (or ``--json`` document) of one convert; exit 1 when it failed."""
    if as_json:
        click.echo(
            json.dumps(
                {
                    **(extra or {}),
                    "output": str(output),
                    **report._head(),
                    "left_out": lines,
                    "input_issues": n_issues_in,
                    "error": failure,
                },
                indent=2,
            )
        )
    else:
        click.echo(report.summary())
        for line in lines:
            click.echo(f"  {line}", err=True)
        if n_issues_in:
            click.echo(
                f"  {n_issues_in} input issue(s) while reading {source} (listed in report.json)"
            )
        click.echo(f"wrote {output}")
    if failure:
        if not as_json:
            click.echo(f"error: {failure}", err=True)
        raise click.exceptions.Exit(1)


def _stream_parquet(
    source: Path, output: str, options: dict[str, Any], target: Any, batch_size: int | None
) -> tuple[Any, list[str]]:
    """Write SOURCE to Parquet batch by batch (:func:`deepen_export.pipeline.stream_parquet`).

    A snapshot that cannot stream (media zip, paint, ...) is read whole: one note says why.
    """
    from deepen_export._guard import unmarked
    from deepen_export._progress import status
    from deepen_export.pipeline import stream_parquet

    with status(f"streaming {source} to parquet"), lossy_lines() as lines, unmarked(target):
        done = stream_parquet(source, output, batch_size=batch_size or 100_000, **options)
    if done.whole is not None:
        click.echo(f"note: {source} read whole, not streamed: {done.whole}", err=True)
    return done, lines


def _stream_setting(to: str, settings: tuple[str, ...]) -> tuple[tuple[str, ...], int | None]:
    """Parquet's ``-O stream=true|false`` and ``-O batch_size=N`` (CLI choices, not writer
    options) and the rest: the labels per batch when the conversion streams, None when not.

    Examples
    --------
    >>> _stream_setting("parquet", ("stream=false", "layout=files"))
    (('layout=files',), None)
    >>> _stream_setting("parquet", ("batch_size=7",))
    ((), 7)
    """
    if to != "parquet":
        return settings, None
    from converters._writer import coerce

    stream, batch_size, rest = True, 100_000, []
    for setting in settings:
        key, raw = _parse_option(setting)
        if key not in ("stream", "batch_size"):
            rest.append(setting)
            continue
        try:
            if key == "stream":
                stream = coerce(raw, bool)
            else:
                batch_size = coerce(raw, int)
                if batch_size < 1:
                    raise ValueError(raw)
        except ValueError:
            kind = "true or false" if key == "stream" else "a positive whole number"
            raise click.BadParameter(
                f"{key} must be {kind}, got {raw!r}", param_hint="-O"
            ) from None
    return tuple(rest), batch_size if stream else None


def _streams(
    options: dict[str, Any],
    source: Path,
    from_format: str | None,
    media: Path | None,
    images: Path | None,
) -> bool:
    """Whether this Parquet conversion streams: from a Deepen labels JSON file or snapshot.

    ``-O stream=false`` keeps the whole-file path; ``--media``, ``--images`` and ``delta``
    always use it. A snapshot folder streams its labels file (the stream reads a snapshot with
    a media zip or paint whole: :func:`deepen_export.pipeline.stream_parquet`).
    """
    if media is not None or images is not None:
        return False
    if options.get("layout", "files") not in ("files", "hive"):
        return False
    if from_format is None:
        from converters._detect import detect
        from deepen_export.errors import ConversionError
        from deepen_export.parse._scan import _form

        if source.is_file():
            with source.open("rb") as fh:
                if _form(fh.read(256)) is not None:
                    return True  # {"labels": ...}: a Deepen response, without parsing it
        try:
            from_format = detect(source)
        except ConversionError:
            from_format = "deepen"
    return from_format.lower() == "deepen"


@contextlib.contextmanager
def lossy_lines() -> Iterator[list[str]]:
    """Collect :class:`LossyConversionWarning` messages as lines to print; other warnings pass.

    What a writer left out (one line per kind) or a preview drew without its image.
    """
    from deepen_export.errors import LossyConversionWarning

    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LossyConversionWarning)
        yield lines
    for w in caught:
        if issubclass(w.category, LossyConversionWarning):
            lines.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _failure(labels: Any, report: Any, n_issues_in: int) -> str | None:
    """Why the export is a failure (exit 1), or None: nothing written, or labels left out for sizes.

    Examples
    --------
    >>> from deepen_export.report import Report
    >>> import deepen_export
    >>> _failure(deepen_export.read_labels({"labels": []}), Report("coco"), 0) is None
    True
    """
    written = report.groups(n_issues_in)  # grouped: a writer's column blocks stay columns
    unsized = [
        g for g in written if g.action == "dropped" and g.reason.startswith("image size unknown")
    ]
    no_size = sum(g.labelled for g in unsized)
    if no_size:
        sized = frozenset().union(*(g.files for g in unsized))
        return (
            f"{no_size} labels on {len(sized)} images not written: their image sizes are unknown; "
            "pass --images DIR (the image files), or pull the dataset again (a default pull "
            "records them in images.json; or pull --media)"
        )
    n = len(labels)
    unread = sum(g.issues for g in report.groups(0, n_issues_in) if g.action == "dropped")
    if not n and unread:
        return (
            f"no label of the input could be read ({unread} dropped while reading; "
            "see report.json): nothing was written"
        )
    left_out = [g for g in written if g.action == "dropped" and g.kind is not None]
    if n and sum(g.issues for g in left_out) >= n:
        kinds = sorted({str(g.kind) for g in left_out if g.kind})
        return (
            f"no label of the {n} in the input was written ({', '.join(kinds)} left out; "
            f"see report.json); choose a format that holds them (deepen-export formats)"
        )
    return None


def _read_any(
    source: Path, from_format: str | None, frames: Path | None, images: Path | None
) -> tuple[Any, str]:
    """Labels of SOURCE and its format: ``--from``, else detected, else Deepen's (as before)."""
    from converters._detect import detect, read_source
    from deepen_export import read_labels
    from deepen_export.errors import ConversionError

    if from_format is None:
        try:
            from_format = detect(source)
        except ConversionError:
            # not recognisably another format: read it as Deepen labels, which says what is wrong
            return read_labels(source, frames=frames, images=images), "deepen"
    if from_format.lower() == "deepen":
        return read_labels(source, frames=frames, images=images), "deepen"
    if frames is not None:
        raise click.UsageError("--media applies to Deepen sources (labels file or snapshot)")
    return read_source(source, from_format, images=images)


def _note_source_gaps(
    report: Any, source_format: str, labels: Any, kinds: frozenset[str], output: str
) -> None:
    """Add what the source format could not express to the report (and its report.json)."""
    from converters._detect import source_gaps

    if source_format == "deepen":
        return
    gaps = source_gaps(source_format, labels, kinds)
    for gap in gaps:
        report.add("kept", f"source: {gap}")
    written = Path(output, "report.json")
    if gaps and "://" not in output and written.is_file():
        report.write_json(written)


@click.command()
@click.argument("dataset_id")
@_TO
@_OUTPUT
@click.option(
    "--snapshot",
    type=click.Path(path_type=Path),
    help="Snapshot folder to pull into (default: OUTPUT.snapshot beside a local output, else "
    "DATASET_ID.snapshot here); kept for offline reruns.",
)
@click.option("--label-set", default="default", show_default=True, help="Label set to export.")
@click.option("--stage", default=None, help="Pipeline stage to export (default: the final labels).")
@click.option(
    "--media/--no-media",
    default=None,
    help="Download the uploaded dataset zip (default: 3D datasets only).",
)
@click.option(
    "--sizes/--no-sizes",
    default=None,
    help="Read image sizes from the uploaded zip by range requests (default: image datasets).",
)
@_IMAGES
@_ON_UNSUPPORTED
@_ID_MAP
@_SETTINGS
@_OVERWRITE
@_JSON
def export(
    dataset_id: str,
    to: str,
    output: str,
    snapshot: Path | None,
    label_set: str,
    stage: str | None,
    media: bool | None,
    sizes: bool | None,
    images: Path | None,
    on_unsupported: str,
    id_map: Path | None,
    settings: tuple[str, ...],
    overwrite: bool,
    as_json: bool,
) -> None:
    """Pull DATASET_ID from Deepen and convert it to FORMAT in OUTPUT (pull + convert).

    Credentials come from DEEPEN_CLIENT_ID and DEEPEN_API_TOKEN.

    \b
    Example:
      deepen-export export r82dS6VVkok98ZWr1CTkU4NE --to kitti -o out/kitti
    """
    from converters._base import remote_destination
    from deepen_export._guard import check_output
    from deepen_export._progress import bytes_task, count_task
    from deepen_export.pipeline import pull, snapshot_path

    _format(to)  # fail on a bad format name before any download
    remote_destination(output)  # and on a destination nothing can write
    snap = snapshot_path(dataset_id, output, snapshot)
    # before the download: an -o over the snapshot or --images would replace an input
    check_output(output, [("--snapshot", snap), ("--images", images)], overwrite=overwrite)
    with (
        bytes_task(f"pulling {dataset_id}") as bar,
        count_task("reading image sizes") as sizes_bar,
    ):
        result = pull(
            dataset_id,
            snap,
            label_set=label_set,
            stage=stage,
            media=media,
            sizes=sizes,
            progress=bar,
            size_progress=sizes_bar,
        )
    if not as_json:
        click.echo(result.summary())
    pulled = {"dataset_id": dataset_id, "snapshot": str(result.path), "labels": result.labels}
    _run_convert(
        snap,
        to,
        output,
        None,
        images,
        on_unsupported,
        id_map,
        settings,
        as_json,
        pulled,
        overwrite=overwrite,
    )


@click.command()
def formats() -> None:
    """List the output formats and the label kinds each one holds.

    \b
    Example:
      deepen-export formats
    """
    import converters

    width = max(len(n) for n in converters.names())
    for f in converters.FORMATS.values():
        rw = "read/write" if f.readable else "write"
        click.echo(f"{f.name:<{width}}  {rw:<10}  {f.description}")
        click.echo(f"{'':<{width}}  {'':<10}  holds: {', '.join(sorted(f.kinds))}")


def register(group: click.Group) -> None:
    """Add ``convert``, ``export`` and ``formats`` to the command group."""
    group.add_command(convert)
    group.add_command(export)
    group.add_command(formats)
