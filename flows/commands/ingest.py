"""``bioner ingest INPUT... --out DIR``: corpus files to reconciled, sharded Parquet tables.

Inputs are files or folders (walked in sorted order); the format is read from the content.
Exit status: 0 when every input was read completely (known ones skipped), 1 when some input was
broken or unreadable (its valid records are kept; one ``error: FILE: ...`` line each), 2 for
usage errors (a missing input, no input files, another ``--shards`` than the folder's).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bioner.segment import DEFAULT_MAX_CHARS
from flows.commands._common import (
    check_output,
    console,
    error,
    fail,
    inputs_argument,
    max_chars_option,
    out_option,
    workers_option,
    writing,
)
from flows.commands._prefect import (
    prefect_defaults,
    progress_bars,
    quiet_libraries,
    quiet_prefect_logs,
    stoppable,
)
from infra.ingest_store import (
    ShardsChanged,
    check_config,
    error_lines,
    exit_status,
    expand_inputs,
)


def main(
    inputs: list[str] = inputs_argument(),
    out: str = out_option("Folder of the corpus tables: a local folder or s3://bucket/prefix."),
    shards: int | None = typer.Option(
        None,
        "--shards",
        min=1,
        max=65_536,
        help="Number of shards, fixed by the first run into --out (default 16).",
    ),
    max_chars: int = max_chars_option(DEFAULT_MAX_CHARS),
    workers: int = workers_option(),
    as_json: bool = typer.Option(
        False, "--json", help="Print the run manifest (reconciliation included) as JSON."
    ),
) -> None:
    """Ingest corpus files: parse, reconcile versions and deletions, shard, segment."""
    quiet_libraries()
    found, missing = expand_inputs(inputs)
    if missing:
        raise fail(f"{missing[0]}: no such file")
    if not found:
        raise fail(f"no input files in {', '.join(inputs)}")
    check_output(out)
    try:
        check_config(out, shards)
    except ShardsChanged as e:
        raise fail(str(e)) from None

    prefect_defaults()
    with (
        stoppable(),
        writing(out, "bioner ingest"),
        quiet_prefect_logs(),
        progress_bars() as listener,
    ):
        # Imported here: Prefect reads its settings at import, after prefect_defaults.
        from flows.ingest import ingest_corpus
        from tasks.progress import listening

        with listening(listener):
            summary = ingest_corpus(
                inputs=inputs,
                out=out,
                n_shards=shards,
                max_chars=max_chars,
                workers=workers,
            )
    for note in summary["notes"]:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    for line in error_lines(summary):
        error(line)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    raise typer.Exit(exit_status(summary))


_COUNTS = {
    "records_read": "read",
    "documents": "docs",
    "tombstones": "tomb.",
    "quarantined": "quar.",
    "duplicates_collapsed": "dups",
    "superseded": "super.",
    "deleted": "deleted",
}
_LEGEND = (
    "read = docs + tomb. (deletions) + quar. (quarantined); dups: documents replaced by a later "
    "record of the same id in the same file; super.: records replaced by a newer version; "
    "deleted: current documents removed by the file's deletions"
)
_ALREADY = "already ingested"


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """The reconciliation on stdout: a row per input read, the skipped ones, the current view."""
    out = console or Console()
    table = Table(
        title=f"bioner ingest → {summary['out']}", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("input", overflow="fold")
    for header in _COUNTS.values():
        table.add_column(header, justify="right")
    skipped: dict[str, list[str]] = {}
    for r in summary["inputs"]:
        if r["status"] == "skipped":
            reason = _ALREADY if r["reason"].startswith(_ALREADY) else r["reason"]
            skipped.setdefault(reason, []).append(r["name"])
            continue
        name = escape(r["name"])
        if r["status"] == "error":
            table.add_row(f"{name} [red](error)[/]", *([""] * len(_COUNTS)))
            continue
        if not r["complete"]:
            name += " [red](incomplete)[/]"
        table.add_row(name, *(f"{r[k]:,}" for k in _COUNTS))
    totals = summary["totals"]
    table.add_section()
    table.add_row(
        f"total ({totals['ingested']} of {totals['inputs']} read)",
        *(f"{totals[k]:,}" for k in _COUNTS),
        style="bold",
    )
    out.print(table, highlight=False)
    lines = [_LEGEND]
    for reason, names in skipped.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"skipped {len(names)}: {shown}: {reason}")
    current = summary["current"]
    seconds = summary["seconds"]
    lines += [
        f"current view: {current['documents']:,} documents, {current['tombstones']:,} "
        f"deletions in force, {current['passages']:,} passages in {summary['n_shards']} shards",
        "shards written: "
        + (", ".join(map(str, summary["shards_written"])) or "none (nothing changed)"),
        f"time: parse {seconds['parse']:.1f} s, compact {seconds['compact']:.1f} s, "
        f"segment {seconds['segment']:.1f} s (total {seconds['total']:.1f} s)",
        f"run {summary['run_id']} → {summary['outputs']['manifest']}",
    ]
    for line in lines:
        out.print(escape(line), highlight=False, soft_wrap=True)
