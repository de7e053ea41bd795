"""The annotate flow: corpus files in, entity tables out, shard by shard.

First the ingest flow (:mod:`flows.ingest`) brings ``OUT``'s documents, tombstones and passages
up to date; then every shard whose passages have no entities for this request (new or changed
passages, another model, schema or prompt) is generated and decoded, each a Prefect task writing
``OUT/<table>/shard=<k>.parquet``. A summary of counts and time per stage goes to
``OUT/summary.json``. Shards run one after another in this process so the single engine is
loaded once; scale-out (one shard per worker) comes with the GPU deployment.
"""

from __future__ import annotations

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
from tasks import annotate as t

# Prefect builds a pydantic model of the parameters, whose base class has a ``schema`` method.
warnings.filterwarnings("ignore", r'Field name "schema" in "Annotate_CorpusModel"', UserWarning)

STAGES = ("ingest", "segment", "generate", "decode")
_COUNTS = (
    "documents",
    "tombstones",
    "passages",
    "generations",
    "prompt_tokens",
    "output_tokens",
    "truncated",
    "spans",
    "entities",
)


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
) -> dict[str, Any]:
    """Annotate corpus ``inputs`` with ``model``; tables under ``out``; returns a summary.

    The summary's counts are those of the shards annotated by this run; ``ingest`` holds the
    ingest's reconciliation and the current view of the whole corpus.
    """
    entity_schema = t.schema_of(schema)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds[stage] += time.perf_counter() - started

    ingested = ingest_corpus(
        inputs=inputs, out=out, n_shards=n_shards, max_chars=max_chars, run_id=run_id
    )
    seconds["segment"] = ingested["seconds"]["segment"]
    seconds["ingest"] = ingested["seconds"]["total"] - seconds["segment"]

    totals: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    shards = t.stale_shards(out, ingested["n_shards"], model, entity_schema.name, max_new_tokens)
    for shard in shards:
        paths = t.ShardPaths.under(out, shard)
        with timed("generate"):
            t.generate(
                paths.passages,
                paths.generations,
                model,
                entity_schema.name,
                run_id,
                device=device,
                max_new_tokens=max_new_tokens,
                batch_tokens=batch_tokens,
            )
        with timed("decode"):
            t.decode(
                paths.generations,
                paths.passages,
                paths.documents,
                paths.entities,
                paths.decode_issues,
                entity_schema.name,
                run_id,
            )
        shard_summary = t.shard_summary(paths)
        issues.update(shard_summary.pop("issues"))
        totals.update(shard_summary)

    model_ids = {
        storage.read_metadata(t.ShardPaths.under(out, shard).generations)["bioner.model_id"]
        for shard in shards
    }
    summary: dict[str, Any] = {
        "run_id": run_id,
        "model_id": ", ".join(sorted(model_ids)),
        "prompt_version": PROMPT_VERSION,
        "schema": entity_schema.name,
        "shards": shards,
        **{k: totals[k] for k in _COUNTS},
        "issues": dict(sorted(issues.items(), key=lambda kv: (-kv[1], kv[0]))),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "ingest": {k: ingested[k] for k in ("n_shards", "notes", "inputs", "totals", "current")},
        "outputs": {table: storage.join(out, table) for table in t.TABLES},
    }
    summary["outputs"]["ingest_manifest"] = ingested["outputs"]["manifest"]
    summary["outputs"]["summary"] = storage.join(out, "summary.json")
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary
