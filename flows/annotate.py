"""The annotate flow: corpus files in, entity tables out, shard by shard.

First the ingest flow (:mod:`flows.ingest`) brings ``OUT``'s documents, tombstones and passages
up to date; then every shard whose passages have no entities for this request (new or changed
passages, another model, schema or prompt) is generated and decoded, each a Prefect task writing
``OUT/<table>/shard=<k>.parquet``. Within a shard, only passages whose generation cache key is
new are generated (:func:`tasks.annotate.generate`). A summary of counts (generated and cached
passages among them) and time per stage goes to ``OUT/summary.json``. Shards run one after
another in this process so the single engine is loaded once; scale-out (one shard per worker)
comes with the GPU deployment.

:func:`tag_documents` does the same for a documents table already ingested (``bioner tag``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from bioner.prompts import PROMPT_VERSION
from bioner.segment import DEFAULT_MAX_CHARS
from flows.ingest import ingest_corpus
from infra import storage
from infra.ingest_store import THROUGH
from tasks import annotate as t

# Prefect builds a pydantic model of the parameters, whose base class has a ``schema`` method.
warnings.filterwarnings("ignore", r'Field name "schema" in "Annotate_CorpusModel"', UserWarning)
warnings.filterwarnings("ignore", r'Field name "schema" in "Tag_DocumentsModel"', UserWarning)

STAGES = ("ingest", "segment", "generate", "decode")
TAG_STAGES = ("segment", "generate", "decode")
_COUNTS = (
    "documents",
    "tombstones",
    "passages",
    "generations",
    "generated",
    "cached",
    "prompt_tokens",
    "output_tokens",
    "truncated",
    "spans",
    "entities",
)
#: The summary ``bioner tag`` writes next to its tables (``bioner run`` writes summary.json).
TAG_SUMMARY = "tag-summary.json"


class _Clock:
    """Seconds per stage, summed over shards."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.seconds = dict.fromkeys(stages, 0.0)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started


