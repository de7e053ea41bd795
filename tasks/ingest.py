"""Prefect tasks of the ingest flow: one per input file, one per shard to compact.

Coarse on purpose: a task is a file parsed into its segment or a shard brought up to date, so a
run of thousands of files makes thousands of task runs, not millions. The work is
:mod:`infra.ingest_store`'s; these add retries on transient I/O errors (never on bad input:
:class:`~infra.ingest_store.InputFailed` fails at once) and progress reports.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from bioner.segment import DEFAULT_MAX_CHARS
from infra import ingest_store
from tasks._common import TASK_OPTIONS
from tasks.progress import report


@task(
    name="ingest-input",
    task_run_name="ingest-{ordinal}",
    retries=2,
    retry_delay_seconds=2,
    **TASK_OPTIONS,
)
def ingest_input(
    uri: str,
    out: str,
    ordinal: int,
    run_id: str,
    sha256: str | None = None,
    workers: int = 1,
) -> str:
    """Parse one input file into its committed segment (a PubMed file in ``workers``
    processes); returns the segment's URI."""
    return ingest_store.ingest_input(
        uri, out, ordinal, run_id, sha256=sha256, progress=report, workers=workers
    )


@task(
    name="compact-shard",
    task_run_name="compact-{shard}",
    retries=2,
    retry_delay_seconds=2,
    **TASK_OPTIONS,
)
def compact_shard(
    out: str, shard: int, run_id: str, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Any] | None:
    """Bring one shard's documents, tombstones and passages up to date; their URIs."""
    return ingest_store.compact_shard(out, shard, run_id, max_chars)
