"""The annotate flow: corpus files in, entity tables out, shard by shard.

First the ingest flow (:mod:`flows.ingest`) brings ``OUT``'s documents, tombstones and passages
up to date; then every shard whose passages have no entities for this request (new or changed
passages, another model, schema or prompt: :func:`tasks.annotate.is_stale`, a check on the
tables' content versions that holds across flow runs) is generated and decoded by the subflow
:func:`annotate_shards`: one generate and one decode task per shard, submitted to the task
runner that configuration names (:mod:`flows.runners`: threads here, Ray or Dask), at most
``max_concurrency`` shards in flight, the decode of a shard taking its generations' URI from
the generate task. Within a shard, only passages whose generation cache key is new are
generated (:func:`tasks.annotate.generate`), and a shard interrupted part-way resumes from its
committed chunks.

A summary of counts, a table per stage (:mod:`flows.report`) and the time split between stages
and orchestration go to ``OUT/summary.json`` and to a Markdown artifact of the flow run.

:func:`tag_documents` does the same for a documents table already ingested (``bioner tag``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
import warnings
from collections import Counter
from typing import Annotated, Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import wait
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field

from bioner.segment import DEFAULT_MAX_CHARS
from flows import report
from flows.ingest import ingest_corpus
from flows.runners import RunnerSettings, gpu_placement, is_gpu, task_runner
from infra import storage
from infra.ingest_store import THROUGH
from infra.llm.local import check_trained_schema
from tasks import annotate as t
from tasks._common import GPU_TAG
from tasks.select import SELECTED_TABLE, select_shard, selection_is_current, selection_summary

log = logging.getLogger(__name__)

# Prefect builds a pydantic model of the parameters, whose base class has a ``schema`` method.
for _name in ("Annotate_CorpusModel", "Tag_DocumentsModel", "Annotate_ShardsModel"):
    warnings.filterwarnings("ignore", f'Field name "schema" in "{_name}"', UserWarning)

_COUNTS = (
    "documents",
    "tombstones",
    "passages",
    "generations",
    "generated",
    "cached",
    "resumed",
    "prompt_tokens",
    "output_tokens",
    "truncated",
    "spans",
    "entities",
    "lexicon_entities",
    "abbreviation_entities",
    "lexicon_dropped",
    "abbreviation_dropped",
    "lossy_issues",
)
#: The summary ``bioner tag`` writes next to its tables (``bioner run`` writes summary.json).
TAG_SUMMARY = "tag-summary.json"
#: The key of the flow run's summary artifact (the latest of each key is shown first).
ARTIFACT_KEY = "bioner-run-summary"
DEFAULT_CONCURRENCY = 4


@dataclasses.dataclass(frozen=True)
class Request:
    """What every shard of a run is annotated with (the flows' parameters, validated)."""

    model: str
    schema: str
    run_id: str
    device: str = "cpu"
    max_new_tokens: int | None = None
    batch_tokens: int = t.DEFAULT_BATCH_TOKENS
    chunk_size: int = t.DEFAULT_CHUNK
    backend: str = t.DEFAULT_BACKEND
    constrained: bool = True
    rules: str = ""


class AnnotateOptions(BaseModel):
    """How the scheduled flows (nightly, backfill) annotate: the parameters of
    :func:`annotate_corpus` besides its inputs and output, validated when a deployment's
    parameters come in."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=()
    )

    model: str
    schema_name: str = Field("general", alias="schema")
    device: str = "cpu"
    max_chars: Annotated[int, Field(ge=16)] = DEFAULT_MAX_CHARS
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    batch_tokens: Annotated[int, Field(ge=256)] = t.DEFAULT_BATCH_TOKENS
    n_shards: Annotated[int, Field(ge=1, le=65_536)] | None = None
    backend: str = t.DEFAULT_BACKEND
    constrained: bool = True
    rules: str = ""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = t.DEFAULT_CHUNK
    runner: str | None = None
    runner_address: str | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] = DEFAULT_CONCURRENCY

    def flow_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`annotate_corpus` these options stand for."""
        kwargs = self.model_dump()
        kwargs["schema"] = kwargs.pop("schema_name")
        return kwargs


class ShardsFailed(RuntimeError):
    """Some shards could not be annotated; the others are committed and stay done."""

    def __init__(self, message: str, failed: int = 0, total: int = 0) -> None:
        super().__init__(message)
        self.failed, self.total = failed, total

    def line(self) -> str:
        """The error on one line, saying what a rerun does."""
        if 0 < self.failed < self.total:
            return f"{self} (the other shards are committed: run again to retry these)"
        return str(self)


@flow(name="annotate-shards", validate_parameters=False)
def annotate_shards(
    shards: dict[int, t.ShardPaths],
    request: Request,
    runner: RunnerSettings,
    max_concurrency: int = DEFAULT_CONCURRENCY,
) -> list[int]:
    """Generate then decode every shard of ``shards`` on this flow's task runner, at most
    ``max_concurrency`` shards at a time; the shards done. A shard that fails does not stop
    the others; the flow fails after all are tried, naming the failed shards."""
    generate = t.generate.with_options(tags={GPU_TAG}) if is_gpu(request.device) else t.generate
    pending: dict[int, tuple[Any, Any]] = {}  # shard -> its generate and decode futures
    failed: dict[int, str] = {}
    done: list[int] = []

    def settle(shard: int) -> None:
        generated, decoded = pending.pop(shard)
        decoded.wait()
        state = decoded.state
        if state.is_completed():
            done.append(shard)
            return
        # A decode that never ran because its generate failed: the generate's reason.
        upstream = generated.state
        cause = state if upstream.is_completed() else upstream
        failed[shard] = _reason(cause)

    for shard, paths in shards.items():
        if len(pending) >= max_concurrency:
            settle(next(iter(pending)))
        with gpu_placement(runner, request.device):
            generations = generate.submit(
                paths.passages,
                paths.generations,
                request.model,
                request.schema,
                request.run_id,
                device=request.device,
                max_new_tokens=request.max_new_tokens,
                batch_tokens=request.batch_tokens,
                chunk_size=request.chunk_size,
                backend=request.backend,
                constrained=request.constrained,
                rules=request.rules,
            )
        decoded = t.decode.submit(
            generations,  # the URI the generate task returns: decode waits for it
            paths.passages,
            paths.documents,
            paths.entities,
            paths.decode_issues,
            request.schema,
            request.run_id,
            model=request.model,
            rules=request.rules,
        )
        pending[shard] = (generations, decoded)
    wait([decoded for _, decoded in pending.values()])
    for shard in list(pending):
        settle(shard)
    if failed:
        by_reason: dict[str, list[int]] = {}
        for k, why in sorted(failed.items()):
            by_reason.setdefault(why, []).append(k)
        lines = "; ".join(
            f"shard{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}: {why}"
            for why, ks in by_reason.items()
        )
        raise ShardsFailed(
            f"{len(failed)} of {len(shards)} shard(s) failed: {lines}", len(failed), len(shards)
        )
    return sorted(done)


def _reason(state: Any) -> str:
    """Why a task run failed, on one line: its exception's type and message where Prefect
    kept it, else the state's message."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # the result itself may be unreadable
        exc = e
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = str(state.message or state.type.value)
    return " ".join(text.split())


def _annotate(
    out: str,
    shards: dict[int, t.ShardPaths],
    request: Request,
    runner: RunnerSettings,
    max_concurrency: int,
) -> dict[str, Any]:
    """Annotate ``shards`` of ``out`` (:func:`annotate_shards` on the configured runner);
    the counts, stage intervals and provenance of the summary, read back from the tables."""
    if shards:
        subflow = annotate_shards.with_options(task_runner=task_runner(runner))
        try:
            subflow(shards, request, runner, max_concurrency)
        finally:
            t.prune_work(out)
    totals: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    timing: dict[str, list[tuple[float, float]]] = {"generate": [], "decode": []}
    model_ids = set()
    engine_settings = ""
    for paths in shards.values():
        counts = t.shard_summary(paths)
        issues.update(counts.pop("issues"))
        for stage, (started, seconds) in counts.pop("timing").items():
            timing[stage].append((started, started + seconds))
        totals.update(counts)
        meta = storage.read_metadata(paths.generations)
        model_ids.add(meta["bioner.model_id"])
        engine_settings = meta.get("bioner.engine_settings", "")
    return {
        "run_id": request.run_id,
        "model_id": ", ".join(sorted(model_ids)),
        "engine": json.loads(engine_settings) if engine_settings else {},
        "runner": dataclasses.asdict(runner),
        "prompt_version": t.model_prompt_version(request.model),
        "schema": request.schema,
        "shards": list(shards),
        **{k: totals[k] for k in _COUNTS},
        "rejected": None,  # set by a select stage, when the run has one
        "issues": dict(sorted(issues.items(), key=lambda kv: (-kv[1], kv[0]))),
        "intervals": timing,
    }


def _annotation_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage rows of generation and decoding."""
    timing = summary["intervals"]
    return [
        report.stage_row(
            "generate",
            summary["generations"],
            summary["generations"],
            timing["generate"],
            unit="passages",
            generated=summary["generated"],
            cached=summary["cached"],
            resumed=summary["resumed"],
            output_tokens=summary["output_tokens"],
        ),
        report.stage_row(
            "decode",
            summary["generations"],
            summary["entities"],
            timing["decode"],
            unit="generations",
            lossy_issues=summary["lossy_issues"],
        ),
    ]


def _finish(summary: dict[str, Any], started: float, extra: list[tuple[float, float]]) -> None:
    """Add the time split to ``summary`` and publish it as the flow run's artifact."""
    intervals = [*extra, *summary["intervals"]["generate"], *summary["intervals"]["decode"]]
    summary["time"] = report.orchestration(time.time() - started, intervals)
    del summary["intervals"]
    if flow_run.get_id():
        create_markdown_artifact(
            markdown=report.markdown(summary),
            key=ARTIFACT_KEY,
            description=f"bioner run {summary['run_id']}: counts and time per stage",
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
    backend: str = t.DEFAULT_BACKEND,
    constrained: bool = True,
    rules: str = "",
    workers: Annotated[int, Field(ge=1, le=64)] = 1,
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = t.DEFAULT_CHUNK,
    runner: str | None = None,
    runner_address: str | None = None,
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] = DEFAULT_CONCURRENCY,
    selector: str | None = None,
) -> dict[str, Any]:
    """Annotate corpus ``inputs`` with ``model``; tables under ``out``; returns a summary.

    ``rules``: the decode rules (:meth:`bioner.rules.DecodeRules.parse`: ``""`` runs the
    defaults of the schema asked, ``"-lexicon"`` leaves out the model's training lexicon,
    ``"-abbreviations"`` the abbreviation rules).

    ``selector``: a selector folder (``bioner train-selector``); every shard's entities are
    then scored into ``OUT/selected/shard=<k>.parquet`` (all candidates kept, with score,
    decision and reason), skipped where that table already holds this selector's decisions on
    the current entities.

    The summary's counts are those of the shards annotated by this run (``generated`` passages
    answered by the engine, ``cached`` ones reused, ``resumed`` ones recovered from an
    interrupted run); ``ingest`` holds the ingest's reconciliation and the current view of the
    whole corpus; ``stages`` the table per stage and ``time`` the split between stages and
    orchestration. ``runner``/``runner_address``: see :mod:`flows.runners` (None: from the
    environment, threads by default). ``chunk_size``: passages per engine call, the unit of
    progress and of the work kept when a run is interrupted.
    """
    started = time.time()
    entity_schema = t.schema_of(schema)
    if storage.is_dir(model):
        check_trained_schema(model, entity_schema.name)  # a deployment's model, too
    settings = RunnerSettings.resolve(runner, runner_address, max_concurrency)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    if swept := t.sweep_partial(out):
        log.info("removed %d temporary file(s) an interrupted run left in %s", swept, out)

    ingested = ingest_corpus(
        inputs=inputs,
        out=out,
        n_shards=n_shards,
        max_chars=max_chars,
        run_id=run_id,
        workers=workers,
    )
    ingest_end = time.time()
    seconds = ingested["seconds"]
    segment_from = ingest_end - seconds["segment"]
    ingest_span = (ingest_end - seconds["total"], segment_from)
    segment_span = (segment_from, ingest_end)

    stale = t.stale_shards(
        out,
        ingested["n_shards"],
        model,
        entity_schema.name,
        max_new_tokens,
        backend=backend,
        constrained=constrained,
        rules=rules,
    )
    request = Request(
        model,
        entity_schema.name,
        run_id,
        device,
        max_new_tokens,
        batch_tokens,
        chunk_size,
        backend,
        constrained,
        rules,
    )
    shards = {shard: t.ShardPaths.under(out, shard) for shard in stale}
    summary = _annotate(out, shards, request, settings, max_concurrency)
    select_row = _select(out, ingested["n_shards"], selector, device, summary) if selector else None
    totals = ingested["totals"]
    written = [t.ShardPaths.under(out, k) for k in ingested["shards_written"]]
    summary["stages"] = [
        report.stage_row(
            "ingest",
            totals["records_read"],
            totals["documents"],
            [ingest_span],
            quarantined=totals["quarantined"],
            tombstoned=totals["tombstones"],
        ),
        report.stage_row(
            "segment",
            sum(storage.count_rows(p.documents) for p in written if storage.exists(p.documents)),
            sum(storage.count_rows(p.passages) for p in written if storage.exists(p.passages)),
            [segment_span],
            unit="documents",
        ),
        *_annotation_rows(summary),
        *([select_row] if select_row else []),
    ]
    summary["seconds"] = {row["stage"]: row["seconds"] for row in summary["stages"]}
    summary["ingest"] = {
        k: ingested[k] for k in ("n_shards", "notes", "inputs", "totals", "current")
    }
    summary["outputs"] = {table: storage.join(out, table) for table in t.TABLES}
    if selector:
        summary["outputs"][SELECTED_TABLE] = storage.join(out, SELECTED_TABLE)
    summary["outputs"]["ingest_manifest"] = ingested["outputs"]["manifest"]
    summary["outputs"]["summary"] = storage.join(out, "summary.json")
    _finish(summary, started, [ingest_span, segment_span, *summary.pop("select_intervals", [])])
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary


