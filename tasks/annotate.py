"""Prefect tasks of the annotate flow: generate and decode, one task per stage per shard.

Each task reads the previous stage's table by URI, calls the pure code in ``bioner`` (and the
engine in ``infra``), writes its own table atomically, and returns the URI it wrote. Tables are
folders of per-shard Parquet files, ``OUT/<table>/shard=<k>.parquet``; documents, tombstones and
passages come from the ingest (:mod:`tasks.ingest`), or passages from :func:`segment_documents`
for a documents table that came without them.

Generation is cached per passage (:func:`generate`): the shard's previous generations table is
the cache, so a rerun, another request that changes no output, or a revised citation whose
passages are mostly unchanged regenerates only the passages whose cache key is new. While a
shard is generated, each chunk of answers is committed to ``OUT/_work/generations/shard=<k>/``
(never read as a table: only as more cache), so a run killed part-way loses at most one chunk.

Retries: only on transient errors (network, time-outs, I/O hiccups), with exponential backoff;
bad input and bugs never retry. Each task records in its table's footer when its work started
and how long it took, so a run's summary has time per stage however the tasks were scheduled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple

import pyarrow as pa
from prefect import task

from bioner.codec import symbolic
from bioner.codec.issues import DecodeIssue
from bioner.constraint import SymbolicTarget
from bioner.gencache import cache_key, canonical_json, decoding_params
from bioner.generation import Engine, GenerationParams, max_new_tokens_for
from bioner.labels import EntitySchema, get_schema, request_parts, schema_for
from bioner.lexicon import Lexicon
from bioner.prompts import PROMPT_VERSION, build_prompt
from bioner.records import Document, Entity, Passage, Span
from bioner.rules import (
    ABBREVIATION,
    LEXICON,
    DecodeRules,
    Sourced,
    apply_to_document,
    apply_to_passage,
)
from bioner.segment import DEFAULT_MAX_CHARS, segment
from bioner.windows import merge_window_spans, split_windows
from infra import s3, storage
from infra.ingest_store import THROUGH, table_uri
from infra.lexicon import lexicon_setting, read_lexicons
from infra.llm import load_engine
from infra.llm.local import model_id_of, prompt_version, request_groups
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V3,
    GENERATIONS_V1,
    GENERATIONS_V2,
    PASSAGES_V1,
    SCHEMA_KEY,
    schema_version,
)
from tasks._common import RETRY_OPTIONS as _RETRY
from tasks._common import TASK_OPTIONS as _TASK
from tasks._common import table_metadata as _metadata
from tasks.progress import report

log = logging.getLogger(__name__)

TABLES = ("documents", "tombstones", "passages", "generations", "entities", "decode_issues")
DEFAULT_BATCH_TOKENS = 16_384
#: Passages per engine call, and per committed chunk of a shard (the unit a resumed run keeps):
#: larger calls batch better (README, Figures); 128 keeps a chunk under a minute on 2 cores.
DEFAULT_CHUNK = 128
DEFAULT_BACKEND = "transformers"
#: Work in progress of a shard, beside the tables: ``OUT/_work/<table>/shard=<k>/``.
WORK = "_work"
#: Footer keys of the stage timing every task writes (seconds since the epoch, seconds).
STARTED, SECONDS = "bioner.stage.started", "bioner.stage.seconds"
#: Footer key: answers of this shard recovered from an interrupted run's committed chunks.
RESUMED = "bioner.resumed"

#: One committed chunk of a shard's generation in progress: the answers, by cache key.
GENERATION_CHUNKS_V1 = pa.schema(
    [
        pa.field("cache_key", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
    ],
    metadata={SCHEMA_KEY: b"generation_chunks/1"},
)


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
    "bioner.lexicon",
    "bioner.decode_rules",
)


def _entity_order(e: Entity) -> tuple[int, int, str]:
    return e.start, e.end, e.label


def model_prompt_version(model: str) -> str:
    """The prompt version ``model`` answers (its marker's; the instruction prompt otherwise)."""
    return prompt_version(model) if storage.is_dir(model) else PROMPT_VERSION


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
    rules: str = "",
) -> dict[str, str]:
    """What an annotation of a shard depends on besides code: its passages and the request.

    The request is what the caller asked for (model folder and its content, schema, token cap,
    engine backend and options, the decode rules ``rules`` (:meth:`DecodeRules.parse`) and
    the model's training lexicon when they use it), known before
    any engine is loaded; the engine's effective settings go into each generation's cache key
    instead, so a request that differs only in ways that do not change outputs regenerates
    nothing (a new lexicon decodes again and reuses every answer). ``version``:
    :func:`model_version` of ``model``, when the caller has it already.
    """
    return {
        THROUGH: storage.read_metadata(passages_uri).get(THROUGH, ""),
        "bioner.model": model,
        "bioner.model_version": version if version is not None else model_version(model),
        "bioner.schema_name": schema,
        "bioner.prompt_version": model_prompt_version(model),
        "bioner.max_new_tokens": str(max_new_tokens or ""),
        "bioner.engine": canonical_json({"backend": backend, "constrained": constrained}),
        "bioner.lexicon": lexicon_setting(model) if uses_lexicon(rules, schema) else "",
        "bioner.decode_rules": rules_setting(rules, schema),
    }


