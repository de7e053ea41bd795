"""The ingest flow: corpus files in, reconciled shard tables out (see :mod:`infra.ingest_store`).

One task per new input file (parsed into its segment, in ordinal order), then one task per shard
that received rows (compacted into its documents, tombstones and passages). Known inputs are
skipped by content hash and unchanged shards are not rewritten, so running it again is cheap and
changes nothing.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from bioner.segment import DEFAULT_MAX_CHARS
from infra.ingest_store import ingest_paths
from tasks import ingest as t
from tasks.progress import report


@flow(name="ingest-corpus", validate_parameters=True)
def ingest_corpus(
    inputs: Annotated[list[str], Field(min_length=1)],
    out: str,
    n_shards: Annotated[int, Field(ge=1, le=65_536)] | None = None,
    max_chars: Annotated[int, Field(ge=16)] = DEFAULT_MAX_CHARS,
    run_id: str | None = None,
    workers: Annotated[int, Field(ge=1, le=64)] = 1,
) -> dict[str, Any]:
    """Ingest files and folders ``inputs`` into ``out``; returns the run manifest.

    ``n_shards`` None: the number ``out`` was made with, 16 for a new one. ``run_id``: the
    caller's run (the annotate flow's), else this flow run's id.
    """
    return ingest_paths(
        inputs,
        out,
        n_shards,
        report,
        max_chars=max_chars,
        run_id=run_id or flow_run.get_id(),
        ingest=functools.partial(t.ingest_input, workers=workers),
        compact=t.compact_shard,
    )
