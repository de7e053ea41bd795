"""Prefect tasks of the annotate flow: generate and decode, one task per stage per shard.

Each task reads the previous stage's table by URI, calls the pure code in ``bioner`` (and the
engine in ``infra``), writes its own table atomically, and returns the URI it wrote. Tables are
folders of per-shard Parquet files, ``OUT/<table>/shard=<k>.parquet``; documents, tombstones and
passages come from the ingest (:mod:`tasks.ingest`), or passages from :func:`segment_documents`
for a documents table that came without them.

Generation is cached per passage (:func:`generate`): the shard's previous generations table is
the cache, so a rerun, another request that changes no output, or a revised citation whose
passages are mostly unchanged regenerates only the passages whose cache key is new.

Retries: only on transient errors (network, time-outs, I/O hiccups); bad input and bugs never
retry.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import pyarrow as pa
from prefect import task

from bioner.codec import symbolic
from bioner.codec.issues import DecodeIssue
from bioner.constraint import SymbolicTarget
from bioner.gencache import cache_key, canonical_json, decoding_params
from bioner.generation import Engine, GenerationParams, max_new_tokens_for
from bioner.labels import SCHEMAS, EntitySchema, schema_for
from bioner.prompts import PROMPT_VERSION, build_prompt
from bioner.records import Document, Entity, Passage, Span
from bioner.segment import DEFAULT_MAX_CHARS, segment
from bioner.windows import merge_window_spans, split_windows
from infra import storage
from infra.ingest_store import THROUGH, table_uri
from infra.llm import load_engine
from infra.llm.local import model_id_of
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V1,
    GENERATIONS_V1,
    GENERATIONS_V2,
    PASSAGES_V1,
    SCHEMA_KEY,
    schema_version,
)
from tasks._common import TASK_OPTIONS as _TASK
from tasks._common import table_metadata as _metadata
from tasks.progress import report

log = logging.getLogger(__name__)

TABLES = ("documents", "tombstones", "passages", "generations", "entities", "decode_issues")
DEFAULT_BATCH_TOKENS = 16_384
DEFAULT_CHUNK = 32  # passages per engine call: progress granularity on CPU
DEFAULT_BACKEND = "transformers"


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
    "bioner.model_version",
    "bioner.schema_name",
    "bioner.prompt_version",
    "bioner.max_new_tokens",
    "bioner.engine",
)


def model_version(model: str) -> str:
    """The id of the model folder ``model`` by its content (a model retrained in place is
    another model); ``model`` itself when it is not a folder."""
    return model_id_of(model) if storage.is_dir(model) else model


def annotation_settings(
    passages_uri: str,
    model: str,
    schema: str,
    max_new_tokens: int | None,
    *,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
    version: str | None = None,
) -> dict[str, str]:
    """What an annotation of a shard depends on besides code: its passages and the request.

    The request is what the caller asked for (model folder and its content, schema, token cap,
    engine backend and options), known before any engine is loaded; the engine's effective
    settings go into each generation's cache key instead, so a request that differs only in
    ways that do not change outputs regenerates nothing. ``version``: :func:`model_version`
    of ``model``, when the caller has it already.
    """
    return {
        THROUGH: storage.read_metadata(passages_uri).get(THROUGH, ""),
        "bioner.model": model,
        "bioner.model_version": version if version is not None else model_version(model),
        "bioner.schema_name": schema,
        "bioner.prompt_version": PROMPT_VERSION,
        "bioner.max_new_tokens": str(max_new_tokens or ""),
        "bioner.engine": canonical_json({"backend": backend, "constrained": constrained}),
    }


def is_stale(
    paths: ShardPaths,
    model: str,
    schema: str,
    max_new_tokens: int | None,
    *,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
    version: str | None = None,
) -> bool:
    """Whether the shard has passages and no entities for this request (or older ones)."""
    if not storage.exists(paths.passages):
        return False
    want = annotation_settings(
        paths.passages,
        model,
        schema,
        max_new_tokens,
        backend=backend,
        constrained=constrained,
        version=version,
    )
    have = storage.read_metadata(paths.entities) if storage.exists(paths.entities) else {}
    return any(have.get(key) != value for key, value in want.items())


def stale_shards(
    out: str,
    n_shards: int,
    model: str,
    schema: str,
    max_new_tokens: int | None,
    *,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
) -> list[int]:
    """Shards of ``out`` whose passages have no entities for this request, or older ones."""
    version = model_version(model)
    return [
        shard
        for shard in range(n_shards)
        if is_stale(
            ShardPaths.under(out, shard),
            model,
            schema,
            max_new_tokens,
            backend=backend,
            constrained=constrained,
            version=version,
        )
    ]


# --------------------------------------------------------------------------- segment


def documents_version(documents_uri: str) -> str:
    """What identifies the content of a documents table: the ingest's ``through`` footer, or
    a digest of the file for a table the ingest did not write."""
    through = storage.read_metadata(documents_uri).get(THROUGH)
    if through:
        return through
    digest = hashlib.blake2b(digest_size=12)
    with storage.open_raw(documents_uri) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return f"blake2b:{digest.hexdigest()}"


def passages_current(documents_uri: str, passages_uri: str, max_chars: int) -> bool:
    """Whether ``passages_uri`` holds the passages of these documents at ``max_chars``."""
    if not storage.exists(passages_uri):
        return False
    meta = storage.read_metadata(passages_uri)
    return meta.get(THROUGH) == documents_version(documents_uri) and meta.get(
        "bioner.max_chars"
    ) == str(max_chars)


#: The document columns that segmentation reads.
_SEGMENTED = ["id", "text", "version", "title", "language"]


@task(name="segment", **_TASK)
def segment_documents(
    documents_uri: str, passages_uri: str, run_id: str, max_chars: int = DEFAULT_MAX_CHARS
) -> str:
    """Cut a documents table into passages, for a table that came without them.

    The passages' ``through`` footer is the documents' (see :func:`documents_version`), so
    annotations follow the documents they were made from.
    """
    rows: list[dict[str, Any]] = []
    for batch in storage.iter_batches(documents_uri, DOCUMENTS_V2, _SEGMENTED):
        for row in batch.to_pylist():
            rows.extend(
                dataclasses.asdict(p) for p in segment(Document(**row), max_chars=max_chars)
            )
    meta = _metadata(
        run_id,
        **{THROUGH: documents_version(documents_uri), "bioner.max_chars": str(max_chars)},
    )
    return storage.write_rows(rows, passages_uri, PASSAGES_V1, meta)


# --------------------------------------------------------------------------- generate


@functools.lru_cache(maxsize=1)
def engine_for(
    model: str,
    device: str = "cpu",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
) -> Engine:
    """The engine of this process, loaded once and reused by every generate call.

    ``batch_tokens`` is the transformers backend's batch budget; vLLM schedules its own
    batches (and uses the GPUs it sees, whatever ``device`` says).
    """
    log.info("loading %s on %s with %s", model, device, backend)
    options: dict[str, Any] = {"constrained": constrained}
    if backend == "transformers":
        options["batch_tokens"] = batch_tokens
    return load_engine(model, backend=backend, device=device, **options)


def engine_settings(engine: Engine) -> dict[str, str]:
    """The engine's output-affecting settings (``engine.settings``), as strings; empty when
    the engine declares none."""
    return {str(k): str(v) for k, v in dict(getattr(engine, "settings", {}) or {}).items()}


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
    if not texts:
        return []
    header_tokens = max(engine.count_tokens([t.header for t in schema.types]))
    return [
        base.with_max_new_tokens(
            max_new_tokens_for(n, len(schema.types), header_tokens=header_tokens, cap=cap)
        )
        for n in engine.count_tokens(texts)
    ]


def per_schema_params(
    engine: Engine,
    texts: Sequence[str],
    schemas: Sequence[EntitySchema],
    base: GenerationParams,
    cap: int | None = None,
) -> list[GenerationParams]:
    """:func:`generation_params` of passages that may be asked with different schemas."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(schemas):
        groups.setdefault(s.name, []).append(i)
    params: list[GenerationParams] = [base] * len(texts)
    for indices in groups.values():
        found = generation_params(
            engine, [texts[i] for i in indices], schemas[indices[0]], base, cap
        )
        for i, p in zip(indices, found, strict=True):
            params[i] = p
    return params


