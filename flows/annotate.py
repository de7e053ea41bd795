"""The annotate flow: PubMed files in, entity tables out, one shard per input file.

For each input: ingest -> segment -> generate -> decode, each a Prefect task writing
``OUT/<table>/<shard>.parquet``; then a summary of counts and time per stage, also written to
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
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bioner.prompts import PROMPT_VERSION
from bioner.segment import DEFAULT_MAX_CHARS
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


def shard_names(inputs: list[str]) -> list[str]:
    """One stable shard name per input: its file name without ``.xml``/``.gz``, made unique."""
    names: list[str] = []
    seen: Counter[str] = Counter()
    for uri in inputs:
        name = storage.local_path(uri).name
        for suffix in (".gz", ".xml"):
            name = name.removesuffix(suffix)
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


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
) -> dict[str, Any]:
    """Annotate PubMed XML ``inputs`` with ``model``; tables under ``out``; returns a summary."""
    entity_schema = t.schema_of(schema)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds[stage] += time.perf_counter() - started

    totals: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    shards = []
    for source, shard in zip(inputs, shard_names(inputs), strict=True):
        paths = t.ShardPaths.under(out, shard)
        with timed("ingest"):
            t.ingest(source, paths.documents, paths.tombstones, run_id)
        with timed("segment"):
            t.segment(paths.documents, paths.passages, run_id, max_chars)
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
        shards.append(shard)

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
        "outputs": {table: storage.join(out, table) for table in t.TABLES},
    }
    summary["outputs"]["summary"] = storage.join(out, "summary.json")
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary
