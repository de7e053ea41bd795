"""``bioner publish OUT --to URI``: a run's tables as Delta tables, locally or on S3.

``bioner export SOURCE --format pubtator|bioc|csv|parquet --to URI``: a run's (or a published
root's) entities as PubTator, BioC XML, or node and edge files for graph loaders.
"""

from __future__ import annotations

import json

import typer

from flows.commands._common import console, fail, writing
from infra import exports, s3
from infra import publish as p


def main(
    out: str = typer.Argument(
        ..., metavar="OUT", help="The run's output folder (bioner run --out)."
    ),
    to: str = typer.Option(
        ...,
        "--to",
        metavar="URI",
        help="Root of the published tables: a folder or s3://bucket/prefix.",
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Idempotency key; by default OUT/summary.json's run id."
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        metavar="URL",
        help="S3-compatible endpoint (MinIO ...); default BIONER_S3_ENDPOINT or AWS_ENDPOINT_URL.",
    ),
) -> None:
    """Publish documents, entities and the knowledge-graph tables as one release; a publish
    that changes nothing writes nothing."""
    if endpoint is not None:
        try:
            s3.configure(endpoint=endpoint)
        except ValueError as e:
            raise fail(str(e)) from None
    try:
        with writing(to, "bioner publish"):
            report = p.publish(out, to, run_id)
    except ImportError as e:
        raise fail(str(e)) from None
    except (OSError, ValueError) as e:  # PublishError/StorageError: one line naming the URI
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__, code=1) from None
    state = "nothing new to publish" if report.skipped else "published"
    console.print(
        f"run {report.run_id} {state}: {report.documents} documents, {report.deleted} deleted, "
        f"{report.rows} rows written in {report.seconds:.2f} s; readers see release "
        f"{report.release}",
        highlight=False,
        soft_wrap=True,
    )
    summary = {n: {"version": t.version, "skipped": t.skipped, "rows": t.rows}
               for n, t in report.tables.items()}  # fmt: skip
    typer.echo(json.dumps(
        {"run_id": report.run_id, "root": to, "release": report.release, "tables": summary}
    ))  # fmt: skip


def export_main(
    source: str = typer.Argument(
        ...,
        metavar="OUT",
        help="The run's output folder (bioner run --out), or a published root (bioner publish).",
    ),
    fmt: str = typer.Option(
        ..., "--format", metavar="FORMAT", help="pubtator, bioc, csv or parquet (graph files)."
    ),
    to: str = typer.Option(
        ..., "--to", metavar="URI", help="Folder to write to: a local folder or s3://bucket/prefix."
    ),
    include_rejected: bool = typer.Option(
        False,
        "--include-rejected",
        help="PubTator/BioC: keep entities the selector rejected (never in graph files).",
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        metavar="URL",
        help="S3-compatible endpoint (MinIO ...); default BIONER_S3_ENDPOINT or AWS_ENDPOINT_URL.",
    ),
) -> None:
    """Export current documents and entities as PubTator, BioC XML, or CSV/Parquet graph files."""
    if fmt not in exports.FORMATS:
        raise fail(f"unknown --format {fmt!r} (known: {', '.join(exports.FORMATS)})")
    if endpoint is not None:
        try:
            s3.configure(endpoint=endpoint)
        except ValueError as e:
            raise fail(str(e)) from None
    try:
        with writing(to, "bioner export"):
            report = exports.export(source, to, fmt, include_rejected=include_rejected)
    except ImportError as e:
        raise fail(str(e)) from None
    except (OSError, ValueError) as e:  # StorageError/PublishError: one line naming the URI
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__, code=1) from None
    console.print(
        f"exported {report.documents} documents, {report.annotations} "
        f"{'annotations' if fmt in exports.SUFFIXES else 'edges'} as {fmt} "
        f"in {len(report.files)} files in {report.seconds:.2f} s",
        highlight=False,
    )
    for reason, n in sorted(report.notes.items()):
        console.print(f"note: {n} x {reason}", highlight=False)
    typer.echo(json.dumps({"format": fmt, "to": to, "files": report.files, "notes": report.notes}))