#: Tokens kept free of the context for the chat template and special tokens.
_CONTEXT_MARGIN = 32


def context_windows(
    engine: Engine,
    texts: Sequence[str],
    schemas: Sequence[EntitySchema],
    prompts: Sequence[str],
    params: Sequence[GenerationParams],
    base: GenerationParams,
    cap: int | None = None,
) -> list[list[tuple[int, int]]]:
    """The ``[start, end)`` windows to ask for each passage: ``[(0, len)]`` when its prompt and
    longest valid answer fit the model's context, else overlapping windows that do
    (:func:`bioner.windows.split_windows`; spans are merged back at decode). Never truncates.

    ``prompts`` and ``params`` are the passages' own (whole-passage) prompts and parameters.
    """
    whole = [[(0, len(t))] for t in texts]
    context = getattr(engine, "max_context", None)
    if not context or not texts:
        return whole
    prompt_tokens = engine.count_tokens(prompts)
    out = []
    for text, schema, p, n in zip(texts, schemas, params, prompt_tokens, strict=True):
        if n + p.max_new_tokens + _CONTEXT_MARGIN <= context:
            out.append([(0, len(text))])
            continue
        out.append(_fitting_windows(engine, text, schema, base, cap, context))
    return out


def _fitting_windows(
    engine: Engine,
    text: str,
    schema: EntitySchema,
    base: GenerationParams,
    cap: int | None,
    context: int,
) -> list[tuple[int, int]]:
    size = len(text)
    while True:
        size = int(size * 0.75)
        if size < 16:
            raise ValueError(
                f"the model's context of {context} tokens cannot hold the prompt and answer of "
                f"even a 16-character window of this passage: {text[:60]!r}..."
            )
        windows = split_windows(text, size, size // 4)
        parts = [text[a:b] for a, b in windows]
        schemas = [schema] * len(parts)
        params = per_schema_params(engine, parts, schemas, base, cap)
        tokens = engine.count_tokens([build_prompt(t, schema) for t in parts])
        if all(
            n + p.max_new_tokens + _CONTEXT_MARGIN <= context
            for n, p in zip(tokens, params, strict=True)
        ):
            log.info("a passage of %d characters is asked as %d windows", len(text), len(parts))
            return windows


def generations_schema(uri: str) -> pa.Schema:
    """The generations schema a file declares (version 1 files stay readable)."""
    found = storage.read_metadata(uri).get(SCHEMA_KEY.decode(), "")
    return GENERATIONS_V1 if found == schema_version(GENERATIONS_V1) else GENERATIONS_V2


def read_generations(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A generations table of either version (its columns, or ``columns``)."""
    return storage.read_table(uri, generations_schema(uri), columns)


_REUSED = ("cache_key", "run_id", "text", "prompt_tokens", "output_tokens", "finish_reason")


def previous_generations(uri: str) -> dict[str, dict[str, Any]]:
    """The generations a shard already has, by cache key: the cache this shard's run reuses.

    A document's shard never changes, so a rerun or a revised citation finds its passages'
    earlier answers here. Version 1 files have no keys (nothing to reuse); an unreadable file
    is logged and ignored, never trusted.
    """
    if not storage.exists(uri):
        return {}
    try:
        if generations_schema(uri) is not GENERATIONS_V2:
            return {}
        rows = storage.read_table(uri, GENERATIONS_V2, list(_REUSED)).to_pylist()
    except (OSError, pa.ArrowException) as e:
        log.warning("%s: previous generations unreadable, not reused: %s", uri, e)
        return {}
    return {row["cache_key"]: row for row in rows}


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
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
) -> str:
    """Prompt the model once per new request; chunks keep memory flat and feed the progress bar.

    Every passage gets a cache key (:func:`bioner.gencache.cache_key`); a key found among the
    shard's previous generations reuses that answer, and passages with equal keys in the shard
    are generated once. Rows keep passage order; ``cached`` marks the reused ones. Progress
    counts the passages actually generated (and their output tokens).
    """
    entity_schema = schema_of(schema)
    engine = engine_for(model, device, batch_tokens, backend, constrained)
    settings = engine_settings(engine)
    passages = storage.read_table(passages_uri, PASSAGES_V1).to_pylist()
    # Each passage is asked in its own language where the schema has a counterpart in it.
    passage_schemas = [schema_for(entity_schema.name, p["language"]) for p in passages]
    base = GenerationParams()
    # One request per passage, or per window of a passage too long for the model's context.
    whole_texts = [p["text"] for p in passages]
    whole_params = per_schema_params(engine, whole_texts, passage_schemas, base, max_new_tokens)
    whole_prompts = [build_prompt(t, s) for t, s in zip(whole_texts, passage_schemas, strict=True)]
    spans = context_windows(
        engine, whole_texts, passage_schemas, whole_prompts, whole_params, base, max_new_tokens
    )
    owner = [i for i, found in enumerate(spans) for _ in found]
    windows = [w for found in spans for w in found]
    texts = [whole_texts[i][a:b] for i, (a, b) in zip(owner, windows, strict=True)]
    schemas = [passage_schemas[i] for i in owner]
    if len(windows) == len(passages):  # every passage whole: nothing to recompute
        params, prompts = whole_params, whole_prompts
    else:
        params = per_schema_params(engine, texts, schemas, base, max_new_tokens)
        prompts = [build_prompt(text, s) for text, s in zip(texts, schemas, strict=True)]
    requests = [decoding_params(p, s.name, settings) for p, s in zip(params, schemas, strict=True)]
    keys = [
        cache_key(text, engine.model_id, PROMPT_VERSION, request, prompt=prompt)
        for text, prompt, request in zip(texts, prompts, requests, strict=True)
    ]
    found = previous_generations(generations_uri)
    todo: dict[str, int] = {}  # key -> the first passage asking it
    for i, key in enumerate(keys):
        if key not in found and key not in todo:
            todo[key] = i

    made: dict[str, dict[str, Any]] = {}
    tokens = 0
    if todo:
        report("generate", 0, len(todo), tokens=0)
    for chunk in _chunks(list(todo.values()), chunk_size):
        answers = engine.generate(
            [prompts[i] for i in chunk],
            [params[i] for i in chunk],
            targets=[SymbolicTarget.of(texts[i], schemas[i]) for i in chunk],
        )
        for i, g in zip(chunk, answers, strict=True):
            made[keys[i]] = {"run_id": run_id, **dataclasses.asdict(g)}
            tokens += g.output_tokens
        report("generate", len(made), len(todo), tokens=tokens)

    rows: list[dict[str, Any]] = []
    fresh = set(made)
    for i, (a, b), key, request in zip(owner, windows, keys, requests, strict=True):
        p = passages[i]
        answer = made.get(key) or found[key]
        rows.append(
            {
                "doc_id": p["doc_id"],
                "doc_version": p["doc_version"],
                "passage_index": p["index"],
                "window_start": a,
                "window_end": b,
                "cache_key": key,
                "model_id": engine.model_id,
                "prompt_version": PROMPT_VERSION,
                "params": canonical_json(request),
                "run_id": answer["run_id"],
                "text": answer["text"],
                "prompt_tokens": answer["prompt_tokens"],
                "output_tokens": answer["output_tokens"],
                "finish_reason": answer["finish_reason"],
                "cached": key not in fresh,
            }
        )
        fresh.discard(key)  # a repeat of a passage generated above is a reuse
    meta = _metadata(
        run_id,
        **annotation_settings(
            passages_uri,
            model,
            entity_schema.name,
            max_new_tokens,
            backend=backend,
            constrained=constrained,
        ),
        **{
            "bioner.model_id": engine.model_id,
            "bioner.params": repr(base),
            "bioner.engine_settings": canonical_json(settings),
            "bioner.generated": str(len(made)),
        },
    )
    return storage.write_rows(rows, generations_uri, GENERATIONS_V2, meta)


# --------------------------------------------------------------------------- decode


def spans_of(
    passage: Passage, generations: Sequence[dict[str, Any]], schema: EntitySchema
) -> tuple[list[Span], list[DecodeIssue]]:
    """The spans (passage offsets) of a passage's answers: one for the whole passage, or one
    per window (a V1 row, without window columns, is the whole passage), merged."""
    ordered = sorted(generations, key=lambda g: g.get("window_start") or 0)
    windows = [
        (g.get("window_start") or 0, g.get("window_end") or len(passage.text)) for g in ordered
    ]
    found: list[list[Span]] = []
    issues: list[DecodeIssue] = []
    for g, (a, b) in zip(ordered, windows, strict=True):
        spans, problems = symbolic.decode(
            g["text"], passage.text[a:b], schema, finish_reason=g["finish_reason"]
        )
        found.append(spans)
        issues.extend(problems)
    if windows == [(0, len(passage.text))]:
        return found[0], issues
    return merge_window_spans(windows, found), issues


def entities_of(
    passage: Passage,
    document_text: str,
    generations: dict[str, Any] | Sequence[dict[str, Any]],
    schema: EntitySchema,
    run_id: str,
) -> tuple[list[Entity], list[DecodeIssue]]:
    """Decode a passage's generation(s) into entities with document offsets, plus the issues.

    Every entity's text is checked against the document at its offsets: a mismatch is a bug in
    the offsets, never a model error, so it raises.
    """
    rows = [generations] if isinstance(generations, dict) else list(generations)
    generation = rows[0]
    spans, issues = spans_of(passage, rows, schema)
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
    answers: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for g in read_generations(generations_uri).to_pylist():
        answers.setdefault((g["doc_id"], g["doc_version"], g["passage_index"]), []).append(g)
    for key, rows in answers.items():
        passage = passages[key]
        asked = schema_for(entity_schema.name, passage.language)
        found, issues = entities_of(passage, texts[key[:2]], rows, asked, run_id)
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
    for key in ("bioner.model_id", "bioner.engine_settings"):
        meta[key] = settings.get(key, "")
    storage.write_rows(issue_rows, issues_uri, DECODE_ISSUES_V1, meta)
    storage.write_rows(entities, entities_uri, ENTITIES_V1, meta)  # last: marks the shard done
    return entities_uri, issues_uri


# --------------------------------------------------------------------------- summary


def shard_summary(paths: ShardPaths) -> dict[str, Any]:
    """Counts of one finished shard, read from its tables (footers and a few columns).

    ``generated`` passages were answered by the engine in the run that wrote the shard,
    ``cached`` ones reused an answer (see :func:`generate`); the token counts are those the
    engine spent, cached answers excluded.
    """
    generations = read_generations(paths.generations)
    cached = (
        generations["cached"].to_pylist()
        if "cached" in generations.column_names
        else [False] * generations.num_rows
    )
    spent = generations.filter(pa.array([not c for c in cached], pa.bool_()))
    issue_kinds = storage.read_table(paths.decode_issues, DECODE_ISSUES_V1, ["kind"])
    entities = storage.count_rows(paths.entities)
    return {
        "documents": storage.count_rows(paths.documents),
        "tombstones": (
            storage.count_rows(paths.tombstones) if storage.exists(paths.tombstones) else 0
        ),
        "passages": storage.count_rows(paths.passages),
        "generations": generations.num_rows,
        "generated": spent.num_rows,
        "cached": generations.num_rows - spent.num_rows,
        "prompt_tokens": sum(spent["prompt_tokens"].to_pylist()),
        "output_tokens": sum(spent["output_tokens"].to_pylist()),
        "truncated": generations["finish_reason"].to_pylist().count("length"),
        "spans": entities,
        "entities": entities,
        "issues": dict(Counter(issue_kinds["kind"].to_pylist())),
    }
