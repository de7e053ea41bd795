"""Prefect tasks of the annotate flow: one task per stage per shard, URIs in and out.

Each task reads the previous stage's table by URI, calls the pure code in ``bioner`` (and the
engine in ``infra``), writes its own table atomically, and returns the URI it wrote. Tables of
one stage are folders of per-shard Parquet files: ``OUT/<table>/<shard>.parquet``.

Retries: only on transient errors (network, time-outs, I/O hiccups); bad input never retries,
it fails at once with a :class:`SourceError` naming the file.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from itertools import islice
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task

from bioner.codec import symbolic
from bioner.codec.issues import DecodeIssue
from bioner.errors import InputError
from bioner.generation import Engine, GenerationParams, max_new_tokens_for
from bioner.ingest import Tombstone, read_pubmed
from bioner.labels import SCHEMAS, EntitySchema
from bioner.prompts import PROMPT_VERSION, build_prompt
from bioner.records import Document, Entity, Passage
from bioner.segment import DEFAULT_MAX_CHARS
from bioner.segment import segment as segment_document
from infra import storage
from infra.llm import load_engine
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V1,
    ENTITIES_V1,
    GENERATIONS_V1,
    PASSAGES_V1,
    TOMBSTONES_V1,
)
from tasks.progress import report

log = logging.getLogger(__name__)

TABLES = ("documents", "tombstones", "passages", "generations", "entities", "decode_issues")
DEFAULT_BATCH_TOKENS = 16_384
DEFAULT_CHUNK = 32  # passages per engine call: progress granularity on CPU


def code_version() -> str:
    """The installed bioner version, recorded in every table's metadata."""
    try:
        return version("bioner")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class SourceError(InputError):
    """Bad input with the file it came from; ``str()`` is the one-line message for a user."""

    def __init__(self, file: str, error: InputError) -> None:
        super().__init__(error.message, line=error.line, record=error.record)
        self.file = file

    def __str__(self) -> str:
        return self.located(self.file)

    def __reduce__(self) -> tuple[Any, ...]:
        error = InputError(self.message, line=self.line, record=self.record)
        return (SourceError, (self.file, error))


@dataclass(frozen=True)
class ShardPaths:
    """The URI of every table of one shard: ``OUT/<table>/<shard>.parquet``."""

    documents: str
    tombstones: str
    passages: str
    generations: str
    entities: str
    decode_issues: str

    @classmethod
    def under(cls, out: str, shard: str) -> ShardPaths:
        return cls(*(storage.join(out, table, f"{shard}.parquet") for table in TABLES))