def _select(
    out: str, n_shards: int, selector: str, device: str, summary: dict[str, Any]
) -> dict[str, Any]:
    """The select stage over every shard with entities; its stage row. Shards whose selected
    table is current (same entities, same selector) are skipped and not counted; the summary
    gets ``rejected`` and ``selected`` (candidates, accepted, reasons) of the shards done."""
    intervals: list[tuple[float, float]] = []
    candidates = accepted = 0
    reasons: Counter[str] = Counter()
    for shard in range(n_shards):
        entities = t.ShardPaths.under(out, shard).entities
        selected = storage.join(out, SELECTED_TABLE, f"shard={shard}.parquet")
        if not storage.exists(entities) or selection_is_current(entities, selected, selector):
            continue
        begun = time.time()
        select_shard(entities, selector, selected, run_id=summary["run_id"], device=device)
        intervals.append((begun, time.time()))
        done = selection_summary(selected)
        candidates += done["candidates"]
        accepted += done["accepted"]
        reasons.update(done["reasons"])
    summary["rejected"] = candidates - accepted
    summary["selected"] = {
        "candidates": candidates,
        "accepted": accepted,
        "reasons": dict(reasons),
    }
    summary["select_intervals"] = intervals
    return report.stage_row(
        "select", candidates, accepted, intervals, rejected=candidates - accepted, unit="entities"
    )


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
    rules: str = "",
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = t.DEFAULT_CHUNK,
    runner: str | None = None,
    runner_address: str | None = None,
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] = DEFAULT_CONCURRENCY,
) -> dict[str, Any]:
    """Tag an ingested documents table (folder ``ROOT/documents``) with ``model``.

    Passages are the table's sibling ``ROOT/passages``, or are cut here (at ``max_chars``)
    when it has none. Every shard whose entities do not answer this request is generated and
    decoded as in :func:`annotate_corpus`, generation cache included; tables go to ``out``
    (``ROOT`` by default) with a summary in ``out/tag-summary.json``.
    """
    started = time.time()
    entity_schema = t.schema_of(schema)
    if storage.is_dir(model):
        check_trained_schema(model, entity_schema.name)  # a deployment's model, too
    settings = RunnerSettings.resolve(runner, runner_address, max_concurrency)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    target = out or tag_root(documents)
    t.sweep_partial(target)
    shards = {}
    segmented: list[tuple[float, float]] = []
    cut_documents = cut_passages = 0
    for shard, (paths, cut) in tag_paths(documents, out).items():
        if cut and not t.passages_current(paths.documents, paths.passages, max_chars):
            began, clock = time.time(), time.perf_counter()
            t.segment_documents(paths.documents, paths.passages, run_id, max_chars)
            segmented.append((began, began + time.perf_counter() - clock))
            cut_documents += storage.count_rows(paths.documents)
            cut_passages += storage.count_rows(paths.passages)
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
            rules=rules,
        )
    }
    request = Request(
        model,
        entity_schema.name,
        run_id,
        device,
        max_new_tokens,
        batch_tokens,
        chunk_size,
        backend,
        constrained,
        rules,
    )
    summary = _annotate(target, stale, request, settings, max_concurrency)
    summary["stages"] = [
        report.stage_row("segment", cut_documents, cut_passages, segmented, unit="documents"),
        *_annotation_rows(summary),
    ]
    summary["seconds"] = {row["stage"]: row["seconds"] for row in summary["stages"]}
    summary["documents_table"] = documents
    summary["n_shards"] = len(shards)
    summary["outputs"] = {
        table: storage.join(target, table) for table in ("generations", "entities", "decode_issues")
    }
    summary["outputs"]["summary"] = storage.join(target, TAG_SUMMARY)
    _finish(summary, started, segmented)
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["summary"])
    return summary
