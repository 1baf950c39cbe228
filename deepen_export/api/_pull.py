"""Snapshots: everything an export needs, saved atomically, with a change report.

The folder layout (version 1: ``manifest.json``, ``dataset.json``, ``files.json``,
``labels.json``, ``profile.json``, ``images.json``, ``paint/``, ``media/dataset.zip``) is
declared once, in :mod:`deepen_export.snapshot`; :mod:`deepen_export.parse` reads it through the
same module.

A pull writes into ``.<name>.pull-<random>`` beside ``dest`` and swaps it in only when every
file is written, so an interrupted pull leaves the previous snapshot as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from deepen_export import snapshot as layout
from deepen_export._guard import clean_leftovers
from deepen_export._io import check_replaceable
from deepen_export.api._errors import not_json_message, server_text
from deepen_export.errors import DeepenExportError, NotFoundError, PayloadError

if TYPE_CHECKING:
    from deepen_export.api._client import Client

__all__ = [
    "SNAPSHOT_VERSION",
    "LabelChanges",
    "PullResult",
    "diff_labels",
    "label_index",
    "pull",
    "pull_many",
]

log = logging.getLogger("deepen_export.api")

SNAPSHOT_VERSION = layout.SNAPSHOT_VERSION
_PROFILE_KEYS = ("labelling_profile_id", "profile_id")


@dataclass(frozen=True)
class LabelChanges:
    """Labels added, removed and modified between two label bodies (keyed by label_id + file_id).

    A label is *modified* when its ``version`` or ``update_time_millis`` differs.
    """

    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        """Whether anything was added, removed or modified."""
        return bool(self.added or self.removed or self.modified)


@dataclass(frozen=True)
class PullResult:
    """What a pull wrote, and what changed since the snapshot it replaced.

    Attributes
    ----------
    path : Path
        The snapshot folder.
    labels : int
        Labels in the new ``labels.json``.
    changes : LabelChanges or None
        Against the previous snapshot; ``None`` on a first pull.
    files : dict
        Relative path → ``{"sha256", "bytes"}`` (the manifest's ``files``).

    Examples
    --------
    >>> PullResult(Path("s"), "ds1", 3, LabelChanges(added=1, unchanged=2)).summary()
    'ds1: 3 labels; since last pull: 1 added, 0 removed, 0 modified'
    """

    path: Path
    dataset_id: str
    labels: int
    changes: LabelChanges | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    paint: bool = False
    media: bool = False
    image_sizes: int = 0

    @property
    def added(self) -> int:
        """Labels added since the previous snapshot (all of them on a first pull)."""
        return self.changes.added if self.changes else self.labels

    @property
    def removed(self) -> int:
        """Labels gone since the previous snapshot."""
        return self.changes.removed if self.changes else 0

    @property
    def modified(self) -> int:
        """Labels whose version or update time changed."""
        return self.changes.modified if self.changes else 0

    def summary(self) -> str:
        """One line for a terminal."""
        line = f"{self.dataset_id}: {self.labels} labels"
        if self.image_sizes:
            line += f", {self.image_sizes} image sizes"
        if self.changes is None:
            return line + " (first pull)"
        c = self.changes
        return (
            f"{line}; since last pull: {c.added} added, {c.removed} removed, {c.modified} modified"
        )


def _iter_labels(body: Any) -> Iterable[tuple[str | None, Mapping[str, Any]]]:
    if not isinstance(body, Mapping):
        raise PayloadError("labels body is not a JSON object")
    if "labels" in body:
        labels = body["labels"]
    elif "all_labels" in body:
        labels = body["all_labels"]
    else:
        raise PayloadError("labels body has neither 'labels' nor 'all_labels'")
    if isinstance(labels, Mapping):
        for file_id, items in labels.items():
            for label in items or ():
                if isinstance(label, Mapping):
                    yield str(file_id), label
    elif isinstance(labels, list):
        for label in labels:
            if isinstance(label, Mapping):
                yield None, label
    else:
        raise PayloadError("'labels' is neither a list nor an object keyed by file_id")


def label_index(body: Any) -> dict[tuple[str, ...], tuple[Any, Any]]:
    """``(dataset_id, file_id, label_id, sensor_id, label_type)`` → ``(version, update_time_millis)``.

    Built from a raw labels body.

    Accepts the three shapes: ``{"labels": {file_id: [...]}}``, ``{"labels": [...]}`` and
    ``{"all_labels": [...]}``. Labels of several sensors may share a ``label_id`` in one file
    (a track seen by LiDAR and camera), so ``sensor_id`` and ``label_type`` join the key.

    Examples
    --------
    >>> label_index({"labels": {"0.pcd": [{"label_id": "car:1", "version": 2}]}})
    {('', '0.pcd', 'car:1', '', ''): (2, None)}
    """
    index: dict[tuple[str, ...], tuple[Any, Any]] = {}
    for key_file, label in _iter_labels(body):
        file_id = str(label.get("file_id", key_file) if key_file is None else key_file)
        key = (
            str(label.get("dataset_id", "")),
            file_id,
            str(label.get("label_id", "")),
            str(label.get("sensor_id", "")),
            str(label.get("label_type", "")),
        )
        index[key] = (label.get("version"), label.get("update_time_millis"))
    return index


def diff_labels(
    old: Mapping[Any, tuple[Any, Any]], new: Mapping[Any, tuple[Any, Any]]
) -> LabelChanges:
    """Compare two :func:`label_index` results.

    Examples
    --------
    >>> diff_labels({("a",): (1, 5), ("b",): (1, 5)}, {("a",): (2, 5), ("c",): (1, 1)})
    LabelChanges(added=1, removed=1, modified=1, unchanged=0)
    """
    added = sum(1 for k in new if k not in old)
    removed = sum(1 for k in old if k not in new)
    modified = sum(1 for k, v in new.items() if k in old and old[k] != v)
    unchanged = len(new) - added - modified
    return LabelChanges(added, removed, modified, unchanged)


def _load_json(path: Path) -> Any:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a core dependency
        with path.open("rb") as fh:
            return json.load(fh)
    return orjson.loads(path.read_bytes())


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, sort_keys=False)
        fh.write("\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _swap_in(tmp: Path, dest: Path) -> None:
    """Replace ``dest`` by ``tmp``; the old folder is removed only after the new one is in place."""
    old: Path | None = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _recover(dest: Path) -> None:
    """Put back a previous snapshot left aside by a pull killed between its two renames."""
    if dest.exists():
        return
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and (olds[-1] / layout.MANIFEST).is_file():
        os.replace(olds[-1], dest)
        log.warning("restored the previous snapshot %s from %s", dest, olds[-1].name)


# -- response checks and leftovers (before the swap; a bad answer never replaces a snapshot) --


def _bad(endpoint: str, dataset_id: str, what: str, secret: str | None = None) -> PayloadError:
    what = server_text(what, secret, limit=400)
    return PayloadError(
        f"{endpoint} answered {what}; the previous snapshot (if any) is kept. Retry the pull; "
        f"if it persists the server returned a broken body for {dataset_id}: report it to Deepen"
    )


def _checked_labels(
    path: Path, endpoint: str, dataset_id: str, secret: str | None = None
) -> dict[Any, tuple[Any, Any]]:
    """Parse and shape-check a downloaded labels body; its :func:`label_index` when sound.

    Every label must be a JSON object with a string ``label_id``, under a file id (the keyed
    shape) or carrying its ``file_id`` (the list shapes); anything else fails the pull before
    the swap, naming the endpoint and the first offending entry.
    """
    raw = path.read_bytes()
    try:
        body = _load_json(path)
    except ValueError:
        raise PayloadError(
            not_json_message(endpoint, raw[:512], len(raw), None, secret)
            + "; the previous snapshot (if any) is kept"
        ) from None
    if not isinstance(body, Mapping) or not ("labels" in body or "all_labels" in body):
        got = type(body).__name__ if not isinstance(body, Mapping) else "an object without them"
        raise _bad(endpoint, dataset_id, f"no 'labels' or 'all_labels' ({got})", secret)
    labels = body["labels"] if "labels" in body else body["all_labels"]
    if isinstance(labels, Mapping):
        entries = (
            (f"labels[{k!r}]", v) for k, v in labels.items() if not isinstance(v, list | None)
        )
        for where, value in entries:
            raise _bad(
                endpoint,
                dataset_id,
                f"{where} = {_short(value, secret)}, not a list of labels",
                secret,
            )
        items = (
            (f"labels[{k!r}][{i}]", x, True)
            for k, v in labels.items()
            for i, x in enumerate(v or ())
        )
    elif isinstance(labels, list):
        items = ((f"labels[{i}]", x, False) for i, x in enumerate(labels))
    else:
        raise _bad(
            endpoint,
            dataset_id,
            f"'labels' = {_short(labels, secret)}, not a list or an object",
            secret,
        )
    for where, label, keyed in items:
        if not isinstance(label, Mapping):
            raise _bad(
                endpoint,
                dataset_id,
                f"{where} = {_short(label, secret)}, not a label object",
                secret,
            )
        if not isinstance(label.get("label_id"), str):
            raise _bad(endpoint, dataset_id, f"{where} without a string 'label_id'", secret)
        if not keyed and not isinstance(label.get("file_id"), str):
            raise _bad(endpoint, dataset_id, f"{where} without a string 'file_id'", secret)
    return label_index(body)


def _short(value: Any, secret: str | None = None) -> str:
    # redacted before it is cut (server_text), like every server text in a message
    return server_text(json.dumps(value, ensure_ascii=False, default=str), secret, limit=60)


def _check_files(body: Mapping[str, Any], endpoint: str, secret: str | None = None) -> None:
    files = body.get("files")
    if files is not None and not (
        isinstance(files, list) and all(isinstance(f, Mapping) for f in files)
    ):
        raise PayloadError(
            f"{endpoint} answered 'files' = {_short(files, secret)}, not a list of file objects; the "
            "previous snapshot (if any) is kept; retry the pull"
        )


def _check_zip(path: Path, endpoint: str, secret: str | None = None) -> None:
    """A downloaded dataset zip must be a zip (not an error or login page served as 200)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        with path.open("rb") as fh:
            head = fh.read(512)
        raise PayloadError(
            not_json_message(endpoint, head, path.stat().st_size, None, secret, expected="a zip")
            + "; the previous snapshot (if any) is kept"
        )


def _warn_loss(
    dataset_id: str,
    dest: Path,
    previous: Mapping[Any, Any] | None,
    new: Mapping[Any, Any],
) -> None:
    """Say so when the new snapshot holds fewer of the previous snapshot's labels."""
    if not previous:
        return
    lost = sum(1 for k in previous if k not in new)
    if lost:
        log.warning(
            "%s: this pull drops %d of the %d labels in the previous snapshot %s (deleted or "
            "moved on the platform%s); pull into another folder to keep the old one",
            dataset_id,
            lost,
            len(previous),
            dest,
            ", or the server answered an empty body" if not new else "",
        )


def pull(
    client: Client,
    dataset_id: str,
    dest: str | os.PathLike[str],
    *,
    label_set: str = "default",
    stage: str | None = None,
    media: bool | None = None,
    paint: bool | None = None,
    sizes: bool | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    size_progress: Callable[[int, int | None], None] | None = None,
) -> PullResult:
    """Fetch a dataset into the snapshot folder ``dest``, atomically, and report changes.

    Parameters
    ----------
    client : Client
    dataset_id : str
    dest : path-like
        The snapshot folder; replaced as a whole when the pull succeeds.
    label_set : str
        ``labelSetId`` (``default``).
    stage : str, optional
        ``stageId`` (e.g. ``QA``); no stage filter when omitted (the query still has final=true).
    media : bool, optional
        Download the uploaded dataset zip; default True for 3D datasets (calibration lives
        there), False otherwise.
    paint : bool, optional
        Fetch 3D point paint labels; default True for 3D datasets. A 404 means none.
    sizes : bool, optional
        Record each image's width and height in ``images.json``, read from the uploaded zip by
        HTTP range requests (its directory and each image's header, not the images); default
        True for image datasets pulled without ``media`` whose files list lacks sizes.
    size_progress : callable, optional
        ``size_progress(images_done, images_total)`` while the sizes are read.
    progress : callable, optional
        ``progress(bytes_done, total_or_None)`` while the labels body and the media zip
        download (restarting from 0 for each).

    Returns
    -------
    PullResult

    Examples
    --------
    >>> with Client() as client:  # doctest: +SKIP
    ...     result = pull(client, "DATASET_ID", "snapshots/DATASET_ID", stage="QA")
    >>> result.summary()  # doctest: +SKIP
    'DATASET_ID: 1520 labels; since last pull: 3 added, 0 removed, 12 modified'
    """
    dest = Path(dest).resolve()
    previous = _prepare_dest(dest)
    # The pid in the name lets the next pull tell a killed run's folder from a running one's.
    tmp = dest.with_name(f".{dest.name}.pull-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        dataset, files_body = _fetch_dataset(client, dataset_id, tmp)
        dataset_type = str(dataset.get("dataset_type") or "")
        is_3d = dataset_type.lower() == "3d"
        query, new_index = _fetch_labels(client, dataset_id, tmp, label_set, stage, progress)
        _fetch_profile(client, dataset_id, dataset, tmp)
        got_paint = bool(paint if paint is not None else is_3d) and _fetch_paint(
            client, dataset_id, tmp, label_set, stage
        )
        want_media = media if media is not None else is_3d
        got_sizes = _pull_image_sizes(
            client, dataset_id, tmp, files_body, want_media, sizes, dataset_type, size_progress
        )
        got_media = bool(want_media) and _fetch_media(client, dataset_id, tmp, progress)
        hashes = _write_manifest(tmp, dataset_id, label_set, stage, query, dataset_type)
        _warn_loss(dataset_id, dest, previous, new_index)
        _swap_in(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    changes = diff_labels(previous, new_index) if previous is not None else None
    return PullResult(
        dest, dataset_id, len(new_index), changes, hashes, got_paint, got_media, got_sizes
    )


# -- the steps of a pull, in the order it takes them ------------------------------------------


def _prepare_dest(dest: Path) -> dict[Any, tuple[Any, Any]] | None:
    """Make ``dest`` ready to be replaced; the label index of the snapshot already there."""
    if dest.exists() and not dest.is_dir():
        raise DeepenExportError(f"{dest} exists and is not a snapshot folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover(dest)
    check_replaceable(dest, "snapshot")
    previous: dict[Any, tuple[Any, Any]] | None = None
    if (dest / layout.LABELS).is_file():
        try:
            previous = label_index(_load_json(dest / layout.LABELS))
        except (ValueError, PayloadError) as exc:
            log.warning("previous snapshot's labels.json unreadable (%s); no change report", exc)
    clean_leftovers(dest)
    return previous


def _ds_path(dataset_id: str) -> str:
    return f"datasets/{quote(dataset_id, safe=':')}"


def _fetch_dataset(
    client: Client, dataset_id: str, tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dataset resource and its files list, both written to ``tmp``."""
    dataset = client.get_dataset(dataset_id)
    _write_json(tmp / layout.DATASET, dataset)
    files_body = client._json_object("GET", f"{_ds_path(dataset_id)}/files")
    _check_files(files_body, f"GET {_ds_path(dataset_id)}/files", client._token)
    _write_json(tmp / layout.FILES, files_body)
    return dataset, files_body


def _fetch_labels(
    client: Client,
    dataset_id: str,
    tmp: Path,
    label_set: str,
    stage: str | None,
    progress: Callable[[int, int | None], None] | None,
) -> tuple[dict[str, Any], dict[tuple[str, ...], tuple[Any, Any]]]:
    """Download the final labels to ``tmp``; the query sent and the labels' index."""
    query = client.label_params(
        labels_with_file_ids_order=True, final=True, label_set=label_set, stage=stage
    )
    client.download_labels(
        dataset_id,
        tmp / layout.LABELS,
        labels_with_file_ids_order=True,
        final=True,
        label_set=label_set,
        stage=stage,
        progress=progress,
    )
    new_index = _checked_labels(
        tmp / layout.LABELS, f"GET {_ds_path(dataset_id)}/labels", dataset_id, client._token
    )
    return query, new_index


def _fetch_profile(client: Client, dataset_id: str, dataset: Mapping[str, Any], tmp: Path) -> None:
    """The labelling profile the dataset names, when it names one that exists."""
    profile_id = next((dataset[k] for k in _PROFILE_KEYS if dataset.get(k)), None)
    if profile_id:
        try:
            _write_json(tmp / layout.PROFILE, client.get_profile(str(profile_id)))
        except NotFoundError:
            log.warning(
                "labelling profile %s named by %s not found; skipped", profile_id, dataset_id
            )


def _fetch_paint(
    client: Client, dataset_id: str, tmp: Path, label_set: str, stage: str | None
) -> bool:
    """The 3D paint labels and their metadata; False when the dataset has none (a 404)."""
    try:
        meta = client.download_paint_labels(
            dataset_id, tmp / layout.PAINT_SEMANTIC, label_set=label_set, stage=stage
        )
    except NotFoundError:
        log.info("%s has no 3D paint labels", dataset_id)
        return False
    _write_json(layout.paint_metadata(tmp / layout.PAINT_SEMANTIC), meta)
    return True


def _fetch_media(
    client: Client,
    dataset_id: str,
    tmp: Path,
    progress: Callable[[int, int | None], None] | None,
) -> bool:
    """The uploaded dataset zip, checked to be a zip."""
    client.download_uploaded_dataset(dataset_id, tmp / layout.MEDIA_ZIP, progress=progress)
    _check_zip(tmp / layout.MEDIA_ZIP, "the signed media link", client._token)
    return True


def _write_manifest(
    tmp: Path,
    dataset_id: str,
    label_set: str,
    stage: str | None,
    query: Mapping[str, Any],
    dataset_type: str,
) -> dict[str, dict[str, Any]]:
    """Write the manifest (what was asked, when, and every file's hash); the hashes."""
    from deepen_export import __version__

    hashes = {
        p.relative_to(tmp).as_posix(): {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    }
    manifest = {
        "snapshot_version": SNAPSHOT_VERSION,
        "dataset_id": dataset_id,
        "label_set": label_set,
        "stage": stage,
        "query": query,
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "tool_version": __version__,
        "dataset_type": dataset_type or None,
        "files": hashes,
    }
    _write_json(tmp / layout.MANIFEST, manifest)
    return hashes


def _pull_image_sizes(
    client: Client,
    dataset_id: str,
    tmp: Path,
    files_body: Mapping[str, Any],
    media: bool,
    sizes: bool | None,
    dataset_type: str,
    progress: Callable[[int, int | None], None] | None,
) -> int:
    """Write ``images.json`` (sizes by range requests) when wanted; the number of sizes read."""
    from deepen_export._media import sizes_from_files, write_images_json

    files = files_body.get("files") if isinstance(files_body, Mapping) else None
    listed = files if isinstance(files, list) else []
    if sizes is None:
        known = sizes_from_files(listed)
        sizes = dataset_type.lower() in ("images", "image") and not media
        sizes = sizes and not (listed and len(known) == len(listed))
    if not sizes:
        return 0
    try:
        found = client.uploaded_image_sizes(dataset_id, progress=progress)
    except (DeepenExportError, OSError) as exc:
        # the labels are still worth saving; convert names the fix when it needs the sizes
        log.warning("image sizes of %s not read from the uploaded zip: %s", dataset_id, exc)
        return 0
    write_images_json(tmp / layout.IMAGE_SIZES, found, "uploaded zip, by HTTP range requests")
    return len(found)


def pull_many(
    client: Client,
    dataset_ids: Iterable[str],
    dest_root: str | os.PathLike[str],
    *,
    return_exceptions: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Pull several datasets into ``dest_root/<dataset_id>/``, ``client.max_concurrency`` at a time.

    Parameters
    ----------
    return_exceptions : bool
        False (default): the first failure is raised once the running pulls finish. True: a
        failed dataset maps to its exception instead of a :class:`PullResult`.
    **kwargs
        Passed to :func:`pull`.

    Returns
    -------
    dict
        dataset id → :class:`PullResult` (or exception).

    Examples
    --------
    >>> results = pull_many(client, ["ds1", "ds2"], "snapshots")  # doctest: +SKIP
    """
    root = Path(dest_root)
    ids = list(dict.fromkeys(dataset_ids))
    for dataset_id in ids:
        if not dataset_id or "/" in dataset_id or "\\" in dataset_id or dataset_id in (".", ".."):
            raise ValueError(f"dataset id {dataset_id!r} cannot name a snapshot folder")
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with ThreadPoolExecutor(client.max_concurrency, thread_name_prefix="deepen-pull") as pool:
        futures: dict[str, Future[PullResult]] = {
            d: pool.submit(pull, client, d, root / d.replace(":", "_"), **kwargs) for d in ids
        }
        for dataset_id, future in futures.items():
            try:
                results[dataset_id] = future.result()
            except Exception as exc:
                if not return_exceptions:
                    for other in futures.values():
                        other.cancel()
                    raise
                results[dataset_id] = exc
    return results
