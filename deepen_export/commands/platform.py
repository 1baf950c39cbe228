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
    """Poll with progress: one live line on a terminal, one line per change in a pipe."""
    import time

    live = sys.stderr.isatty()
    last: list[str] = []
    start = time.monotonic()

    def report(status: ProcessingStatus) -> None:
        line = status.describe()
        if live:
            # rewrite the one line in place: the state and how long the wait has run
            click.echo(f"\r\x1b[2K{line} · {time.monotonic() - start:.0f} s", nl=False, err=True)
        elif not last or last[-1] != line:
            last.append(line)
            _show_status(status)

    try:
        return client.wait_for_processing(
            dataset_id,
            until=until,  # type: ignore[arg-type]
            timeout=timeout,
            poll_initial=poll,
            label_set=label_set,
            on_progress=report,
        )
    finally:
        if live:
            click.echo("", err=True)


@contextmanager
def _zipped(path: Path, dataset_type: str | None, dataset_format: str | None) -> Iterator[Path]:
    """``path`` itself for a file; for a folder, a checked temporary zip of its files."""
    if not path.is_dir():
        yield path
        return
    import tempfile

    from deepen_export.api._folder import FolderError, zip_folder

    with tempfile.TemporaryDirectory(prefix="deepen-upload-") as tmp:
        target = Path(tmp) / f"{path.resolve().name or 'dataset'}.zip"
        try:
            with bytes_task(f"zipping {path.name}") as bar:
                plan = zip_folder(
                    path,
                    target,
                    dataset_type=dataset_type or "images",
                    dataset_format=dataset_format,
                    progress=bar,
                )
        except FolderError as exc:
            raise click.BadParameter(str(exc), param_hint="ZIP_OR_FOLDER") from None
        for rel, why in plan.skipped:
            click.echo(f"  left out {rel}: {why}", err=True)
        yield target


def _redacted(created: dict[str, Any]) -> dict[str, Any]:
    """The create-dataset answer without its upload URLs (each one grants write access)."""
    files = [
        {**f, "resumable_upload_url": "[redacted]"} if isinstance(f, dict) else f
        for f in created.get("files") or []
    ]
    return {**created, "files": files} if "files" in created else dict(created)


