"""The nightly PubMed flow: annotate the update files published since the last night.

NLM publishes numbered update files (``pubmed26n1335.xml.gz`` ...) into a folder; a mirror of
it, local or ``s3://``, is the flow's ``source``. The output store keeps a watermark,
``OUT/_nightly/watermark.json``: the last file whose records are in the tables. Each night the
files numbered after it are annotated in number order, in one
:func:`~flows.annotate.annotate_corpus` run (its ingest applies them oldest first, so the later
record of a PMID wins); the watermark
moves only after that run has succeeded, and never past a file that could not be read at all
(the flow then fails, naming it, and the next night starts there). Files read part-way keep
their records and quarantine the break, as in every ingest: they count as done. Running the
flow twice in a night finds nothing new; a crash before the watermark moves reruns the same
files, which the ingest skips by content and the annotation by its shard check.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from flows.annotate import AnnotateOptions, annotate_corpus
from infra import storage

WATERMARK = "_nightly/watermark.json"
NIGHTS = "_nightly/runs"
#: ``pubmed<yy>n<nnnn>.xml[.gz]``: a PubMed baseline or update file, by year and number.
PUBMED_FILE = re.compile(r"^pubmed(\d{2})n(\d{4})\.xml(?:\.gz)?$")


class NightlyIncomplete(RuntimeError):
    """Some files could not be read; the watermark stopped before the first of them."""


@dataclass(frozen=True)
class Watermark:
    """The last PubMed file of a source whose records are in the output store."""

    name: str
    year: int
    number: int
    run_id: str
    updated: str

    @property
    def key(self) -> tuple[int, int]:
        return self.year, self.number


def pubmed_key(name: str) -> tuple[int, int] | None:
    """``(year, number)`` of a PubMed file name, None for any other name."""
    found = PUBMED_FILE.match(PurePosixPath(name).name)
    return (int(found.group(1)), int(found.group(2))) if found else None


def read_watermark(out: str) -> Watermark | None:
    """The watermark of ``out``; None before the first night."""
    uri = storage.join(out, WATERMARK)
    if not storage.exists(uri):
        return None
    return Watermark(**json.loads(storage.read_text(uri)))


def write_watermark(out: str, name: str, run_id: str) -> Watermark:
    """Move ``out``'s watermark to the PubMed file ``name`` (one atomic write)."""
    key = pubmed_key(name)
    if key is None:
        raise ValueError(f"{name}: not a PubMed file name (pubmed26n0001.xml.gz)")
    mark = Watermark(name, *key, run_id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    storage.write_text(json.dumps(asdict(mark), indent=2) + "\n", storage.join(out, WATERMARK))
    return mark


def source_files(paths: list[str]) -> list[str]:
    """Every file of ``paths`` (files, or folders walked, local or ``s3://``), hidden ones
    (``.name``) left out, in path order."""
    found = []
    for path in paths:
        if storage.is_dir(path):
            for uri in storage.files_under(path):
                relative = uri[len(path.rstrip("/")) :].strip("/")
                if not any(part.startswith(".") for part in relative.split("/")):
                    found.append(uri)
        elif storage.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def pubmed_files(source: str, after: tuple[int, int] | None = None) -> list[str]:
    """The PubMed files of ``source`` numbered after ``after``, in number order."""
    keyed = [(key, uri) for uri in source_files([source]) if (key := pubmed_key(uri))]
    return [uri for key, uri in sorted(keyed) if after is None or key > after]


@flow(name="nightly-pubmed", validate_parameters=True)
def nightly_pubmed(
    source: str,
    out: str,
    options: AnnotateOptions,
    max_files: Annotated[int, Field(ge=1)] | None = None,
) -> dict[str, Any]:
    """Annotate ``source``'s PubMed files newer than ``out``'s watermark, then advance it.

    ``max_files`` caps the files taken in one night (the oldest first; the rest wait for the
    next run). Returns the night's record (also in ``OUT/_nightly/runs/<run>.json``): the files,
    the watermark before and after, and the annotate run's summary.
    """
    run_id = flow_run.get_id() or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    before = read_watermark(out)
    files = pubmed_files(source, before.key if before else None)[:max_files]
    night: dict[str, Any] = {
        "run_id": run_id,
        "source": source,
        "files": [PurePosixPath(f).name for f in files],
        "watermark_before": asdict(before) if before else None,
        "watermark_after": asdict(before) if before else None,
        "failed": [],
        "summary": None,
    }
    if files:
        summary = annotate_corpus(inputs=files, out=out, **options.flow_kwargs())
        night["summary"] = summary
        unread = {
            r["uri"]: r["reason"] for r in summary["ingest"]["inputs"] if r["status"] == "error"
        }
        done = []
        for uri in files:  # number order: stop before the first file that was not read
            if uri in unread:
                break
            done.append(uri)
        night["failed"] = [f"{uri}: {reason}" for uri, reason in unread.items()]
        if done:
            mark = write_watermark(out, PurePosixPath(done[-1]).name, run_id)
            night["watermark_after"] = asdict(mark)
    storage.write_text(
        json.dumps(night, indent=2) + "\n", storage.join(out, NIGHTS, f"{run_id}.json")
    )
    if night["failed"]:
        raise NightlyIncomplete(
            f"{len(night['failed'])} file(s) not read, the watermark stays before them: "
            + "; ".join(night["failed"])
        )
    return night
