"""``deepen-export export-many``: many datasets into one partitioned Parquet dataset, with Dask."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["register"]


@click.command("export-many")
@click.argument("dataset_ids", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    help="Root of the Parquet dataset: a folder or a URI (s3://bucket/labels, gs://...).",
)
@click.option(
    "--scheduler",
    help="Address of a running Dask scheduler (tcp://host:8786); default a local cluster.",
)
@click.option("--workers", type=int, help="Workers of the local cluster (default: one per core).")
@click.option(
    "--processes/--threads",
    default=True,
    show_default=True,
    help="Local cluster of worker processes (parallel conversion) or threads (one process).",
)
@click.option("--retries", type=int, default=2, show_default=True, help="Retries per dataset.")
@click.option("--label-set", default="default", show_default=True, help="Deepen label set.")
@click.option("--stage", help="Stage to export (e.g. QA); default the final labels.")
@click.option("--json", "as_json", is_flag=True, help="Print each dataset's outcome as JSON.")
def export_many_command(
    dataset_ids: tuple[str, ...],
    output: str,
    scheduler: str | None,
    workers: int | None,
    processes: bool,
    retries: int,
    label_set: str,
    stage: str | None,
    as_json: bool,
) -> None:
    """Pull DATASET_IDs from Deepen and write them, in parallel, as one Parquet dataset.

    Each dataset is one task (pull, convert, write its dataset_id=... partitions); a failed task
    is retried and, if it keeps failing, reported without touching what other tasks wrote.
    Credentials come from DEEPEN_CLIENT_ID / DEEPEN_API_TOKEN (on every worker).

    \b
    Examples:
      deepen-export export-many ds1 ds2 ds3 -o out/labels
      deepen-export export-many ds1 ds2 -o s3://bucket/labels --scheduler tcp://10.0.0.5:8786
    """
    from deepen_export.pipeline import ExportResult, export_many

    cluster: dict[str, Any] = {"processes": processes}
    if workers is not None:
        cluster["n_workers"] = workers

    def show(r: ExportResult) -> None:
        state = "ok" if r.ok else "FAILED"
        click.echo(f"{state}: {r.dataset_id}" + ("" if r.ok else f" ({r.error})"), err=True)

    result = export_many(
        list(dataset_ids),
        output,
        scheduler=scheduler,
        retries=retries,
        cluster_options=cluster,
        progress=show,
        label_set=label_set,
        stage=stage,
    )
    if as_json:
        doc = {
            "output": result.dest,
            "datasets": {
                r.dataset_id: {"ok": r.ok, "error": r.error, "report": r.report}
                for r in result.results
            },
        }
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        click.echo(result.summary())
    if result.failed:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    """Add ``export-many`` to the command group."""
    group.add_command(export_many_command)
