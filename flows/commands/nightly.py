"""``bioner nightly SOURCE --out DIR`` and ``bioner backfill INPUT... --out DIR``.

The scheduled flows (:mod:`flows.nightly`, :mod:`flows.backfill`) run once, here, in-process,
with the same defaults, options and summary as ``bioner run``: what a deployment runs every
night, or once over a corpus, tried by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flows.commands._common import check_output, console, fail, writing
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
    check_engine,
    check_runner,
    check_schema,
    chunk_size_option,
    decode_rules,
    engine_option,
    lexicon_option,
    max_concurrency_option,
    print_summary,
    rules_option,
    runner_address_option,
    runner_option,
    schema_option,
)
from infra.llm.local import ModelFolderError, is_untrained


def _options(
    model: Path | None,
    schema: str,
    device: str,
    max_new_tokens: int | None,
    engine: str,
    chunk_size: int,
    runner: str | None,
    runner_address: str | None,
    max_concurrency: int,
    rules: str,
) -> tuple[dict[str, Any], Path]:
    """The checked annotate options of the flows, and the model folder (``rules``: the decode
    rules spec of :func:`flows.commands.run.decode_rules`)."""
    check_schema(schema)
    check_engine(engine)
    check_runner(runner, runner_address)
    model_dir = _resolve_model(model, schema)
    options = {
        "model": str(model_dir),
        "schema": schema.lower(),
        "device": device,
        "max_new_tokens": max_new_tokens,
        "backend": engine,
        "chunk_size": chunk_size,
        "runner": runner,
        "runner_address": runner_address,
        "max_concurrency": max_concurrency,
        "rules": rules,
    }
    return options, model_dir


def _model_option() -> typer.models.OptionInfo:
    return typer.Option(
        None, "--model", envvar="BIONER_MODEL", help="Local model folder (as bioner run)."
    )


def _max_new_tokens_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--max-new-tokens", min=1, help="Cap on tokens per answer.")


def nightly(
    source: str = typer.Argument(..., help="Folder (local or s3://) of PubMed update files."),
    out: str = typer.Option(..., "--out", "-o", help="Output store (local or s3://)."),
    max_files: int | None = typer.Option(None, "--max-files", min=1, help="Files per night."),
    model: Path | None = _model_option(),
    schema: str = schema_option(),
    device: str = typer.Option("cpu", "--device"),
    max_new_tokens: int | None = _max_new_tokens_option(),
    engine: str = engine_option(),
    chunk_size: int = chunk_size_option(),
    runner: str | None = runner_option(),
    runner_address: str | None = runner_address_option(),
    max_concurrency: int = max_concurrency_option(),
    lexicon: bool = lexicon_option(),
    abbreviations: bool = abbreviations_option(),
    rules: str = rules_option(),
) -> None:
    """Annotate the PubMed files of SOURCE newer than the watermark in --out, then move it."""
    quiet_libraries()
    check_output(out)
    options, model_dir = _options(
        model, schema, device, max_new_tokens, engine, chunk_size, runner, runner_address,
        max_concurrency, decode_rules(lexicon, abbreviations, rules, schema),
    )  # fmt: skip
    prefect_defaults()
    with (
        stoppable(),
        writing(out, "bioner nightly"),
        quiet_prefect_logs(),
        progress_bars() as listener,
    ):
        from flows.nightly import NightlyIncomplete, nightly_pubmed
        from tasks.progress import listening

        try:
            with listening(listener):
                night = nightly_pubmed(source=source, out=out, options=options, max_files=max_files)
        except (NightlyIncomplete, FileNotFoundError, ModelFolderError) as e:
            raise fail(str(e), code=1) from None
    mark = night["watermark_after"]
    console.print(
        f"{len(night['files'])} new file(s); watermark {mark['name'] if mark else 'none'}",
        highlight=False,
    )
    if night["summary"] is not None:
        print_summary(night["summary"], untrained=is_untrained(model_dir))


def backfill(
    inputs: list[str] = typer.Argument(..., help="Files and folders (local or s3://)."),
    out: str = typer.Option(..., "--out", "-o", help="Output store (local or s3://)."),
    first: str | None = typer.Option(None, "--first", help="First PubMed file (26n0001, 1)."),
    last: str | None = typer.Option(None, "--last", help="Last PubMed file, inclusive."),
    files_per_run: int | None = typer.Option(
        None, "--files-per-run", min=1, help="Files per annotate run (default: all at once)."
    ),
    model: Path | None = _model_option(),
    schema: str = schema_option(),
    device: str = typer.Option("cpu", "--device"),
    max_new_tokens: int | None = _max_new_tokens_option(),
    engine: str = engine_option(),
    chunk_size: int = chunk_size_option(),
    runner: str | None = runner_option(),
    runner_address: str | None = runner_address_option(),
    max_concurrency: int = max_concurrency_option(),
    lexicon: bool = lexicon_option(),
    abbreviations: bool = abbreviations_option(),
    rules: str = rules_option(),
) -> None:
    """Annotate a range of PubMed files, or a whole corpus, in batches of --files-per-run."""
    quiet_libraries()
    check_output(out)
    options, _ = _options(
        model, schema, device, max_new_tokens, engine, chunk_size, runner, runner_address,
        max_concurrency, decode_rules(lexicon, abbreviations, rules, schema),
    )  # fmt: skip
    prefect_defaults()
    with (
        stoppable(),
        writing(out, "bioner backfill"),
        quiet_prefect_logs(),
        progress_bars() as listener,
    ):
        from flows.backfill import BackfillIncomplete
        from flows.backfill import backfill as backfill_flow
        from tasks.progress import listening

        try:
            with listening(listener):
                result = backfill_flow(
                    inputs=inputs,
                    out=out,
                    options=options,
                    first=first,
                    last=last,
                    files_per_run=files_per_run,
                )
        except (BackfillIncomplete, FileNotFoundError, ValueError, ModelFolderError) as e:
            raise fail(str(e), code=1) from None
    for i, batch in enumerate(result["batches"], 1):
        t = batch["time"]
        console.print(
            f"batch {i}: {len(batch['files'])} file(s), shards {batch['shards'] or 'none'}, "
            f"{t['wall_seconds']:.1f} s ({100 * t['orchestration_share']:.1f}% orchestration)",
            highlight=False,
        )
