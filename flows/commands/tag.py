"""``bioner tag --docs URI --model DIR``: tag an already-ingested documents table.

``--docs`` is the documents table ``bioner ingest`` wrote (the folder ``OUT/documents``) or its
``OUT``. Passages are its sibling ``OUT/passages``, or are cut here when it has none. Each shard
is generated and decoded by the same tasks as ``bioner run`` (generation cache included: only
passages never answered with this model, prompt and settings are generated); the tables go next
to the documents, or to ``--out``. A progress bar shows passages/s and output tokens/s while
generating; a summary follows (``--json``: as JSON). A missing documents table, a folder that
is not one, or a missing model folder fails at once with one ``error: PATH: ...`` line and
exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bioner.segment import DEFAULT_MAX_CHARS
from flows.commands._common import check_output, console, fail, max_chars_option, writing
from flows.commands._prefect import (
    prefect_defaults,
    progress_bars,
    quiet_libraries,
    quiet_prefect_logs,
    stoppable,
)
from flows.commands.run import (
    _resolve_model,
    abbreviations_option,
    add_annotation_rows,
    add_request_rows,
    check_engine,
    check_schema,
    decode_rules,
    engine_option,
    lexicon_option,
    no_constrain_option,
    rules_option,
    schema_option,
    summary_table,
)
from infra import storage
from infra.llm.local import ModelFolderError, is_untrained
from schemas import DOCUMENTS_V2, SCHEMA_KEY

_DOCUMENTS = "documents"


def main(
    docs: str = typer.Option(
        ...,
        "--docs",
        help="Documents table written by bioner ingest: the folder OUT/documents, or OUT "
        "(local or s3://).",
    ),
    model: Path = typer.Option(..., "--model", envvar="BIONER_MODEL", help="Local model folder."),
    engine: str = engine_option(),
    schema: str = schema_option(),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for generations, entities and decode issues, local or s3:// (default: "
        "beside the documents).",
    ),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
    no_constrain: bool = no_constrain_option(),
    lexicon: bool = lexicon_option(),
    abbreviations: bool = abbreviations_option(),
    rules: str = rules_option(),
    max_chars: int = max_chars_option(DEFAULT_MAX_CHARS),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="Cap on tokens per answer (default: derived from passage length and type count).",
    ),
    batch_tokens: int = typer.Option(
        16_384, "--batch-tokens", min=256, help="Padded tokens per generation batch."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Tag an ingested documents table: segment if needed, generate, decode."""
    quiet_libraries()
    documents = documents_table(docs)
    # ROOT of ROOT/documents, as flows.annotate.tag_root (which would import Prefect now).
    target = out or documents.rpartition("/")[0] or "."
    check_output(target)
    check_schema(schema)
    spec = decode_rules(lexicon, abbreviations, rules, schema)
    check_engine(engine)
    model_dir = _resolve_model(model, schema)

    prefect_defaults()
    with (
        stoppable(),
        writing(target, "bioner tag"),
        quiet_prefect_logs(),
        progress_bars() as listener,
    ):
        # Imported here: Prefect reads its settings at import, after prefect_defaults.
        from flows.annotate import ShardsFailed, tag_documents
        from tasks.progress import listening

        console.print(
            f"tagging {documents} with {model_dir} → {target}",
            highlight=False,
            soft_wrap=True,
        )
        try:
            with listening(listener):
                summary = tag_documents(
                    documents=documents,
                    model=str(model_dir),
                    out=out,
                    schema=schema.lower(),
                    device=device,
                    max_chars=max_chars,
                    max_new_tokens=max_new_tokens,
                    batch_tokens=batch_tokens,
                    backend=engine,
                    constrained=not no_constrain,
                    rules=spec,
                )
        except ModelFolderError as e:
            raise fail(str(e)) from None
        except ImportError as e:  # the engine's libraries are not installed
            raise fail(f"--engine {engine}: {e}") from None
        except ShardsFailed as e:
            raise fail(e.line(), 1) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary, untrained=is_untrained(model_dir))


def documents_table(docs: str) -> str:
    """The documents table folder ``docs`` names (it or its ``documents`` folder), checked.

    Fails with one line naming the path when it is missing, is not a folder, holds no
    ``shard=<k>.parquet`` files, or holds a file that is not a documents table.
    """
    try:
        if not storage.exists(docs):
            raise fail(f"{docs}: no such documents table")
        if not storage.is_dir(docs):
            raise fail(f"{docs}: not a documents table (expected the folder OUT/documents or OUT)")
        nested = storage.join(docs, _DOCUMENTS)
        table = nested if storage.is_dir(nested) else docs.rstrip("/")
        files = [
            storage.join(table, n)
            for n in storage.list_dir(table)
            if n.startswith("shard=") and n.endswith(".parquet")
        ]
    except (OSError, ValueError, NotImplementedError) as e:  # S3 unreachable, a bad URI
        raise fail(str(e).splitlines()[0]) from None
    if not files:
        raise fail(
            f"{docs}: not a documents table (no shard=<k>.parquet files; expected the folder "
            "OUT/documents written by bioner ingest, or OUT)"
        )
    want = DOCUMENTS_V2.metadata[SCHEMA_KEY].decode()
    for file in files:
        try:
            found = storage.read_metadata(file).get(SCHEMA_KEY.decode(), "")
        except (OSError, ValueError) as e:
            raise fail(f"{file}: not a documents table (unreadable Parquet: {e})") from None
        if found != want:
            raise fail(
                f"{file}: not a documents table (expected {want}, found {found or 'no schema tag'})"
            )
    return table


def print_summary(summary: dict[str, Any], *, untrained: bool = False) -> None:
    """The summary as a table on stdout: request, counts, speed, issues, time, outputs."""
    table = summary_table("bioner tag")
    add_request_rows(table, summary, untrained=untrained)
    table.add_row("documents table", f"{summary['documents_table']} ({summary['n_shards']} shards)")
    add_annotation_rows(table, summary)
    Console().print(table, highlight=False)
