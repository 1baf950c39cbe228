"""``deepen-export convert``, ``export`` (pull + convert) and ``formats``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _parse_option(value: str) -> tuple[str, Any]:
    if "=" not in value:
        raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
    key, raw = value.split("=", 1)
    try:
        parsed: Any = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return key.strip().replace("-", "_"), parsed


_TO = click.option("--to", "to", required=True, help="Output format (see `deepen-export formats`).")
_OUTPUT = click.option(
    "-o",
    "--output",
    "output",
    required=True,
    help="Output folder (or a filesystem URI such as s3://bucket/prefix where the format supports it).",
)
_IMAGES = click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the images, for their sizes (and copies where a format wants them).",
)
_ON_UNSUPPORTED = click.option(
    "--on-unsupported",
    type=click.Choice(["raise", "warn", "drop"]),
    default="raise",
    show_default=True,
    help="What to do with label kinds the format cannot hold.",
)
_ID_MAP = click.option(
    "--id-map",
    type=click.Path(path_type=Path),
    help="JSON file pinning category/image/annotation ids across exports (read and updated).",
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
    "--frames",
    type=click.Path(exists=True, path_type=Path),
    help="The dataset's uploaded zip (json_data.zip) for calibration and points.",
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
def convert(
    source: Path,
    to: str,
    output: str,
    frames: Path | None,
    images: Path | None,
    copy_images: bool,
    on_unsupported: str,
    id_map: Path | None,
    settings: tuple[str, ...],
) -> None:
    """Convert a labels JSON file or a snapshot folder to FORMAT in OUTPUT.

    \b
    Examples:
      deepen-export convert labels.json --to coco -o out/coco --images images/
      deepen-export convert snapshots/ds1 --to kitti -o out/kitti -O camera=camera_0
      deepen-export convert snapshots/ds1 --to yolo -o out/yolo --copy-images -O split=train:0.8,val:0.2
    """
    if copy_images:
        settings = (*settings, "copy_images=true")
    _run_convert(source, to, output, frames, images, on_unsupported, id_map, settings)


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
) -> None:
    import converters
    from deepen_export import read_labels
    from deepen_export._progress import display, status

    fmt = _format(to)
    module = converters.get(fmt.name)
    params = inspect.signature(module.write).parameters
    options: dict[str, Any] = dict(_parse_option(s) for s in settings)
    for key, value in (
        ("on_unsupported", on_unsupported),
        ("images", images),
        ("id_map", id_map),
        ("media", frames),
    ):
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
            f"{fmt.name} has no option(s) {', '.join(unknown)}; it takes: "
            + ", ".join(p for p in params if p not in ("labels", "dest"))
        )
    with display():
        with status(f"reading {source}"):
            labels = read_labels(source, frames=frames, images=images)
        n_issues_in = len(labels.issues)
        with status(f"writing {fmt.name} ({len(labels):,} labels)"):
            report = module.write(labels, output, **options)
    click.echo(report.summary())
    if n_issues_in:
        click.echo(f"  {n_issues_in} input issue(s) while reading {source} (listed in report.json)")
    click.echo(f"wrote {output}")


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
@_IMAGES
@_ON_UNSUPPORTED
@_ID_MAP
@_SETTINGS
def export(
    dataset_id: str,
    to: str,
    output: str,
    snapshot: Path | None,
    label_set: str,
    stage: str | None,
    media: bool | None,
    images: Path | None,
    on_unsupported: str,
    id_map: Path | None,
    settings: tuple[str, ...],
) -> None:
    """Pull DATASET_ID from Deepen and convert it to FORMAT in OUTPUT (pull + convert).

    Credentials come from DEEPEN_CLIENT_ID and DEEPEN_API_TOKEN.

    \b
    Example:
      deepen-export export r82dS6VVkok98ZWr1CTkU4NE --to kitti -o out/kitti
    """
    from deepen_export._progress import bytes_task
    from deepen_export.api import Client

    _format(to)  # fail on a bad format name before any download
    if snapshot is not None:
        snap = snapshot
    elif "://" in output:
        snap = Path(f"{dataset_id}.snapshot")
    else:
        out = Path(output)
        snap = out.with_name(out.name + ".snapshot")
    with Client() as client, bytes_task(f"pulling {dataset_id}") as bar:
        result = client.pull(
            dataset_id, snap, label_set=label_set, stage=stage, media=media, progress=bar
        )
    click.echo(result.summary())
    _run_convert(snap, to, output, None, images, on_unsupported, id_map, settings)


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
