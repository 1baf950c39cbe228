"""Commands that talk to the Deepen platform: ``datasets``, ``files``, ``profiles``, ``pull``.

Credentials come from ``DEEPEN_CLIENT_ID``, ``DEEPEN_API_TOKEN`` and (for another host)
``DEEPEN_API_URL``. List commands print a table on a terminal and JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from deepen_export._progress import bytes_task

if TYPE_CHECKING:
    from deepen_export.api import Client, ProcessingStatus

__all__ = ["register"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


def _client(**kwargs: Any) -> Client:
    from deepen_export.api import Client

    return Client(**kwargs)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], as_json_rows: Any) -> None:
    """A rich table on a terminal; tab-separated lines in a pipe."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        return
    click.echo("\t".join(headers))
    for row in rows:
        click.echo("\t".join("" if v is None else str(v) for v in row))


def _show_status(status: ProcessingStatus) -> None:
    click.echo(status.describe(), err=True)


def _wait(
    client: Client,
    dataset_id: str,
    until: str,
    timeout: float,
    poll: float,
    label_set: str = "default",
) -> ProcessingStatus:
    last: list[str] = []

    def report(status: ProcessingStatus) -> None:
        line = status.describe()
        if not last or last[-1] != line:
            last.append(line)
            _show_status(status)

    return client.wait_for_processing(
        dataset_id,
        until=until,  # type: ignore[arg-type]
        timeout=timeout,
        poll_initial=poll,
        label_set=label_set,
        on_progress=report,
    )


@contextmanager
def _zipped(path: Path) -> Iterator[Path]:
    """``path`` itself for a file; for a folder, a temporary zip of its files (streamed to disk)."""
    if not path.is_dir():
        yield path
        return
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="deepen-upload-") as tmp:
        target = Path(tmp) / f"{path.name or 'dataset'}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                zf.write(item, item.relative_to(path).as_posix())
        yield target


# -- datasets ---------------------------------------------------------------------------------


@click.group("datasets")
def datasets() -> None:
    """List, create, watch and delete datasets on Deepen.

    \b
    Example:
      deepen-export datasets list
      deepen-export datasets create drive1.zip --name drive-1 --type 3d --format json --wait
    """


@datasets.command("list")
@click.option("--ids-only", is_flag=True, help="Use the lighter datasets_ids endpoint (id + name).")
@_JSON
def datasets_list(ids_only: bool, as_json: bool) -> None:
    """List the client's datasets.

    \b
    Example:
      deepen-export datasets list --json | jq 'keys'
    """
    with _client() as client:
        if ids_only:
            items = client.list_dataset_ids()
            if as_json:
                _echo_json(items)
                return
            _table(
                [(d.get("dataset_id"), d.get("dataset_name")) for d in items], ("id", "name"), items
            )
            return
        datasets_ = client.list_datasets()
    if as_json:
        _echo_json(datasets_)
        return
    from deepen_export.api import ProcessingStatus

    rows = []
    for dataset_id, ds in datasets_.items():
        ds = ds if isinstance(ds, dict) else {}
        rows.append(
            (
                dataset_id,
                ds.get("dataset_name"),
                ds.get("dataset_type"),
                ds.get("labelling_mode"),
                ProcessingStatus.from_dataset(ds).state,
            )
        )
    _table(rows, ("id", "name", "type", "mode", "state"), datasets_)


