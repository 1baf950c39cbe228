"""``deepen-export push`` (labels into Deepen), ``tasks``, ``user-tasks``, ``mark-done`` and
``datasets scopes``: the write side of the labelling loop.

Credentials come from ``DEEPEN_CLIENT_ID``, ``DEEPEN_API_TOKEN`` and ``DEEPEN_API_URL``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"expected SRC=DST, got {v!r}", param_hint=option)
        src, dst = v.split("=", 1)
        if not src.strip() or not dst.strip():
            raise click.BadParameter(f"expected SRC=DST, got {v!r}", param_hint=option)
        out[src.strip()] = dst.strip()
    return out


@click.command("push")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("dataset_id")
@click.option("--from", "from_format", help="Source format (detected when unambiguous).")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the images (YOLO: their sizes turn normalised values into pixels).",
)
@click.option(
    "--gt",
    type=click.Path(exists=True, path_type=Path),
    help="COCO instances file listing the images and categories a results file refers to.",
)
@click.option("--min-score", type=float, help="COCO results: keep results scoring at least this.")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="SRC=DST",
    help="Rename a source category to the profile's (repeatable).",
)
@click.option(
    "--add-categories",
    is_flag=True,
    help="Push categories the profile lacks, where the profile allows new ones.",
)
@click.option("--sensor", help="Sensor id for labels whose file has several (e.g. camera_0).")
@click.option(
    "--camera",
    default="camera_0",
    show_default=True,
    help="Camera whose frame camera-frame cuboids (KITTI without calib) are in.",
)
@click.option(
    "--label-set",
    default="predictions",
    show_default=True,
    help="Label set to push into (not the ground truth's 'default' unless you say so).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be added/changed/removed; send nothing."
)
@click.option("--batch-size", default=500, show_default=True, help="Labels per POST.")
@click.option("--resume", is_flag=True, help="Continue a push that stopped at a failed batch.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file of a stopped push (default: .deepen-push.DATASET.LABELSET.json here).",
)
@click.option(
    "--snapshot",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A pulled snapshot of DATASET_ID (with --media) to take the calibration from instead of "
    "downloading the uploaded zip.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Allow changing labels that are already in the label set 'default' (the ground truth).",
)
@_JSON
def push(
    source: Path,
    dataset_id: str,
    from_format: str | None,
    images: Path | None,
    gt: Path | None,
    min_score: float | None,
    mapping: tuple[str, ...],
    add_categories: bool,
    sensor: str | None,
    camera: str,
    label_set: str,
    dry_run: bool,
    batch_size: int,
    resume: bool,
    state: Path | None,
    snapshot: Path | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Push labels from SOURCE (any readable format) into DATASET_ID as pre-labels.

    Labels are matched to the dataset's files (by path, then file name), its labelling
    profile's categories and its world frame, given deterministic ids (a second push of the
    same source changes nothing) and sent in batches; labels already there unchanged are not
    sent again.

    \b
    Examples:
      deepen-export push preds.json DATASET_ID --gt coco/annotations.json --min-score 0.5
      deepen-export push out/kitti DATASET_ID --map van=car --dry-run
      deepen-export push out/yolo DATASET_ID --images images/ --label-set predictions
    """
    from converters._detect import read_source
    from deepen_export._progress import display, status
    from deepen_export.api import Client
    from deepen_export.commands.convert import check_from
    from deepen_export.push import execute, fetch_target, plan_push

    from_format = check_from(from_format)
    cmap = _pairs(mapping, "--map")
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    with display():
        with status(f"reading {source}"):
            labels, fmt = read_source(
                source, from_format, images=images, gt=gt, min_score=min_score
            )
        needs_calibration = len(labels.cuboids) > 0 and labels.cuboids.frame_of_reference != "world"
        with Client() as client:
            with status(f"reading dataset {dataset_id}"):
                target = fetch_target(
                    client,
                    dataset_id,
                    label_set=label_set,
                    calibration=needs_calibration,
                    snapshot=snapshot,
                )
            plan = plan_push(
                labels, target, category_map=cmap, add_categories=add_categories,
                sensor=sensor, camera=camera,
            )  # fmt: skip
            if fmt != "deepen":
                from converters import deepen
                from converters._detect import source_gaps

                plan.notes += [f"source: {g}" for g in source_gaps(fmt, labels, deepen.KINDS)]
            if label_set == "default" and plan.changed and not overwrite and not dry_run:
                raise click.UsageError(
                    f"{len(plan.changed)} label(s) of the ground truth (label set 'default') "
                    "would change; pass --overwrite if that is meant, or push into another "
                    "--label-set"
                )
            result = None
            if not dry_run:
                result = execute(client, plan, batch_size=batch_size, state=state, resume=resume)
    _show(plan, result, fmt, dry_run=dry_run, as_json=as_json)