def _transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition: I/O and network failures may pass; bad input and bugs will not."""
    try:
        state.result()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False  # the same path will be just as missing on the next try
    except (ConnectionError, TimeoutError, OSError):
        return True
    except Exception:  # InputError and bugs: retrying would fail the same way
        return False
    return False


_TASK = {"cache_policy": NO_CACHE, "persist_result": False, "retry_condition_fn": _transient}


def _metadata(run_id: str, **extra: str) -> dict[str, str]:
    return {"bioner.run_id": run_id, "bioner.code_version": code_version(), **extra}


# --------------------------------------------------------------------------- ingest


@task(name="ingest", retries=2, retry_delay_seconds=2, **_TASK)
def ingest(
    source_uri: str, documents_uri: str, tombstones_uri: str, run_id: str
) -> tuple[str, str]:
    """Read a PubMed XML file (gzipped or not) into documents and tombstones tables."""
    name = storage.local_path(source_uri).name
    documents: dict[str, Document] = {}
    tombstones: list[Tombstone] = []
    try:
        with storage.open_input(source_uri) as stream:
            for record in read_pubmed(stream, source=name):
                if isinstance(record, Tombstone):
                    tombstones.append(record)
                else:
                    # A file may hold a PMID twice; as in PubMed updates, the last one wins.
                    documents.pop(record.id, None)
                    documents[record.id] = record
    except InputError as e:
        raise SourceError(source_uri, e) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise SourceError(source_uri, InputError(f"not a valid gzip file ({e})")) from None
    meta = _metadata(run_id, **{"bioner.source": name})
    storage.write_rows(
        [dataclasses.asdict(d) for d in documents.values()], documents_uri, DOCUMENTS_V1, meta
    )
    storage.write_rows(
        [dataclasses.asdict(t) for t in tombstones], tombstones_uri, TOMBSTONES_V1, meta
    )
    return documents_uri, tombstones_uri


def document_of(row: dict[str, Any]) -> Document:
    """A Document from a DOCUMENTS_V1 row."""
    return Document(**{**row, "metadata": tuple(tuple(kv) for kv in row["metadata"])})


def passage_of(row: dict[str, Any]) -> Passage:
    """A Passage from a PASSAGES_V1 row."""
    return Passage(**row)


# --------------------------------------------------------------------------- segment


@task(name="segment", **_TASK)
def segment(
    documents_uri: str, passages_uri: str, run_id: str, max_chars: int = DEFAULT_MAX_CHARS
) -> str:
    """Split every document into passages (sentences, windows of long ones)."""
    rows = [
        dataclasses.asdict(p)
        for row in storage.read_table(documents_uri, DOCUMENTS_V1).to_pylist()
        for p in segment_document(document_of(row), max_chars=max_chars)
    ]
    meta = _metadata(run_id, **{"bioner.max_chars": str(max_chars)})
    return storage.write_rows(rows, passages_uri, PASSAGES_V1, meta)


# --------------------------------------------------------------------------- generate


@functools.lru_cache(maxsize=1)
def engine_for(model: str, device: str = "cpu", batch_tokens: int = DEFAULT_BATCH_TOKENS) -> Engine:
    """The engine of this process, loaded once and reused by every generate call."""
    log.info("loading %s on %s", model, device)
    return load_engine(model, device=device, batch_tokens=batch_tokens)


def schema_of(name: str) -> EntitySchema:
    """The entity schema called ``name``; a ValueError listing the known ones otherwise."""
    try:
        return SCHEMAS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(sorted(SCHEMAS))}") from None


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def generation_params(
    engine: Engine,
    texts: Sequence[str],
    schema: EntitySchema,
    base: GenerationParams,
    cap: int | None = None,
) -> list[GenerationParams]:
    """Per-passage parameters: the token limit follows the passage length and type count."""
    header_tokens = max(engine.count_tokens([t.header for t in schema.types]))
    return [
        base.with_max_new_tokens(
            max_new_tokens_for(n, len(schema.types), header_tokens=header_tokens, cap=cap)
        )
        for n in engine.count_tokens(texts)
    ]


@task(name="generate", retries=1, retry_delay_seconds=5, **_TASK)
def generate(
    passages_uri: str,
    generations_uri: str,
    model: str,
    schema: str,
    run_id: str,
    device: str = "cpu",
    max_new_tokens: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    chunk_size: int = DEFAULT_CHUNK,
) -> str:
    """Prompt the model once per passage; chunks keep memory flat and feed the progress bar."""
    entity_schema = schema_of(schema)
    engine = engine_for(model, device, batch_tokens)
    passages = storage.read_table(passages_uri, PASSAGES_V1).to_pylist()
    base = GenerationParams()
    rows: list[dict[str, Any]] = []
    report("generate", 0, len(passages))
    for chunk in _chunks(passages, chunk_size):
        texts = [p["text"] for p in chunk]
        params = generation_params(engine, texts, entity_schema, base, max_new_tokens)
        prompts = [build_prompt(text, entity_schema) for text in texts]
        for p, g in zip(chunk, engine.generate(prompts, params), strict=True):
            rows.append(
                {
                    "doc_id": p["doc_id"],
                    "doc_version": p["doc_version"],
                    "passage_index": p["index"],
                    "model_id": engine.model_id,
                    "prompt_version": PROMPT_VERSION,
                    "run_id": run_id,
                    **dataclasses.asdict(g),
                }
            )
        report("generate", len(rows), len(passages))
    meta = _metadata(
        run_id,
        **{"bioner.model_id": engine.model_id, "bioner.prompt_version": PROMPT_VERSION},
        **{"bioner.schema_name": entity_schema.name, "bioner.params": repr(base)},
    )
    return storage.write_rows(rows, generations_uri, GENERATIONS_V1, meta)


# --------------------------------------------------------------------------- decode


def entities_of(
    passage: Passage,
    document_text: str,
    generation: dict[str, Any],
    schema: EntitySchema,
    run_id: str,
) -> tuple[list[Entity], list[DecodeIssue]]:
    """Decode one generation into entities with document offsets, plus the decode issues.

    Every entity's text is checked against the document at its offsets: a mismatch is a bug in
    the offsets, never a model error, so it raises.
    """
    spans, issues = symbolic.decode(
        generation["text"], passage.text, schema, finish_reason=generation["finish_reason"]
    )
    kinds = tuple(sorted({str(i.kind) for i in issues}))
    entities = []
    for span in spans:
        start, end = passage.start + span.start, passage.start + span.end
        text = document_text[start:end]
        if span.end > len(passage.text) or text != span.text(passage.text):
            raise AssertionError(
                f"{passage.id}: span {span} does not map onto the document at [{start}, {end})"
            )
        entities.append(
            Entity(
                doc_id=passage.doc_id,
                doc_version=passage.doc_version,
                passage_index=passage.index,
                start=start,
                end=end,
                text=text,
                label=span.label,
                model_id=generation["model_id"],
                prompt_version=generation["prompt_version"],
                run_id=run_id,
                issues=kinds,
            )
        )
    return entities, issues


@task(name="decode", **_TASK)
def decode(
    generations_uri: str,
    passages_uri: str,
    documents_uri: str,
    entities_uri: str,
    issues_uri: str,
    schema: str,
    run_id: str,
) -> tuple[str, str]:
    """Turn generations into entities (document offsets) and a table of decode issues."""
    entity_schema = schema_of(schema)
    texts = {
        (r["id"], r["version"]): r["text"]
        for r in storage.read_table(
            documents_uri, DOCUMENTS_V1, ["id", "version", "text"]
        ).to_pylist()
    }
    passages = {
        (p.doc_id, p.doc_version, p.index): p
        for p in map(passage_of, storage.read_table(passages_uri, PASSAGES_V1).to_pylist())
    }
    entities: list[dict[str, Any]] = []
    issue_rows: list[dict[str, Any]] = []
    for g in storage.read_table(generations_uri, GENERATIONS_V1).to_pylist():
        key = (g["doc_id"], g["doc_version"], g["passage_index"])
        passage = passages[key]
        found, issues = entities_of(passage, texts[key[:2]], g, entity_schema, run_id)
        entities.extend(dataclasses.asdict(e) for e in found)
        issue_rows.extend(
            {
                "doc_id": key[0],
                "doc_version": key[1],
                "passage_index": key[2],
                "kind": str(i.kind),
                "message": i.message,
                "line": i.line,
                "lossy": i.lossy,
            }
            for i in issues
        )
    meta = _metadata(run_id, **{"bioner.schema_name": entity_schema.name})
    storage.write_rows(entities, entities_uri, ENTITIES_V1, meta)
    storage.write_rows(issue_rows, issues_uri, DECODE_ISSUES_V1, meta)
    return entities_uri, issues_uri


# --------------------------------------------------------------------------- summary


def shard_summary(paths: ShardPaths) -> dict[str, Any]:
    """Counts of one finished shard, read from its tables (footers and a few columns)."""
    generations = storage.read_table(
        paths.generations, GENERATIONS_V1, ["prompt_tokens", "output_tokens", "finish_reason"]
    )
    issue_kinds = storage.read_table(paths.decode_issues, DECODE_ISSUES_V1, ["kind"])
    entities = storage.count_rows(paths.entities)
    return {
        "documents": storage.count_rows(paths.documents),
        "tombstones": storage.count_rows(paths.tombstones),
        "passages": storage.count_rows(paths.passages),
        "generations": generations.num_rows,
        "prompt_tokens": sum(generations["prompt_tokens"].to_pylist()),
        "output_tokens": sum(generations["output_tokens"].to_pylist()),
        "truncated": generations["finish_reason"].to_pylist().count("length"),
        "spans": entities,
        "entities": entities,
        "issues": dict(Counter(issue_kinds["kind"].to_pylist())),
    }