@datasets.command("create")
@click.argument("zip_path", metavar="ZIP_OR_FOLDER", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Dataset name.")
@click.option("--type", "dataset_type", required=True, type=click.Choice(["3d", "images", "video"]))
@click.option(
    "--format", "dataset_format", type=click.Choice(["json", "default"]), help="3D upload format."
)
@click.option(
    "--mode",
    "labelling_mode",
    type=click.Choice(["frame_by_frame", "label_by_label"]),
    help="frame_by_frame (individual frames, default) or label_by_label (sequence).",
)
@click.option(
    "--requirements",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file with a labelling profile object (features: label types, categories, attributes).",
)
@click.option("--profile", "profile_id", help="Id of an existing labelling profile.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--chunk-mib",
    default=8.0,
    show_default=True,
    help="Upload chunk size in MiB (multiple of 0.25).",
)
@click.option("--wait", is_flag=True, help="Wait until processing finishes, showing progress.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to --wait.")
@click.option("--poll", default=2.0, show_default=True, help="First wait between polls (s).")
@click.option(
    "--user-scope",
    "user_scopes",
    multiple=True,
    metavar="EMAIL=SCOPE[,SCOPE]",
    help="Give a user scopes on the new dataset (repeatable; user_scopes).",
)
@_JSON
def datasets_create(
    zip_path: Path,
    name: str,
    dataset_type: str,
    dataset_format: str | None,
    labelling_mode: str | None,
    requirements: Path | None,
    profile_id: str | None,
    tags: tuple[str, ...],
    chunk_mib: float,
    wait: bool,
    timeout: float,
    poll: float,
    as_json: bool,
    user_scopes: tuple[str, ...] = (),
) -> None:
    """Create a dataset, upload ZIP_OR_FOLDER (resumable), and start processing.

    A folder is first zipped to a temporary file (its files at the zip root, sorted), which
    is removed afterwards.

    \b
    Example:
      deepen-export datasets create drive1.zip --name drive-1 --type 3d --format json \\
          --mode label_by_label --requirements profile.json --wait
    """
    if requirements and profile_id:
        raise click.UsageError("give --requirements or --profile, not both")
    if dataset_format and dataset_type != "3d":
        raise click.UsageError("--format applies to --type 3d only")
    profile = None
    if requirements:
        try:
            profile = json.loads(requirements.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise click.BadParameter(
                f"{requirements} is not JSON: {exc}", param_hint="--requirements"
            ) from exc
        if not isinstance(profile, dict):
            raise click.BadParameter("must hold a JSON object", param_hint="--requirements")
    chunk = _chunk_bytes(chunk_mib)
    with _uploading(zip_path) as (upload_path, client, bar):
        created = client.create_and_upload(
            name,
            upload_path,
            dataset_type=dataset_type,
            dataset_format=dataset_format,
            labelling_mode=labelling_mode,
            labelling_profile_id=profile_id,
            labelling_profile=profile,
            tags=tags or None,
            user_scopes=_scopes(user_scopes) or None,
            chunk_size=chunk,
            progress=bar,
        )
    dataset_id = created["dataset_id"]
    click.echo(f"created {dataset_id}; uploaded {zip_path.name}; processing started", err=True)
    status = None
    if wait:
        with _client() as client:
            status = _wait(client, dataset_id, "processed", timeout, poll)
    if as_json:
        _echo_json({**created, "state": status.state if status else None})
    else:
        click.echo(dataset_id)


def _scopes(values: tuple[str, ...]) -> dict[str, list[str]]:
    from deepen_export.commands.push import parse_scopes

    return parse_scopes(values, "--user-scope")


def _chunk_bytes(chunk_mib: float) -> int:
    from deepen_export.api import CHUNK_QUANTUM

    chunk = int(chunk_mib * 1024 * 1024)
    if chunk <= 0 or chunk % CHUNK_QUANTUM:
        raise click.BadParameter("must be a positive multiple of 0.25", param_hint="--chunk-mib")
    return chunk


@contextmanager
def _uploading(source: Path) -> Iterator[tuple[Path, Client, Any]]:
    """The zip to send (a folder zipped), a client and a progress bar, for an upload of ``source``.

    A failure names the user's zip or folder (not a temporary zip) in its resume command.
    """
    from deepen_export.api._upload import IncompleteUploadError

    with (
        _zipped(source) as upload_path,
        _client() as client,
        bytes_task(f"uploading {source.name}") as bar,
    ):
        try:
            yield upload_path, client, bar
        except IncompleteUploadError as exc:
            text = str(exc).replace(f" {exc.path} --resume", f" {source} --resume")
            raise IncompleteUploadError(text, dataset_id=exc.dataset_id, path=source) from exc


@datasets.command("upload")
@click.argument("dataset_id")
@click.argument("zip_path", metavar="ZIP_OR_FOLDER", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--resume",
    is_flag=True,
    required=True,
    help="Continue the upload from the bytes the storage server already holds.",
)
@click.option(
    "--chunk-mib", default=8.0, show_default=True, help="MiB per request (multiple of 0.25)."
)
def datasets_upload(dataset_id: str, zip_path: Path, resume: bool, chunk_mib: float) -> None:
    """Resume the upload of a dataset whose `datasets create` stopped, then start processing.

    ZIP_OR_FOLDER must be the same zip (or unchanged folder) the dataset was created with;
    the upload session recorded on this machine at creation is used.

    \b
    Example:
      deepen-export datasets upload r82dS6VVkok98ZWr1CTkU4NE drive1.zip --resume
    """
    chunk = _chunk_bytes(chunk_mib)
    with _uploading(zip_path) as (upload_path, client, bar):
        client.resume_upload(dataset_id, upload_path, chunk_size=chunk, progress=bar)
    click.echo(f"uploaded {zip_path.name} to {dataset_id}; processing started", err=True)
    click.echo(dataset_id)


@datasets.command("status")
@click.argument("dataset_id")
@click.option("--wait", is_flag=True, help="Poll until done or failed, showing the stage counts.")
@click.option(
    "--until",
    type=click.Choice(["processed", "labelled"]),
    default="processed",
    show_default=True,
    help="What --wait waits for: the upload processed, or every file through the last stage.",
)
@click.option("--label-set", default="default", show_default=True)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to --wait.")
@click.option("--poll", default=2.0, show_default=True, help="First wait between polls (s).")
@_JSON
def datasets_status(
    dataset_id: str,
    wait: bool,
    until: str,
    label_set: str,
    timeout: float,
    poll: float,
    as_json: bool,
) -> None:
    """Show a dataset's processing status (both status forms are understood).

    \b
    Example:
      deepen-export datasets status r82dS6VVkok98ZWr1CTkU4NE --wait --until labelled
    """
    with _client() as client:
        if wait:
            status = _wait(client, dataset_id, until, timeout, poll, label_set)
        else:
            status = client.dataset_status(dataset_id, label_set=label_set)
    if as_json:
        _echo_json(
            {
                "dataset_id": dataset_id,
                "state": status.state,
                "stage": status.stage,
                "stage_status": status.stage_status,
                "counts": status.counts,
                "message": status.message,
            }
        )
    else:
        click.echo(status.describe())


@datasets.command("delete")
@click.argument("dataset_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def datasets_delete(dataset_id: str, yes: bool) -> None:
    """Delete a dataset (asks first unless --yes).

    \b
    Example:
      deepen-export datasets delete r82dS6VVkok98ZWr1CTkU4NE --yes
    """
    if not yes:
        click.confirm(f"delete dataset {dataset_id}?", abort=True, err=True)
    with _client() as client:
        client.delete_dataset(dataset_id)
    click.echo(f"deleted {dataset_id}", err=True)


# -- files ------------------------------------------------------------------------------------


@click.command("files")
@click.argument("dataset_id")
@click.argument("file_id", required=False)
@_JSON
def files(dataset_id: str, file_id: str | None, as_json: bool) -> None:
    """List a dataset's files, or show one file's status.

    \b
    Example:
      deepen-export files r82dS6VVkok98ZWr1CTkU4NE
      deepen-export files r82dS6VVkok98ZWr1CTkU4NE 0.pcd --json
    """
    with _client() as client:
        if file_id is not None:
            item = client.get_file(dataset_id, file_id)
            if as_json:
                _echo_json(item)
            else:
                _table(
                    [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in item.items()],
                    ("field", "value"),
                    item,
                )
            return
        items = client.list_files(dataset_id)
    if as_json:
        _echo_json({"files": items})
        return
    scalar = {k for f in items for k in f if not isinstance(f[k], dict | list)}
    keys = ["file_id", *sorted(scalar - {"file_id"})[:5]]
    rows = [[f.get(k) for k in keys] for f in items]
    _table(rows, keys, items)


# -- profiles ---------------------------------------------------------------------------------


@click.group("profiles")
def profiles() -> None:
    """List, show and create labelling profiles (label types, categories, attributes).

    \b
    Example:
      deepen-export profiles list
      deepen-export profiles create profile.json
    """


@profiles.command("list")
@_JSON
def profiles_list(as_json: bool) -> None:
    """List the client's labelling profiles.

    \b
    Example:
      deepen-export profiles list --json
    """
    with _client() as client:
        items = client.list_profiles()
    if as_json:
        _echo_json({"profiles": items})
        return
    rows = [
        (
            p.get("profile_id"),
            p.get("profile_name"),
            ", ".join(sorted((p.get("features") or {}).keys())),
        )
        for p in items
    ]
    _table(rows, ("id", "name", "label types"), items)


@profiles.command("show")
@click.argument("profile_id")
def profiles_show(profile_id: str) -> None:
    """Print one labelling profile as JSON.

    \b
    Example:
      deepen-export profiles show prof_1 > profile.json
    """
    with _client() as client:
        _echo_json(client.get_profile(profile_id))


@profiles.command("create")
@click.argument(
    "profile_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--name", help="profile_name (overrides the file's).")
def profiles_create(profile_file: Path, name: str | None) -> None:
    """Create a labelling profile from a JSON FILE; prints its id.

    \b
    Example:
      deepen-export profiles create profile.json --name "cars and lanes"
    """
    try:
        profile = json.loads(profile_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.BadParameter(f"{profile_file} is not JSON: {exc}", param_hint="FILE") from exc
    if not isinstance(profile, dict):
        raise click.BadParameter("must hold a JSON object", param_hint="FILE")
    if name:
        profile["profile_name"] = name
    if not profile.get("profile_name"):
        raise click.UsageError("the profile needs a profile_name (in the file or --name)")
    with _client() as client:
        click.echo(client.create_profile(profile))


# -- pull -------------------------------------------------------------------------------------


@click.command("pull")
@click.argument("dataset_ids", metavar="DATASET_ID...", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "dest",
    required=True,
    type=click.Path(path_type=Path),
    help="Snapshot folder (or root, with several ids).",
)
@click.option("--label-set", default="default", show_default=True, help="labelSetId.")
@click.option("--stage", help="stageId (e.g. QA); no stage filter when omitted.")
@click.option(
    "--media/--no-media",
    default=None,
    help="Download the uploaded dataset zip (default: on for 3D).",
)
@click.option("--concurrency", default=4, show_default=True, help="Datasets pulled at once.")
@_JSON
def pull(
    dataset_ids: tuple[str, ...],
    dest: Path,
    label_set: str,
    stage: str | None,
    media: bool | None,
    concurrency: int,
    as_json: bool,
) -> None:
    """Save a dataset's labels, paint labels, metadata (and media) into a snapshot folder.

    A second pull into the same folder replaces it atomically and reports what changed.
    With several DATASET_IDs, each goes to OUTPUT/<dataset_id>/.

    \b
    Example:
      deepen-export pull r82dS6VVkok98ZWr1CTkU4NE -o snapshots/drive1 --stage QA
      deepen-export pull ds1 ds2 ds3 -o snapshots/ --no-media
    """
    if concurrency < 1:
        raise click.BadParameter("must be at least 1", param_hint="--concurrency")
    kwargs: dict[str, Any] = {"label_set": label_set, "stage": stage, "media": media}
    with _client(max_concurrency=concurrency) as client:
        if len(dataset_ids) == 1:
            with bytes_task(f"pulling {dataset_ids[0]}") as bar:
                results = {
                    dataset_ids[0]: client.pull(dataset_ids[0], dest, progress=bar, **kwargs)
                }
        else:
            results = client.pull_many(dataset_ids, dest, **kwargs)
    if as_json:
        _echo_json(
            {
                d: {
                    "path": str(r.path),
                    "labels": r.labels,
                    "added": r.added,
                    "removed": r.removed,
                    "modified": r.modified,
                    "first_pull": r.changes is None,
                    "paint": r.paint,
                    "media": r.media,
                }
                for d, r in results.items()
            }
        )
        return
    for r in results.values():
        click.echo(f"{r.summary()} -> {r.path}")


def register(group: click.Group) -> None:
    """Add the platform commands to the ``deepen-export`` group."""
    group.add_command(datasets)
    group.add_command(files)
    group.add_command(profiles)
    group.add_command(pull)