def _show(plan: Any, result: Any, fmt: str, *, dry_run: bool, as_json: bool) -> None:
    """Print the plan (and what was sent): JSON with ``--json``, lines otherwise."""
    if as_json:
        doc: dict[str, Any] = {**plan.to_dict(), "source_format": fmt, "dry_run": dry_run}
        doc["sent"] = result.sent if result else 0
        doc["batches"] = result.batches if result else 0
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    click.echo(plan.summary(dry_run=dry_run))
    if dry_run:
        rows = [
            ("would add", (r["label_id"], r["file_id"], r.get("sensor_id", ""))) for r in plan.added
        ]
        rows += [
            ("would change", (r["label_id"], r["file_id"], r.get("sensor_id", "")))
            for r in plan.changed
        ]
        rows += [("not in the source", (k[2], k[0], k[1])) for k in plan.removed]
        for what, (lid, fid, sid) in rows[:30]:
            click.echo(f"  {what}: {lid} on {fid} {sid}".rstrip())
        if len(rows) > 30:
            click.echo(f"  ... and {len(rows) - 30} more (--json lists them all)")
        click.echo("dry run: nothing was sent")
    elif result is not None:
        click.echo(result.summary())


@click.command("tasks")
@click.argument("dataset_id")
@_JSON
def tasks(dataset_id: str, as_json: bool) -> None:
    """List DATASET_ID's tasks (GET /datasets/{id}/tasks).

    \b
    Example:
      deepen-export tasks r82dS6VVkok98ZWr1CTkU4NE --json
    """
    from deepen_export.api import Client

    with Client() as client:
        items = client.list_tasks(dataset_id)
    _rows(items, as_json)


@click.command("user-tasks")
@click.argument("email")
@_JSON
def user_tasks(email: str, as_json: bool) -> None:
    """List the file and label tasks of the user EMAIL (GET /clients/{id}/user_tasks).

    \b
    Example:
      deepen-export user-tasks ann@example.com
    """
    from deepen_export.api import Client

    with Client() as client:
        found = client.user_tasks(email)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for key in ("file_tasks", "label_tasks"):
        click.echo(f"{key}: {len(found[key])}")
        _rows(found[key], False, indent="  ")


def _rows(items: list[dict[str, Any]], as_json: bool, indent: str = "") -> None:
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    keys = list(dict.fromkeys(k for it in items for k in it))
    if not keys:
        return
    click.echo(indent + "\t".join(keys))
    for it in items:
        click.echo(indent + "\t".join("" if it.get(k) is None else str(it.get(k)) for k in keys))


@click.command("mark-done")
@click.argument("dataset_id")
def mark_done(dataset_id: str) -> None:
    """Mark DATASET_ID's labelling done (POST /datasets/{id}/mark_labelling_done).

    \b
    Example:
      deepen-export mark-done r82dS6VVkok98ZWr1CTkU4NE
    """
    from deepen_export.api import Client

    with Client() as client:
        client.mark_labelling_done(dataset_id)
    click.echo(f"{dataset_id}: labelling marked done")


def parse_scopes(values: tuple[str, ...], option: str) -> dict[str, list[str]]:
    """``WHO=SCOPE[,SCOPE...]`` options as ``{who: [scopes]}``.

    Examples
    --------
    >>> parse_scopes(("ann@example.com=labeller,reviewer",), "--user")
    {'ann@example.com': ['labeller', 'reviewer']}
    """
    out: dict[str, list[str]] = {}
    for v in values:
        who, _, scopes = v.partition("=")
        items = [s.strip() for s in scopes.split(",") if s.strip()]
        if not who.strip() or not items:
            raise click.BadParameter(f"expected WHO=SCOPE[,SCOPE], got {v!r}", param_hint=option)
        out.setdefault(who.strip(), []).extend(items)
    return out


@click.command("scopes")
@click.argument("dataset_id")
@click.option("--user", "users", multiple=True, metavar="EMAIL=SCOPE[,SCOPE]", help="Repeatable.")
@click.option(
    "--group", "groups", multiple=True, metavar="GROUP_ID=SCOPE[,SCOPE]", help="Repeatable."
)
def datasets_scopes(dataset_id: str, users: tuple[str, ...], groups: tuple[str, ...]) -> None:
    """Give users or user groups scopes on DATASET_ID (POST /datasets/{id}/user_scopes).

    \b
    Example:
      deepen-export datasets scopes DATASET_ID --user ann@example.com=labeller
    """
    from deepen_export.api import Client

    if not users and not groups:
        raise click.UsageError("give --user or --group")
    with Client() as client:
        client.set_user_scopes(
            dataset_id,
            parse_scopes(users, "--user") or None,
            parse_scopes(groups, "--group") or None,
        )
    click.echo(f"{dataset_id}: scopes set for {len(users) + len(groups)} user(s)/group(s)")


def register(group: click.Group) -> None:
    """Add ``push``, ``tasks``, ``user-tasks``, ``mark-done`` and ``datasets scopes``."""
    group.add_command(push)
    group.add_command(tasks)
    group.add_command(user_tasks)
    group.add_command(mark_done)
    datasets = group.commands.get("datasets")
    if isinstance(datasets, click.Group):
        datasets.add_command(datasets_scopes)
