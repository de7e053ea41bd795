"""``bioner decode``: model outputs (symbolic or JSON) to spans in the canonical form."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from bioner.codec import TAG_FORMATS
from bioner.codec.lines import parse_tagged_lines
from bioner.labels import get_schema
from bioner.readers._common import dump_json_lines
from flows.commands._common import console, decode_text, fail, located, read_input
from infra import storage


def main(
    src: Path = typer.Argument(..., help="JSON lines with id, text, output[, finish_reason]."),
    fmt: str = typer.Option("symbolic", "--format", "-f", help="symbolic | json-entities"),
    schema: str = typer.Option("general", "--schema", "-s", help="Entity schema of the model."),
    out: Path = typer.Option(..., "--out", "-o", help="Canonical JSON lines to write."),
) -> None:
    """Decode tagger outputs into spans with exact offsets, keeping every issue per record."""
    if fmt not in TAG_FORMATS:
        raise fail(f"unknown --format {fmt!r}; choose one of {', '.join(TAG_FORMATS)}")
    try:
        entity_schema = get_schema(schema)
    except ValueError as e:
        raise fail(str(e)) from None
    decoder = TAG_FORMATS[fmt].decode
    with located(src):
        records = parse_tagged_lines(decode_text(src, read_input(src)))

    started = time.perf_counter()
    rows, issue_counts, n_spans = [], Counter[str](), 0
    for r in records:
        spans, issues = decoder(r.output, r.text, entity_schema, finish_reason=r.finish_reason)
        n_spans += len(spans)
        issue_counts.update(str(i.kind) for i in issues)
        rows.append(
            {
                "id": r.id,
                "text": r.text,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in spans],
                "issues": [
                    {"kind": str(i.kind), "line": i.line, "message": i.message} for i in issues
                ],
            }
        )
    elapsed = time.perf_counter() - started
    try:
        storage.write_text(dump_json_lines(rows), str(out))
    except OSError as e:
        raise fail(f"{out}: cannot write ({e.strerror})") from None

    rate = len(records) / elapsed if elapsed > 0 else float("inf")
    console.print(
        f"decoded {len(records)} records ({rate:,.0f}/s): {n_spans} spans, "
        f"{sum(issue_counts.values())} issues -> {out}"
    )
    if issue_counts:
        table = Table("issue", "count", title="decode issues")
        for kind, count in issue_counts.most_common():
            table.add_row(kind, str(count))
        console.print(table)