def rules_setting(rules: str, schema: str) -> str:
    """The decode rules a request asks (:meth:`bioner.rules.DecodeRules.setting`): of each
    language's counterpart of ``schema`` where their defaults differ (``general``:
    ``general: ...; general-zh: ...``)."""
    asked: dict[str, str] = {}
    for language in ("en", "zh"):
        try:
            name = schema_for(schema, language).name
        except ValueError:  # a restricted schema none of whose types the language has
            continue
        asked[name] = DecodeRules.parse(rules, name).setting()
    if len(set(asked.values())) <= 1:
        return DecodeRules.parse(rules, schema).setting()
    return "; ".join(f"{name}: {setting}" for name, setting in asked.items())


def uses_lexicon(rules: str, schema: str) -> bool:
    """Whether the decode rules ``rules`` asked with ``schema`` apply the training lexicon."""
    return DecodeRules.parse(rules, schema).lexicon


def is_stale(
    paths: ShardPaths,
    model: str,
    schema: str,
    max_new_tokens: int | None,
    *,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
    version: str | None = None,
    rules: str = "",
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
        rules=rules,
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
    rules: str = "",
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
            rules=rules,
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


@dataclass(frozen=True)
class EngineKey:
    """What makes two engines the same: the model and every setting it is built with."""

    model: str
    device: str = "cpu"
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    backend: str = DEFAULT_BACKEND
    constrained: bool = True


_engines: dict[EngineKey, Engine] = {}
#: Held while an engine is built or used: one engine per process, one batch at a time on it
#: (tokenizers and accelerators are not shared safely between threads of a task runner).
engine_lock = threading.RLock()


def engine_for(
    model: str,
    device: str = "cpu",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
) -> Engine:
    """The engine of this process for these settings, built on first use and then reused by
    every generate call of the process (a Ray or Dask worker keeps it between tasks).

    Only one is kept: asking for other settings drops the previous engine first, so a worker
    never holds two models in memory. ``batch_tokens`` is the transformers backend's batch
    budget; vLLM schedules its own batches (and uses the GPUs it sees, whatever ``device``
    says).
    """
    key = EngineKey(model, device, batch_tokens, backend, constrained)
    with engine_lock:
        if key not in _engines:
            _engines.clear()
            log.info("loading %s on %s with %s", model, device, backend)
            options: dict[str, Any] = {"constrained": constrained}
            if backend == "transformers":
                options["batch_tokens"] = batch_tokens
            _engines[key] = load_engine(model, backend=backend, device=device, **options)
        return _engines[key]


def holding_engine() -> threading.RLock:
    """The lock of this process's engine, to hold while using it.

    Task bodies reach it through this function rather than by name: a task's function may
    travel by value to a Ray or Dask worker, and a lock cannot be pickled.
    """
    return engine_lock


def loaded_engines() -> list[EngineKey]:
    """The engines this process holds (at most one)."""
    with engine_lock:
        return list(_engines)


def engine_settings(engine: Engine) -> dict[str, str]:
    """The engine's output-affecting settings (``engine.settings``), as strings; empty when
    the engine declares none."""
    return {str(k): str(v) for k, v in dict(getattr(engine, "settings", {}) or {}).items()}


def schema_of(name: str) -> EntitySchema:
    """The entity schema called ``name`` (:func:`bioner.labels.get_schema`: ``general`` or
    ``general[Gene,Species]``); a ValueError naming the known schemas or types otherwise."""
    return get_schema(name)


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
        version = engine.prompt_version
        tokens = engine.count_tokens([build_prompt(t, schema, version) for t in parts])
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


def work_uri(table_uri: str) -> str:
    """Where a shard table's work in progress goes: ``OUT/_work/<table>/shard=<k>/`` for
    ``OUT/<table>/shard=<k>.parquet``. Outside the table's folder, so nothing that reads
    tables ever meets it."""
    root, _, name = table_uri.rstrip("/").rpartition("/")
    out, _, table = root.rpartition("/")
    return storage.join(out or ".", WORK, table, name.removesuffix(".parquet"))


def saved_chunks(work: str) -> dict[str, dict[str, Any]]:
    """The answers an interrupted generation of this shard committed, by cache key.

    Only committed chunk files count (``part-*.parquet``; a chunk being written has a
    temporary hidden name until it is renamed whole). An unreadable one is logged and
    skipped: its passages are simply generated again.
    """
    found: dict[str, dict[str, Any]] = {}
    for name in storage.list_dir(work):
        if not (name.startswith("part-") and name.endswith(".parquet")):
            continue
        uri = storage.join(work, name)
        try:
            rows = storage.read_table(uri, GENERATION_CHUNKS_V1).to_pylist()
        except (OSError, ValueError, pa.ArrowException) as e:
            log.warning("%s: saved chunk unreadable, its passages are generated again: %s", uri, e)
            continue
        found.update((row["cache_key"], row) for row in rows)
    return found


def _timing(started: float, clock: float) -> dict[str, str]:
    """The footer keys of a stage that began at ``started`` (epoch) and ``clock`` (perf)."""
    return {STARTED: f"{started:.6f}", SECONDS: f"{time.perf_counter() - clock:.6f}"}


@task(name="generate", **_RETRY, **_TASK)
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
    rules: str = "",
) -> str:
    """Prompt the model once per new request; chunks keep memory flat and feed the progress bar.

    Every passage gets a cache key (:func:`bioner.gencache.cache_key`); a key found among the
    shard's previous generations reuses that answer, and passages with equal keys in the shard
    are generated once. Rows keep passage order; ``cached`` marks the reused ones. Progress
    counts the passages actually generated (and their output tokens).

    Each chunk's answers are committed to :func:`work_uri` as they come; a later attempt
    (a retry, or a new run after a crash) takes them up as answers of this shard's generation
    (not ``cached``: they were never part of a committed table), so the table it commits is the
    one an uninterrupted run would have written. The chunks are removed once it is committed.
    """
    entity_schema = schema_of(schema)
    work = work_uri(generations_uri)
    with holding_engine():  # one shard at a time on this process's engine
        started, clock = time.time(), time.perf_counter()
        engine = engine_for(model, device, batch_tokens, backend, constrained)
        table, made, resumed = _generate_rows(
            engine,
            passages_uri,
            generations_uri,
            work,
            entity_schema,
            request_groups(model) if storage.is_dir(model) else {},
            run_id,
            max_new_tokens,
            chunk_size,
        )
        settings = engine_settings(engine)
        meta = _metadata(
            run_id,
            **annotation_settings(
                passages_uri,
                model,
                entity_schema.name,
                max_new_tokens,
                backend=backend,
                constrained=constrained,
                rules=rules,
            ),
            **{
                "bioner.model_id": engine.model_id,
                "bioner.params": repr(GenerationParams()),
                "bioner.engine_settings": canonical_json(settings),
                "bioner.generated": str(made),
                RESUMED: str(resumed),
            },
        )
        meta |= _timing(started, clock)
    uri = storage.write_rows(table, generations_uri, GENERATIONS_V2, meta)
    if storage.exists(work):
        storage.remove_tree(work)  # committed: the chunks are no longer needed
    return uri


