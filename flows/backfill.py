"""The backfill flow: annotate a range of PubMed files, or a whole corpus, in batches.

Inputs are files and folders, local or ``s3://``. ``first``/``last`` pick a range of PubMed
files by number (``pubmed26n0001.xml.gz`` or ``26n0001`` or ``1``, either end optional; other
files are left out when a range is given). The files go, in number order, through
:func:`~flows.annotate.annotate_corpus` ``files_per_run`` at a time, each batch a committed
step: a backfill stopped part-way and started again skips what its earlier batches did (the
ingest by file content, the annotation by each shard's content check). ``max_concurrency``
bounds the shards annotated at once, on whichever task runner ``options`` names.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.annotate import AnnotateOptions, annotate_corpus
from flows.nightly import pubmed_key, source_files
from infra.ingest_store import error_lines

_BOUND = re.compile(r"^(?:pubmed)?(?:(\d{2})n)?(\d{1,4})(?:\.xml(?:\.gz)?)?$")


class BackfillIncomplete(RuntimeError):
    """Some inputs could not be read (whole or in part); every batch was still run."""


def parse_bound(text: str) -> tuple[int | None, int]:
    """``(year or None, number)`` of a range end: a PubMed file name, ``26n0001`` or ``1``."""
    found = _BOUND.match(text.strip())
    if not found:
        raise ValueError(f"{text!r}: not a PubMed file number (pubmed26n0001.xml.gz, 26n1, 1)")
    year = int(found.group(1)) if found.group(1) else None
    return year, int(found.group(2))


def _within(key: tuple[int, int], bound: tuple[int | None, int], *, above: bool) -> bool:
    year, number = bound
    mine = key if year is not None else (key[1],)
    theirs = (year, number) if year is not None else (number,)
    return mine >= theirs if above else mine <= theirs


def select_files(inputs: list[str], first: str | None = None, last: str | None = None) -> list[str]:
    """The files of ``inputs`` to backfill: all of them (PubMed files in number order, then the
    others in path order), or only the PubMed files from ``first`` to ``last`` inclusive."""
    files = source_files(inputs)
    keyed = sorted((key, uri) for uri in files if (key := pubmed_key(uri)))
    if first is None and last is None:
        pubmed = {uri for _, uri in keyed}
        return [uri for _, uri in keyed] + [uri for uri in files if uri not in pubmed]
    low = parse_bound(first) if first else None
    high = parse_bound(last) if last else None
    return [
        uri
        for key, uri in keyed
        if (low is None or _within(key, low, above=True))
        and (high is None or _within(key, high, above=False))
    ]


@flow(name="backfill", validate_parameters=True)
def backfill(
    inputs: Annotated[list[str], Field(min_length=1)],
    out: str,
    options: AnnotateOptions,
    first: str | None = None,
    last: str | None = None,
    files_per_run: Annotated[int, Field(ge=1)] | None = None,
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] | None = None,
) -> dict[str, Any]:
    """Annotate the selected files of ``inputs`` into ``out``, ``files_per_run`` at a time
    (None: all in one run); ``max_concurrency`` overrides the options' limit of shards in
    flight. Returns the batches with their summaries' counts; fails after the last batch
    when an input could not be read (whole or in part), naming each."""
    files = select_files(inputs, first, last)
    if not files:
        raise ValueError(f"no input files to backfill in {', '.join(inputs)}")
    kwargs = options.flow_kwargs()
    if max_concurrency is not None:
        kwargs["max_concurrency"] = max_concurrency
    size = files_per_run or len(files)
    batches = []
    errors: list[str] = []
    for start in range(0, len(files), size):
        batch = files[start : start + size]
        summary = annotate_corpus(inputs=batch, out=out, **kwargs)
        batches.append(
            {
                "files": [PurePosixPath(f).name for f in batch],
                "run_id": summary["run_id"],
                "shards": summary["shards"],
                "totals": summary["ingest"]["totals"],
                "stages": summary["stages"],
                "time": summary["time"],
            }
        )
        errors += error_lines(summary["ingest"])
    if errors:
        raise BackfillIncomplete(f"{len(errors)} input(s) with errors: " + "; ".join(errors))
    return {"out": out, "files": len(files), "batches": batches}