def _annotate(
    shards: dict[int, t.ShardPaths],
    *,
    model: str,
    schema: str,
    run_id: str,
    clock: _Clock,
    device: str,
    max_new_tokens: int | None,
    batch_tokens: int,
    backend: str,
    constrained: bool,
) -> dict[str, Any]:
    """Generate and decode each shard in turn; the counts and provenance of the summary."""
    totals: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    model_ids = set()
    engine_settings = ""
    for paths in shards.values():
        with clock.timed("generate"):
            t.generate(
                paths.passages,
                paths.generations,
                model,
                schema,
                run_id,
                device=device,
                max_new_tokens=max_new_tokens,
                batch_tokens=batch_tokens,
                backend=backend,
                constrained=constrained,
            )
        with clock.timed("decode"):
            t.decode(
                paths.generations,
                paths.passages,
                paths.documents,
                paths.entities,
                paths.decode_issues,
                schema,
                run_id,
            )
        counts = t.shard_summary(paths)
        issues.update(counts.pop("issues"))
        totals.update(counts)
        meta = storage.read_metadata(paths.generations)
        model_ids.add(meta["bioner.model_id"])
        engine_settings = meta.get("bioner.engine_settings", "")
    return {
        "run_id": run_id,
        "model_id": ", ".join(sorted(model_ids)),
        "engine": json.loads(engine_settings) if engine_settings else {},
        "prompt_version": PROMPT_VERSION,
        "schema": schema,
        "shards": list(shards),
        **{k: totals[k] for k in _COUNTS},
        "issues": dict(sorted(issues.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


@flow(name="annotate-corpus", validate_parameters=True)
def annotate_corpus(
    inputs: list[str],
    out: str,
    model: str,
    schema: str = "general",
    device: str = "cpu",
    max_chars: int = DEFAULT_MAX_CHARS,
    max_new_tokens: int | None = None,
    batch_tokens: int = t.DEFAULT_BATCH_TOKENS,
    n_shards: Annotated[int, Field(ge=1, le=65_536)] | None = None,
    backend: str = t.DEFAULT_BACKEND,
    constrained: bool = True,
    workers: Annotated[int, Field(ge=1, le=64)] = 1,
) -> dict[str, Any]:
    """Annotate corpus ``inputs`` with ``model``; tables under ``out``; returns a summary.

    The summary's counts are those of the shards annotated by this run (``generated`` passages
    answered by the engine, ``cached`` ones reused); ``ingest`` holds the ingest's
    reconciliation and the current view of the whole corpus.
    """
    entity_schema = t.schema_of(schema)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    clock = _Clock(STAGES)

    ingested = ingest_corpus(
        inputs=inputs,
        out=out,
        n_shards=n_shards,
        max_chars=max_chars,
        run_id=run_id,
        workers=workers,
    )
    clock.seconds["segment"] = ingested["seconds"]["segment"]
    clock.seconds["ingest"] = ingested["seconds"]["total"] - clock.seconds["segment"]

    stale = t.stale_shards(
        out,
        ingested["n_shards"],
        model,
        entity_schema.name,
        max_new_tokens,
        backend=backend,
        constrained=constrained,
    )
    summary = _annotate(
        {shard: t.ShardPaths.under(out, shard) for shard in stale},
        model=model,
        schema=entity_schema.name,
        run_id=run_id,
        clock=clock,
        device=device,
        max_new_tokens=max_new_tokens,
        batch_tokens=batch_tokens,
        backend=backend,
        constrained=constrained,
    )
    summary["seconds"] = {k: round(v, 3) for k, v in clock.seconds.items()}
    summary["ingest"] = {
        k: ingested[k] for k in ("n_shards", "notes", "inputs", "totals", "current")
    }
    summary["outputs"] = {table: storage.join(out, table) for table in t.TABLES}
    summary["outputs"]["ingest_manifest"] = ingested["outputs"]["manifest"]
    summary["outputs"]["summary"] = storage.join(out, "summary.json")
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary


def document_shards(documents: str) -> dict[int, str]:
    """The ``shard=<k>.parquet`` files of a documents table folder, by shard number."""
    shards = {}
    for name in storage.list_dir(documents):
        number = name.removeprefix("shard=").removesuffix(".parquet")
        if name.startswith("shard=") and name.endswith(".parquet") and number.isdigit():
            shards[int(number)] = storage.join(documents, name)
    return dict(sorted(shards.items()))


def tag_root(documents: str) -> str:
    """The folder holding a documents table folder (``ROOT`` of ``ROOT/documents``)."""
    return documents.rstrip("/").rpartition("/")[0] or "."


def tag_paths(documents: str, out: str | None = None) -> dict[int, tuple[t.ShardPaths, bool]]:
    """Where tagging a documents table reads and writes, per shard, and whether the shard's
    passages are to be cut here.

    ``documents`` is a documents table folder (``ROOT/documents``); its tombstones and passages
    are its siblings in ``ROOT``. Generations, entities and decode issues go to ``out``
    (``ROOT`` by default), and so do passages when ``ROOT`` has none for these documents (none
    at all, or passages of another version of them).
    """
    root = tag_root(documents)
    out = out or root
    paths = {}
    for shard, uri in document_shards(documents).items():
        source = t.ShardPaths.under(root, shard)
        target = t.ShardPaths.under(out, shard)
        given = storage.exists(source.passages) and storage.read_metadata(source.passages).get(
            THROUGH
        ) == t.documents_version(uri)
        passages = source.passages if given else target.passages
        shard_paths = dataclasses.replace(
            target, documents=uri, tombstones=source.tombstones, passages=passages
        )
        paths[shard] = (shard_paths, not given)
    return paths


@flow(name="tag-documents", validate_parameters=True)
def tag_documents(
    documents: str,
    model: str,
    out: str | None = None,
    schema: str = "general",
    device: str = "cpu",
    max_chars: int = DEFAULT_MAX_CHARS,
    max_new_tokens: int | None = None,
    batch_tokens: int = t.DEFAULT_BATCH_TOKENS,
    backend: str = t.DEFAULT_BACKEND,
    constrained: bool = True,
) -> dict[str, Any]:
    """Tag an ingested documents table (folder ``ROOT/documents``) with ``model``.

    Passages are the table's sibling ``ROOT/passages``, or are cut here (at ``max_chars``)
    when it has none. Every shard whose entities do not answer this request is generated and
    decoded as in :func:`annotate_corpus`, generation cache included; tables go to ``out``
    (``ROOT`` by default) with a summary in ``out/tag-summary.json``.
    """
    entity_schema = t.schema_of(schema)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    clock = _Clock(TAG_STAGES)
    target = out or tag_root(documents)
    shards = {}
    for shard, (paths, cut) in tag_paths(documents, out).items():
        if cut and not t.passages_current(paths.documents, paths.passages, max_chars):
            with clock.timed("segment"):
                t.segment_documents(paths.documents, paths.passages, run_id, max_chars)
        shards[shard] = paths
    version = t.model_version(model)
    stale = {
        shard: paths
        for shard, paths in shards.items()
        if t.is_stale(
            paths,
            model,
            entity_schema.name,
            max_new_tokens,
            backend=backend,
            constrained=constrained,
            version=version,
        )
    }
    summary = _annotate(
        stale,
        model=model,
        schema=entity_schema.name,
        run_id=run_id,
        clock=clock,
        device=device,
        max_new_tokens=max_new_tokens,
        batch_tokens=batch_tokens,
        backend=backend,
        constrained=constrained,
    )
    summary["seconds"] = {k: round(v, 3) for k, v in clock.seconds.items()}
    summary["documents_table"] = documents
    summary["n_shards"] = len(shards)
    summary["outputs"] = {
        table: storage.join(target, table) for table in ("generations", "entities", "decode_issues")
    }
    summary["outputs"]["summary"] = storage.join(target, TAG_SUMMARY)
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary
