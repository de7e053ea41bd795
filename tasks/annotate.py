"""Prefect tasks of the annotate flow: generate and decode, one task per stage per shard.

Each task reads the previous stage's table by URI, calls the pure code in ``bioner`` (and the
engine in ``infra``), writes its own table atomically, and returns the URI it wrote. Tables are
folders of per-shard Parquet files, ``OUT/<table>/shard=<k>.parquet``; documents, tombstones and
passages come from the ingest (:mod:`tasks.ingest`).

Retries: only on transient errors (network, time-outs, I/O hiccups); bad input and bugs never
retry.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from prefect import task

from bioner.codec import symbolic
from bioner.codec.issues import DecodeIssue
from bioner.generation import Engine, GenerationParams, max_new_tokens_for
from bioner.labels import SCHEMAS, EntitySchema
from bioner.prompts import PROMPT_VERSION, build_prompt
from bioner.records import Entity, Passage
from infra import storage
from infra.ingest_store import THROUGH, table_uri
from infra.llm import load_engine
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V1,
    GENERATIONS_V1,
    PASSAGES_V1,
)
from tasks._common import TASK_OPTIONS as _TASK
from tasks._common import table_metadata as _metadata
from tasks.progress import report

log = logging.getLogger(__name__)

TABLES = ("documents", "tombstones", "passages", "generations", "entities", "decode_issues")
DEFAULT_BATCH_TOKENS = 16_384
DEFAULT_CHUNK = 32  # passages per engine call: progress granularity on CPU


@dataclass(frozen=True)
class ShardPaths:
    """The URI of every table of one shard: ``OUT/<table>/shard=<k>.parquet``."""

    documents: str
    tombstones: str
    passages: str
    generations: str
    entities: str
    decode_issues: str

    @classmethod
    def under(cls, out: str, shard: int) -> ShardPaths:
        return cls(*(table_uri(out, table, shard) for table in TABLES))


def passage_of(row: dict[str, Any]) -> Passage:
    """A Passage from a PASSAGES_V1 row."""
    return Passage(**row)


#: Footer keys of the entities table that must match a new request for it to stand.
_SETTINGS = (
    THROUGH,
    "bioner.model",
    "bioner.schema_name",
    "bioner.prompt_version",
    "bioner.max_new_tokens",
)


def annotation_settings(
    passages_uri: str, model: str, schema: str, max_new_tokens: int | None
) -> dict[str, str]:
    """What an annotation of a shard depends on besides code: its passages and the request."""
    return {
        THROUGH: storage.read_metadata(passages_uri).get(THROUGH, ""),
        "bioner.model": model,
        "bioner.schema_name": schema,
        "bioner.prompt_version": PROMPT_VERSION,
        "bioner.max_new_tokens": str(max_new_tokens or ""),
    }


def stale_shards(
    out: str, n_shards: int, model: str, schema: str, max_new_tokens: int | None
) -> list[int]:
    """Shards whose passages have no entities for this request, or older ones."""
    stale = []
    for shard in range(n_shards):
        paths = ShardPaths.under(out, shard)
        if not storage.exists(paths.passages):
            continue
        want = annotation_settings(paths.passages, model, schema, max_new_tokens)
        have = storage.read_metadata(paths.entities) if storage.exists(paths.entities) else {}
        if any(have.get(key) != value for key, value in want.items()):
            stale.append(shard)
    return stale


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


@task(
    name="generate",
    retries=1,
    retry_delay_seconds=5,
    **_TASK,
)
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
        **annotation_settings(passages_uri, model, entity_schema.name, max_new_tokens),
        **{"bioner.model_id": engine.model_id, "bioner.params": repr(base)},
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
            documents_uri, DOCUMENTS_V2, ["id", "version", "text"]
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
    # The generations' settings go on: they say which passages and request these answer.
    settings = storage.read_metadata(generations_uri)
    meta = _metadata(run_id, **{k: settings.get(k, "") for k in _SETTINGS})
    meta["bioner.model_id"] = settings.get("bioner.model_id", "")
    storage.write_rows(issue_rows, issues_uri, DECODE_ISSUES_V1, meta)
    storage.write_rows(entities, entities_uri, ENTITIES_V1, meta)  # last: marks the shard done
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
