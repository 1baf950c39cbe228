"""Pull + convert, the one orchestration above both ``api`` and ``converters``.

``export`` (one dataset, any format), ``export-many`` and its Dask tasks all pull through
:func:`pull` into a snapshot folder (:func:`snapshot_path` says where) and read it back with
``read_labels``; :func:`export_many` runs one Dask task per dataset into one partitioned Parquet
dataset.

Each dataset is an independent task: pull it from Deepen into a temporary snapshot, read it and
write its ``dataset_id=<id>`` partitions with :func:`converters.parquet.write`
(``layout="hive"``). Tasks never share a partition, and each write is staged and then moved into
place, so tasks run in parallel on any number of machines, a failed attempt leaves nothing behind,
and Dask's ``retries`` simply run the task again.

Running on an existing cluster
------------------------------
Start a scheduler and workers the usual way (``dask scheduler`` and ``dask worker
tcp://host:8786`` on each machine, or dask-kubernetes / dask-jobqueue / Coiled), install
deepen-export on the workers, give them the credentials (``DEEPEN_CLIENT_ID`` and
``DEEPEN_API_TOKEN`` in the workers' environment: the token is then read on the worker and never
travels in the task graph) and write to a location every worker can reach (``s3://``, ``gs://``
or a shared file system)::

    deepen-export export-many ds1 ds2 ds3 -o s3://bucket/labels --scheduler tcp://host:8786

or from Python ``export_many(["ds1", "ds2"], "s3://bucket/labels", scheduler="tcp://host:8786")``.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Frames, LabelSet
>>> def task(dataset_id, dest, **options):   # instead of pulling from Deepen
...     from converters import parquet
...     labels = LabelSet(frames=Frames.from_columns(file_id=["a.png"], dataset_id=[dataset_id]))
...     return parquet.write(labels, dest, layout="hive").to_dict()
>>> result = export_many(["ds1", "ds2"], tempfile.mkdtemp(), task=task,
...                      cluster_options={"processes": False, "n_workers": 1})
>>> [(r.dataset_id, r.ok) for r in result]
[('ds1', True), ('ds2', True)]
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deepen_export.errors import DeepenExportError

__all__ = [
    "ExportManyResult",
    "ExportResult",
    "StreamedExport",
    "export_dataset",
    "export_many",
    "pull",
    "snapshot_path",
    "stream_parquet",
]


@dataclass(frozen=True)
class ExportResult:
    """Outcome of one dataset: its report (as a dict) or the error of its last attempt."""

    dataset_id: str
    ok: bool
    report: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExportManyResult:
    """Results of :func:`export_many`, in the order the dataset ids were given."""

    dest: str
    results: list[ExportResult] = field(default_factory=list)

    def __iter__(self) -> Iterator[ExportResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[ExportResult]:
        """The datasets whose every attempt failed."""
        return [r for r in self.results if not r.ok]

    def summary(self) -> str:
        """One line per dataset and a total."""
        lines = []
        for r in self.results:
            if r.ok and r.report is not None:
                n = r.report.get("written", {}).get("labels", 0)
                issues = len(r.report.get("issues", []))
                lines.append(f"  ok      {r.dataset_id}: {n} labels, {issues} report entries")
            else:
                lines.append(f"  FAILED  {r.dataset_id}: {r.error}")
        ok = len(self.results) - len(self.failed)
        lines.append(f"{ok} of {len(self.results)} datasets exported to {self.dest}")
        return "\n".join(lines)


def _default_client() -> Any:
    from deepen_export.api import Client

    return Client()


def snapshot_path(
    dataset_id: str, output: str, snapshot: str | os.PathLike[str] | None = None
) -> Path:
    """Where ``export`` pulls DATASET_ID before converting it into ``output``.

    ``snapshot`` when given; else ``OUTPUT.snapshot`` beside a local output (kept for offline
    reruns), or ``DATASET_ID.snapshot`` in the working folder for a remote one.

    Examples
    --------
    >>> snapshot_path("ds1", "out/kitti").as_posix()
    'out/kitti.snapshot'
    >>> snapshot_path("ds1", "s3://bucket/kitti").as_posix()
    'ds1.snapshot'
    """
    if snapshot is not None:
        return Path(snapshot)
    if "://" in output:
        return Path(f"{dataset_id}.snapshot")
    out = Path(output)
    return out.with_name(out.name + ".snapshot")


def pull(
    dataset_id: str,
    snapshot: str | os.PathLike[str],
    *,
    client_factory: Callable[[], Any] | None = None,
    **pull_options: Any,
) -> Any:
    """Pull one dataset into a snapshot folder with a client the factory opens and closes.

    Parameters
    ----------
    dataset_id : str
    snapshot : path
        Snapshot folder to write.
    client_factory : callable, optional
        Returns a context-managed ``deepen_export.api.Client``; default ``Client()`` with
        credentials from the environment.
    **pull_options
        Passed to ``Client.pull`` (``label_set``, ``stage``, ``media``, ``sizes``, progress).

    Returns
    -------
    PullResult
        What ``Client.pull`` returns (``path``, ``labels``, ``summary()``).

    Examples
    --------
    Needs credentials and network, so shown rather than run::

        pull("DATASET_ID", "snapshots/DATASET_ID", stage="QA")
    """
    factory = client_factory or _default_client
    with factory() as client:
        return client.pull(dataset_id, snapshot, **pull_options)


def export_dataset(
    dataset_id: str,
    dest: str,
    *,
    client_factory: Callable[[], Any] | None = None,
    label_set: str = "default",
    stage: str | None = None,
    filesystem: Any = None,
    **write_options: Any,
) -> dict[str, Any]:
    """The default task: pull one dataset into a temporary snapshot and write its partitions.

    The snapshot is written a batch at a time (:func:`stream_parquet`, ``layout="hive"``), or
    read whole when it cannot stream (a media zip, paint): the same partitions either way.

    Parameters
    ----------
    dataset_id : str
    dest : str
        Root of the partitioned Parquet dataset (local path or URI).
    client_factory : callable, optional
        Returns a context-managed ``deepen_export.api.Client``; default ``Client()`` with
        credentials from the worker's environment.
    label_set, stage : str
        Passed to ``Client.pull``.
    filesystem : optional
        Filesystem of ``dest`` (see :func:`converters.parquet.write`).
    **write_options
        More options of :func:`converters.parquet.write`, and ``batch_size`` (labels per
        batch, :func:`stream_parquet`).

    Returns
    -------
    dict
        The conversion :class:`~deepen_export.report.Report` as a dict.

    Examples
    --------
    Needs credentials and network, so shown rather than run::

        export_dataset("DATASET_ID", "s3://bucket/labels")
    """
    from deepen_export._progress import quiet

    # a worker may share the terminal with the command and with other workers: no bars here
    with quiet(), tempfile.TemporaryDirectory(prefix="deepen-export-") as tmp:
        snapshot = os.path.join(tmp, "snapshot")
        pull(dataset_id, snapshot, client_factory=client_factory, label_set=label_set, stage=stage)
        done = stream_parquet(
            snapshot,
            dest,
            layout="hive",
            dataset_id=dataset_id,
            filesystem=filesystem,
            **write_options,
        )
    return dict(done.report.to_dict())


@dataclass
class StreamedExport:
    """What :func:`stream_parquet` wrote: the report, the labels and input issues it read.

    ``whole`` says why the input was read whole instead of a batch at a time (a snapshot
    with a media zip or paint, see :func:`deepen_export.parse._snapshot.whole_read_reason`);
    None when it streamed.
    """

    report: Any
    labels: int = 0
    input_issues: int = 0
    whole: str | None = None

    def __len__(self) -> int:
        return self.labels


def stream_parquet(
    source: str | os.PathLike[str],
    dest: Any,
    *,
    batch_size: int = 100_000,
    **write_options: Any,
) -> StreamedExport:
    """Convert a Deepen labels JSON file or snapshot folder to Parquet a batch at a time.

    The CLI's default for ``convert ... --to parquet`` and ``export ... --to parquet``.
    ``iter_label_batches`` parses the file ``batch_size`` labels at a time in a background
    thread (the next batch is parsed while this one is written) and
    :func:`converters.parquet.write_stream` writes them as they come (``ordered=True``): memory
    is bounded by a few batches. The rows, frames (sequence order, ``frame_index``), metadata
    and report are those :func:`converters.parquet.write` writes for the whole file read at
    once; rows come in batch order. A file whose labels are not in sequence order (a file id
    sorting before those of earlier batches) is written again with ``spill=True``: the same
    bytes as the whole-file write, the rows held in temporary files until the end. When a
    later batch changes what the first one decided about attributes (typed ``attr_`` columns,
    JSON encodings), the file is written again with the whole file's decisions.

    A snapshot folder (``deepen-export pull``) streams its ``labels.json`` with what the
    snapshot adds (:class:`~deepen_export.parse._source.SnapshotBatches`: dataset id, profile
    category order, files list with the unlabelled files as frames, image sizes, 3D marking,
    ``meta``): the output is that of ``read_labels(folder)`` written whole. A snapshot with a
    media zip, 3D point paint or 2D painting, an ``images/`` folder without a files list, a
    folder of snapshots, or labels on files its files list does not name is read whole
    instead, automatically; ``whole`` in the result says why.

    Parameters
    ----------
    source : path
        A labels JSON file (a Deepen labels response) or a snapshot folder.
    dest : str
        Output folder or URI.
    batch_size : int
        Labels per batch.
    **write_options
        Options of :func:`converters.parquet.write_stream` (``layout="files"`` or ``"hive"``;
        a ``hive`` input out of sequence order, which ``files`` holds in temporary files, is
        read whole).

    Examples
    --------
    >>> import json, tempfile
    >>> src = Path(tempfile.mkdtemp(), "labels.json")
    >>> _ = src.write_text(json.dumps({"labels": [{"file_id": "a.png", "label_id": "car:1",
    ...     "label_category_id": "car", "label_type": "box", "box": [0, 0, 2, 2]}]}))
    >>> done = stream_parquet(src, tempfile.mkdtemp() + "/out")
    >>> done.labels, done.report.written["labels"], done.whole
    (1, 1, None)
    >>> stream_parquet(src.parent, tempfile.mkdtemp() + "/out").labels  # as a snapshot folder
    1
    """
    from deepen_export.parse import iter_label_batches
    from deepen_export.parse._source import NotStreamable, SnapshotBatches

    try:
        if not Path(source).is_dir():
            return _stream_batches(
                lambda: iter_label_batches(source, batch_size=batch_size), (), dest, write_options
            )
        snapshot = SnapshotBatches(source, batch_size=batch_size)
        return _stream_batches(lambda: iter(snapshot), snapshot.categories, dest, write_options)
    except NotStreamable as whole:
        return _write_whole(source, dest, whole.reason, write_options)


def _stream_batches(
    batches: Callable[[], Iterator[Any]],
    categories: Iterable[str],
    dest: Any,
    write_options: dict[str, Any],
) -> StreamedExport:
    """Write ``batches()`` with ``write_stream(ordered=True)``, again when it says so.

    ``hive`` cannot hold rows back (``spill``): labels out of sequence order raise
    :class:`~deepen_export.parse._source.NotStreamable` (the caller reads the input whole).
    """
    from converters import parquet
    from deepen_export.parse._source import NotStreamable

    def run(mode: str, decisions: Any) -> StreamedExport:
        done = StreamedExport(report=None)

        def counted() -> Iterator[Any]:
            for batch in batches():
                done.labels += len(batch)
                done.input_issues += len(batch.issues)
                yield batch

        ahead = _ahead(counted())
        try:
            done.report = parquet.write_stream(
                ahead,
                dest,
                spill=mode == "spill",
                ordered=mode == "ordered",
                categories=tuple(categories),
                _decisions=decisions,
                **write_options,
            )
        finally:
            ahead.close()  # stops the read-ahead thread now, also when the write failed
        return done

    mode, decisions = "ordered", None
    while True:  # at most three passes: out of order, then attribute decisions of a later batch
        try:
            return run(mode, decisions)
        except parquet.WriteAgain as again:
            if again.spill and write_options.get("layout", "files") != "files":
                raise NotStreamable(f"its labels are not in sequence order ({again})") from None
            mode = "spill" if again.spill or mode == "spill" else mode
            if again.decisions is not None:
                if decisions is not None:
                    raise  # the whole input's decisions were used: cannot differ (a bug)
                decisions = again.decisions


def _write_whole(
    source: str | os.PathLike[str], dest: Any, reason: str, write_options: dict[str, Any]
) -> StreamedExport:
    """The whole-file path for a snapshot that cannot stream: read it, then write it."""
    from converters import parquet
    from deepen_export import read_labels

    labels = read_labels(source)
    report = parquet.write(labels, dest, **write_options)
    return StreamedExport(report, len(labels), len(labels.issues), whole=reason)


_T = TypeVar("_T")


def _ahead(items: Iterable[_T]) -> Generator[_T, None, None]:
    """Iterate ``items`` in a background thread, one item ahead of the consumer.

    Parsing the next batch (pyarrow's reader and numpy release the GIL) then overlaps writing
    this one, on the other core. The producer stops when the consumer does.
    """
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for x in items:
                if not put((False, x)):
                    return
            put((True, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((True, exc))

    worker = threading.Thread(target=run, name="deepen-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            last, value = box.get()
            if last:
                if value is not None:
                    raise value
                return
            yield value
            del value  # hold one item here at a time
    finally:
        stop.set()
        worker.join()


def export_many(
    dataset_ids: Iterable[str],
    dest: str,
    *,
    scheduler: Any = None,
    client_factory: Callable[[], Any] | None = None,
    task: Callable[..., Mapping[str, Any]] | None = None,
    retries: int = 2,
    cluster_options: Mapping[str, Any] | None = None,
    progress: Callable[[ExportResult], None] | None = None,
    **task_options: Any,
) -> ExportManyResult:
    """Export datasets in parallel on a Dask cluster into one partitioned Parquet dataset.

    Parameters
    ----------
    dataset_ids : iterable of str
    dest : str
        Root of the dataset: ``dest/labels/dataset_id=…/label_type=…/part-0.parquet`` etc.
    scheduler : str or distributed.Client, optional
        Address of an existing scheduler (``tcp://host:8786``) or a connected client; default a
        ``LocalCluster`` on this machine for the duration of the call.
    client_factory : callable, optional
        Passed to the task (see :func:`export_dataset`); must be picklable for remote workers.
    task : callable, optional
        ``task(dataset_id, dest, **task_options) -> report dict``; default :func:`export_dataset`.
        Tests inject one that reads local snapshots.
    retries : int
        How many times Dask runs a failed task again before it is reported as failed.
    cluster_options : mapping, optional
        Keyword arguments of ``distributed.LocalCluster`` (``n_workers``, ``processes``, ...).
    progress : callable, optional
        Called with each :class:`ExportResult` as it completes.
    **task_options
        Passed to the task (``label_set``, ``stage``, ``filesystem``, write options).

    Returns
    -------
    ExportManyResult
        One result per dataset; failures are reported there, not raised.

    Examples
    --------
    With credentials in the workers' environment (the module docstring has a runnable example
    with a local task)::

        result = export_many(["ds1", "ds2"], "s3://bucket/labels", scheduler="tcp://host:8786")
        print(result.summary())
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as missing:
        raise DeepenExportError(
            "export-many needs Dask: pip install 'deepen-export[distributed]'"
        ) from missing

    ids = list(dict.fromkeys(dataset_ids))
    fn = task or export_dataset
    options = dict(task_options)
    if task is None and client_factory is not None:
        options["client_factory"] = client_factory
    cluster = None
    if scheduler is None:
        opts = {"dashboard_address": None, **(cluster_options or {})}
        cluster = LocalCluster(**opts)
        client = Client(cluster)
    elif isinstance(scheduler, Client):
        client = scheduler
    else:
        client = Client(scheduler)
    try:
        futures = {
            client.submit(
                fn, ds, dest, retries=retries, pure=False, key=f"export-{ds}-{os.urandom(4).hex()}",
                **options,
            ): ds
            for ds in ids
        }  # fmt: skip
        done: dict[str, ExportResult] = {}
        for fut in as_completed(futures):
            ds = futures[fut]
            if fut.status == "finished":
                res = ExportResult(ds, True, report=fut.result())
            else:
                exc = fut.exception()
                res = ExportResult(ds, False, error=f"{type(exc).__name__}: {exc}")
            done[ds] = res
            if progress is not None:
                progress(res)
        return ExportManyResult(dest, [done[ds] for ds in ids])
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