def prune_work(out: str) -> None:
    """Remove ``out/_work`` and its table folders where they are empty (after a run: while
    shards run, another task may be about to write into them)."""
    root = storage.join(out, WORK)
    if s3.is_s3(out) or not storage.is_dir(root):
        return
    for folder in [*sorted(storage.local_path(root).iterdir()), storage.local_path(root)]:
        # Not empty: an interrupted shard's chunks, kept for the next run.
        with contextlib.suppress(OSError):
            folder.rmdir()


def _generate_rows(
    engine: Engine,
    passages_uri: str,
    generations_uri: str,
    work: str,
    entity_schema: EntitySchema,
    groups: Mapping[str, Sequence[Sequence[str]]],
    run_id: str,
    max_new_tokens: int | None,
    chunk_size: int,
) -> tuple[list[dict[str, Any]], int, int]:
    """The generation rows of a shard, the answers made for it and those of them resumed;
    ``groups``: how the model wants each schema asked (:func:`request_groups`)."""
    settings = engine_settings(engine)
    passages = storage.read_table(passages_uri, PASSAGES_V1).to_pylist()
    # Each passage is asked in its own language where the schema has a counterpart in it, in
    # the parts the model wants the schema asked (one, the whole schema, unless it says).
    units = [
        (i, part)
        for i, p in enumerate(passages)
        for part in request_parts(entity_schema.name, p["language"], groups)
    ]
    unit_schemas = [part for _, part in units]
    base = GenerationParams()
    # One request per part, or per window of a passage too long for the model's context.
    whole_texts = [passages[i]["text"] for i, _ in units]
    whole_params = per_schema_params(engine, whole_texts, unit_schemas, base, max_new_tokens)
    whole_prompts = [
        build_prompt(t, s, engine.prompt_version)
        for t, s in zip(whole_texts, unit_schemas, strict=True)
    ]
    spans = context_windows(
        engine, whole_texts, unit_schemas, whole_prompts, whole_params, base, max_new_tokens
    )
    owner = [i for i, found in enumerate(spans) for _ in found]
    windows = [w for found in spans for w in found]
    texts = [whole_texts[i][a:b] for i, (a, b) in zip(owner, windows, strict=True)]
    schemas = [unit_schemas[i] for i in owner]
    if len(windows) == len(units):  # every passage whole: nothing to recompute
        params, prompts = whole_params, whole_prompts
    else:
        params = per_schema_params(engine, texts, schemas, base, max_new_tokens)
        prompts = [
            build_prompt(text, s, engine.prompt_version)
            for text, s in zip(texts, schemas, strict=True)
        ]
    requests = [decoding_params(p, s.name, settings) for p, s in zip(params, schemas, strict=True)]
    keys = [
        cache_key(text, engine.model_id, engine.prompt_version, request, prompt=prompt)
        for text, prompt, request in zip(texts, prompts, requests, strict=True)
    ]
    found = previous_generations(generations_uri)
    todo: dict[str, int] = {}  # key -> the first passage asking it
    for i, key in enumerate(keys):
        if key not in found and key not in todo:
            todo[key] = i

    saved = saved_chunks(work) if todo else {}
    made: dict[str, dict[str, Any]] = {k: saved[k] for k in todo if k in saved}
    resumed = len(made)
    tokens = sum(row["output_tokens"] for row in made.values())
    if todo:
        report("generate", len(made), len(todo), tokens=tokens)
    remaining = [i for key, i in todo.items() if key not in made]
    for chunk in _chunks(remaining, chunk_size):
        answers = engine.generate(
            [prompts[i] for i in chunk],
            [params[i] for i in chunk],
            targets=[SymbolicTarget.of(texts[i], schemas[i]) for i in chunk],
        )
        rows = []
        for i, g in zip(chunk, answers, strict=True):
            rows.append({"cache_key": keys[i], "run_id": run_id, **dataclasses.asdict(g)})
            tokens += g.output_tokens
        part = storage.join(work, f"part-{uuid.uuid4().hex}.parquet")
        storage.write_rows(rows, part, GENERATION_CHUNKS_V1, _metadata(run_id))
        made.update((row["cache_key"], row) for row in rows)
        report("generate", len(made), len(todo), tokens=tokens)

    table: list[dict[str, Any]] = []
    fresh = set(made)
    for u, (a, b), key, request in zip(owner, windows, keys, requests, strict=True):
        p = passages[units[u][0]]
        answer = made.get(key) or found[key]
        table.append(
            {
                "doc_id": p["doc_id"],
                "doc_version": p["doc_version"],
                "passage_index": p["index"],
                "window_start": a,
                "window_end": b,
                "cache_key": key,
                "model_id": engine.model_id,
                "prompt_version": engine.prompt_version,
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
    return table, len(made), resumed


def sweep_partial(out: str) -> int:
    """Remove the temporary files killed runs left under ``out`` (annotation and ingest tables,
    work chunks), none of a live writer: :func:`infra.storage.remove_orphan_temps`.

    A write goes to a hidden temporary file beside its target and is renamed into place whole,
    so such a file is never read as a table; after a ``kill -9`` it stays behind. Returns the
    number removed. S3 writes leave nothing in the bucket (they go up whole).
    """
    return storage.remove_orphan_temps(out)


# --------------------------------------------------------------------------- decode


def part_of(generation: Mapping[str, Any], schema: EntitySchema) -> EntitySchema:
    """The schema a generation row answers: the part of ``schema`` its request asked (its
    ``params``' schema, :meth:`bioner.labels.EntitySchema.parts`), else ``schema`` whole."""
    params = generation.get("params")
    name = json.loads(params).get("schema") if params else generation.get("schema")
    if not name or name == schema.name:
        return schema
    part = get_schema(name)
    if part.base != schema.base or not set(part.labels) <= set(schema.labels):
        raise ValueError(f"a generation asked {name}, which is no part of {schema.name}")
    return part


def spans_of(
    passage: Passage, generations: Sequence[dict[str, Any]], schema: EntitySchema
) -> tuple[list[Span], list[DecodeIssue]]:
    """The spans (passage offsets) of a passage's answers, ``schema`` asked in one request or
    in parts (:func:`part_of`): per part one answer for the whole passage, or one per window
    (a V1 row, without window columns, is the whole passage), merged."""
    by_part: dict[EntitySchema, list[dict[str, Any]]] = {}
    for g in generations:
        by_part.setdefault(part_of(g, schema), []).append(g)
    spans: list[Span] = []
    issues: list[DecodeIssue] = []
    for part, rows in by_part.items():
        found, problems = _part_spans(passage, rows, part)
        spans.extend(found)
        issues.extend(problems)
    if len(by_part) > 1:
        spans.sort(key=lambda s: (s.start, s.end, s.label))
    return spans, issues


def _part_spans(
    passage: Passage, generations: Sequence[dict[str, Any]], schema: EntitySchema
) -> tuple[list[Span], list[DecodeIssue]]:
    """The spans of the answers to one request of a passage, its windows merged."""
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


@functools.lru_cache(maxsize=4)
def lexicons_of(model: str, setting: str) -> dict[str, Lexicon]:
    """The training lexicons of model folder ``model`` by schema, read once per process and
    ``setting`` (:func:`infra.lexicon.lexicon_setting`: a new file is read again)."""
    return read_lexicons(model) or {}


def lexicon_entities(
    passage: Passage,
    found: Sequence[Entity],
    schema: EntitySchema,
    lexicons: Mapping[str, Lexicon],
    generation: dict[str, Any],
    run_id: str,
    rules: DecodeRules | None = None,
) -> tuple[list[Entity], list[Entity], list[Entity]]:
    """The passage rules of the decode stage (:func:`bioner.rules.apply_to_passage`) on the
    passage's decoded entities ``found``, asked in ``schema``: those that stand, the entities
    the lexicon gives (gaps filled, labels corrected, mentions completed), with the provenance
    of the passage's ``generation`` (the lexicon is the model's), and those dropped."""
    rules = rules if rules is not None else DecodeRules.parse("", schema.name)
    own = {Span(e.start - passage.start, e.end - passage.start, e.label): e for e in found}
    result = apply_to_passage(passage.text, list(own), schema, lexicons, rules)
    added = [
        _derived(passage, generation, s.shifted(passage.start), passage.text, LEXICON, run_id)
        for s in result.added
    ]
    return [own[s] for s in result.kept], added, [own[s] for s in result.dropped]


def _derived(
    passage: Passage,
    generation: dict[str, Any],
    span: Span,
    passage_text: str,
    source: str,
    run_id: str,
) -> Entity:
    """An entity at document offsets ``span`` of ``passage`` that a rule, not the tagger,
    gave (``source``), with the provenance of ``generation``."""
    start, end = span.start - passage.start, span.end - passage.start
    return Entity(
        doc_id=passage.doc_id,
        doc_version=passage.doc_version,
        passage_index=passage.index,
        start=span.start,
        end=span.end,
        text=passage_text[start:end],
        label=span.label,
        model_id=generation["model_id"],
        prompt_version=generation["prompt_version"],
        run_id=run_id,
        source=source,
    )


#: One passage of a document as decode holds it: the passage, its (first) generation row for
#: provenance, and the entities found in it.
DocumentPart = tuple[Passage, dict[str, Any], list[Entity]]


class DocumentEntities(NamedTuple):
    """:func:`document_entities`' answer: the document's entities, and how many of the
    passages' entities it dropped as spans on a short form the document defines on no
    mention."""

    entities: list[Entity]
    redefined: int


def document_entities(
    parts: Sequence[DocumentPart],
    document_text: str,
    run_id: str,
    rules: DecodeRules | None = None,
) -> DocumentEntities:
    """A document's entities: those found in its passages ``parts`` (in document order), after
    the document rules of the decode stage (:func:`bioner.rules.apply_to_document`: spans on a
    short form defined on no mention dropped, spans on a defined short form relabelled, later
    uses of a defined short form added, with ``source`` ``abbreviation``; a use across two
    passages is left out)."""
    rules = rules if rules is not None else DecodeRules()
    found = [e for _, _, part in parts for e in part]
    by_span = {Span(e.start, e.end, e.label): e for e in found}
    by_extent = {(e.start, e.end): e for e in found}
    sourced = [Sourced(Span(e.start, e.end, e.label), e.source) for e in found]
    bounds = [(p.start, p.end) for p, _, _ in parts]
    result = apply_to_document(document_text, sourced, rules, bounds)
    out = []
    for item in result.spans:
        entity = by_span.get(item.span)
        if entity is not None and entity.source == item.source:
            out.append(entity)
        elif (origin := by_extent.get((item.span.start, item.span.end))) is not None:
            # Relabelled by the document's definition: the same entity under that label.
            out.append(dataclasses.replace(origin, label=item.span.label, source=item.source))
        else:  # a later use of a short form
            at = next(p for p in parts if p[0].start <= item.span.start < p[0].end)
            out.append(_derived(at[0], at[1], item.span, at[0].text, item.source, run_id))
    return DocumentEntities(out, result.redefined)


@task(name="decode", **_RETRY, **_TASK)
def decode(
    generations_uri: str,
    passages_uri: str,
    documents_uri: str,
    entities_uri: str,
    issues_uri: str,
    schema: str,
    run_id: str,
    model: str | None = None,
    rules: str = "",
) -> tuple[str, str]:
    """Turn generations into entities (document offsets) and a table of decode issues.

    The decode rules (:mod:`bioner.rules`, ``rules`` as :meth:`DecodeRules.parse` reads it,
    on the defaults of each passage's schema) run on the decoded spans: per passage the shape
    check and the training lexicon of the model folder ``model`` (when it has one; entities
    it gives have ``source`` ``lexicon``, :func:`lexicon_entities`), then per document the
    abbreviation rules (``source`` ``abbreviation``, :func:`document_entities`).
    """
    started, clock = time.time(), time.perf_counter()
    entity_schema = schema_of(schema)
    setting = lexicon_setting(model) if model and uses_lexicon(rules, schema) else ""
    lexicons = lexicons_of(model, setting) if setting else {}
    decode_rules: dict[str, DecodeRules] = {}  # by the schema asked of a passage
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
    by_document: dict[tuple[str, int], list[DocumentPart]] = {}
    document_rules: dict[tuple[str, int], DecodeRules] = {}
    vetoed = 0  # decoded entities the decode rules dropped (shape, lexicon)
    redefined = 0  # entities on short forms their document defines on no mention
    for key, rows in answers.items():
        passage = passages[key]
        asked = schema_for(entity_schema.name, passage.language)
        chosen = decode_rules.setdefault(asked.name, DecodeRules.parse(rules, asked.name))
        found, issues = entities_of(passage, texts[key[:2]], rows, asked, run_id)
        kept, added, dropped = lexicon_entities(
            passage, found, asked, lexicons, rows[0], run_id, chosen
        )
        found, vetoed = kept + added, vetoed + len(dropped)
        by_document.setdefault(key[:2], []).append((passage, rows[0], found))
        document_rules.setdefault(key[:2], chosen)
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
    for key, parts in by_document.items():
        found, dropped_here = document_entities(parts, texts[key], run_id, document_rules[key])
        redefined += dropped_here
        entities.extend(dataclasses.asdict(e) for e in sorted(found, key=_entity_order))
    # The generations' settings go on: they say which passages and request these answer.
    settings = storage.read_metadata(generations_uri)
    meta = _metadata(run_id, **{k: settings.get(k, "") for k in _SETTINGS})
    for key in ("bioner.model_id", "bioner.engine_settings"):
        meta[key] = settings.get(key, "")
    # The lexicon this decode applied (generate recorded the one asked for).
    meta["bioner.lexicon"] = setting
    meta["bioner.decode_rules"] = rules_setting(rules, entity_schema.name)
    meta["bioner.lexicon_entities"] = str(sum(e["source"] == LEXICON for e in entities))
    meta["bioner.lexicon_dropped"] = str(vetoed)
    meta["bioner.abbreviation_entities"] = str(sum(e["source"] == ABBREVIATION for e in entities))
    meta["bioner.abbreviation_dropped"] = str(redefined)
    meta |= _timing(started, clock)
    storage.write_rows(issue_rows, issues_uri, DECODE_ISSUES_V1, meta)
    storage.write_rows(entities, entities_uri, ENTITIES_V3, meta)  # last: marks the shard done
    return entities_uri, issues_uri


# --------------------------------------------------------------------------- summary


def shard_summary(paths: ShardPaths) -> dict[str, Any]:
    """Counts of one finished shard, read from its tables (footers and a few columns).

    ``generated`` passages were answered by the engine in the run that wrote the shard
    (``resumed`` of them recovered from an interrupted attempt's chunks), ``cached`` ones
    reused an answer (see :func:`generate`); the token counts are those the engine spent,
    cached answers excluded. ``lossy_issues``: decode issues that cost or moved a span;
    ``timing``: ``{stage: (started, seconds)}`` from the footers of the tasks that wrote it.
    """
    generations = read_generations(paths.generations)
    cached = (
        generations["cached"].to_pylist()
        if "cached" in generations.column_names
        else [False] * generations.num_rows
    )
    spent = generations.filter(pa.array([not c for c in cached], pa.bool_()))
    issues = storage.read_table(paths.decode_issues, DECODE_ISSUES_V1, ["kind", "lossy"])
    entities = storage.count_rows(paths.entities)
    generated_meta = storage.read_metadata(paths.generations)
    decoded_meta = storage.read_metadata(paths.entities)
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
        "resumed": int(generated_meta.get(RESUMED, 0)),
        "spans": entities,
        "entities": entities,
        "lexicon_entities": int(decoded_meta.get("bioner.lexicon_entities", 0)),
        "abbreviation_entities": int(decoded_meta.get("bioner.abbreviation_entities", 0)),
        "lexicon_dropped": int(decoded_meta.get("bioner.lexicon_dropped", 0)),
        "abbreviation_dropped": int(decoded_meta.get("bioner.abbreviation_dropped", 0)),
        "lossy_issues": issues["lossy"].to_pylist().count(True),
        "issues": dict(Counter(issues["kind"].to_pylist())),
        "timing": {
            stage: (float(meta[STARTED]), float(meta[SECONDS]))
            for stage, meta in (("generate", generated_meta), ("decode", decoded_meta))
            if STARTED in meta and SECONDS in meta
        },
    }