def _requirements(path: Path, hint: str) -> dict[str, Any]:
    """The checked profile object of a requirements file; bad usage (exit 2) naming file:line."""
    from deepen_export.api._requirements import RequirementsError, load_requirements

    try:
        return load_requirements(path)
    except RequirementsError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


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
    help="YAML or JSON labelling requirements: the short form (box: {categories: [car, bus], "
    "attributes: {occlusion: [none, heavy]}}) or a Deepen profile object; checked before upload.",
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
@click.option(
    "--show-upload-url",
    is_flag=True,
    help="Keep the resumable upload URL in the --json output (it grants write access to the "
    "upload; redacted by default).",
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
    show_upload_url: bool,
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
    profile = _requirements(requirements, "--requirements") if requirements else None
    chunk = _chunk_bytes(chunk_mib)
    with _uploading(zip_path, dataset_type, dataset_format) as (upload_path, client, bar):
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
        shown = created if show_upload_url else _redacted(created)
        _echo_json({**shown, "state": status.state if status else None})
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
def _uploading(
    source: Path, dataset_type: str | None, dataset_format: str | None
) -> Iterator[tuple[Path, Client, Any]]:
    """The zip to send (a folder zipped), a client and a progress bar, for an upload of ``source``.

    A failure names the user's zip or folder (not a temporary zip) in its resume command.
    """
    from deepen_export.api._upload import IncompleteUploadError

    with (
        _zipped(source, dataset_type, dataset_format) as upload_path,
        _client() as client,
        bytes_task(f"uploading {source.name}") as bar,
    ):
        try:
            yield upload_path, client, bar
        except IncompleteUploadError as exc:
            again = f" {source} --type {dataset_type} --resume" if source.is_dir() else None
            text = str(exc).replace(f" {exc.path} --resume", again or f" {source} --resume")
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
@click.option(
    "--type",
    "dataset_type",
    type=click.Choice(["3d", "images"]),
    help="For a folder: the --type it was created with (it is zipped and checked the same way).",
)
@click.option("--format", "dataset_format", help="For a folder: the --format it was created with.")
def datasets_upload(
    dataset_id: str,
    zip_path: Path,
    resume: bool,
    chunk_mib: float,
    dataset_type: str | None,
    dataset_format: str | None,
) -> None:
    """Resume the upload of a dataset whose `datasets create` stopped, then start processing.

    ZIP_OR_FOLDER must be the same zip (or unchanged folder) the dataset was created with;
    the upload session recorded on this machine at creation is used.

    \b
    Example:
      deepen-export datasets upload r82dS6VVkok98ZWr1CTkU4NE drive1.zip --resume
    """
    chunk = _chunk_bytes(chunk_mib)
    if zip_path.is_dir() and dataset_type is None:
        raise click.UsageError("a folder is zipped again: give the --type it was created with")
    with _uploading(zip_path, dataset_type, dataset_format) as (upload_path, client, bar):
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
    if status.state == "error":
        # a script checking `datasets status` must see the failure in the exit code
        click.echo(f"error: dataset {dataset_id} failed processing", err=True)
        raise click.exceptions.Exit(1)


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
    """Create a labelling profile from a YAML or JSON FILE (as datasets create --requirements).

    \b
    Example:
      deepen-export profiles create profile.json --name "cars and lanes"
    """
    profile = _requirements(profile_file, "FILE")
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
@click.option(
    "--sizes/--no-sizes",
    default=None,
    help="Record image sizes (images.json) read from the uploaded zip by HTTP range requests, "
    "without downloading the images (default: on for image datasets pulled without --media).",
)
@click.option("--concurrency", default=4, show_default=True, help="Datasets pulled at once.")
@_JSON
def pull(
    dataset_ids: tuple[str, ...],
    dest: Path,
    label_set: str,
    stage: str | None,
    media: bool | None,
    sizes: bool | None,
    concurrency: int,
    as_json: bool,
) -> None:
    """Save a dataset's labels, paint labels, metadata (and media) into a snapshot folder.

    A second pull into the same folder replaces it atomically and reports what changed.
    With several DATASET_IDs, each goes to OUTPUT/<dataset_id>/; each one's outcome is
    reported, and the command exits 1 if any failed (the others are still written).

    \b
    Example:
      deepen-export pull r82dS6VVkok98ZWr1CTkU4NE -o snapshots/drive1 --stage QA
      deepen-export pull ds1 ds2 ds3 -o snapshots/ --no-media
    """
    from deepen_export._progress import count_task

    if concurrency < 1:
        raise click.BadParameter("must be at least 1", param_hint="--concurrency")
    kwargs: dict[str, Any] = {"label_set": label_set, "stage": stage, "media": media}
    kwargs["sizes"] = sizes
    results: dict[str, Any]
    with _client(max_concurrency=concurrency) as client:
        if len(dataset_ids) == 1:
            with (
                bytes_task(f"pulling {dataset_ids[0]}") as bar,
                count_task("reading image sizes") as sizes_bar,
            ):
                results = {
                    dataset_ids[0]: client.pull(
                        dataset_ids[0], dest, progress=bar, size_progress=sizes_bar, **kwargs
                    )
                }
        else:
            results = client.pull_many(dataset_ids, dest, return_exceptions=True, **kwargs)
    failed = [d for d, r in results.items() if isinstance(r, BaseException)]
    if as_json:
        _echo_json({d: _pull_json(r) for d, r in results.items()})
    else:
        for d, r in results.items():
            if isinstance(r, BaseException):
                click.echo(f"{d}: FAILED: {r}", err=True)
            else:
                click.echo(f"{r.summary()} -> {r.path}")
        if failed and len(results) > 1:
            click.echo(
                f"error: {len(failed)} of {len(results)} pulls failed ({', '.join(failed)}); "
                "the others were written",
                err=True,
            )
    if failed:
        raise click.exceptions.Exit(1)


def _pull_json(r: Any) -> dict[str, Any]:
    if isinstance(r, BaseException):
        return {"ok": False, "error": str(r)}
    return {
        "ok": True,
        "path": str(r.path),
        "labels": r.labels,
        "added": r.added,
        "removed": r.removed,
        "modified": r.modified,
        "first_pull": r.changes is None,
        "paint": r.paint,
        "media": r.media,
        "image_sizes": r.image_sizes,
    }


def register(group: click.Group) -> None:
    """Add the platform commands to the ``deepen-export`` group."""
    group.add_command(datasets)
    group.add_command(files)
    group.add_command(profiles)
    group.add_command(pull)
