"""Evaluating a model on a test set: the annotate flow's generate and decode on gold documents.

The path is the one :mod:`tasks.annotate` takes for a corpus: documents are cut into passages
(:func:`bioner.segment.segment`); each passage is asked with its dataset's schema in its
language (:func:`bioner.prompts.build_prompt`, a token limit from its length, overlapping
windows when it does not fit the model's context, a copy-constraint target); answers are decoded
and mapped to document offsets (:func:`tasks.annotate.entities_of`); then the spans are scored
against gold (:func:`bioner.metrics.evaluate`, strict and relaxed, per type).

The plain functions take any :class:`bioner.generation.Engine`, so a benchmark or a test passes
its own; :func:`evaluate_set` is the Prefect task that loads the engine and a set, and writes
the set's result; :func:`write_evaluation_report` gathers the results into the report files.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from bioner.codec.issues import DecodeIssue
from bioner.constraint import CONSTRAINT_VERSION, SymbolicTarget
from bioner.generation import Engine, Generation, GenerationParams
from bioner.labels import EntitySchema, request_parts, schema_for
from bioner.lexicon import Lexicon
from bioner.metrics import Evaluation, evaluate
from bioner.prompts import PROMPT_VERSION, build_prompt
from bioner.records import AnnotatedDocument, Passage, Span, sorted_unique
from bioner.rules import ABBREVIATION, LEXICON, TAGGER, DecodeRules
from bioner.segment import DEFAULT_MAX_CHARS, segment
from infra import evaluation as ev
from infra.datasets import data_dir as default_data_dir
from infra.ingest_store import code_version
from infra.lexicon import lexicon_info, read_lexicons
from infra.llm.local import is_untrained, request_groups
from tasks._common import TASK_OPTIONS as _TASK
from tasks.annotate import (
    DEFAULT_BACKEND,
    DEFAULT_BATCH_TOKENS,
    DEFAULT_CHUNK,
    DocumentPart,
    context_windows,
    document_entities,
    engine_for,
    engine_settings,
    entities_of,
    lexicon_entities,
    per_schema_params,
    rules_setting,
    uses_lexicon,
)
from tasks.progress import report

#: Prompts per engine call: the transformers engine sorts each call's prompts by length into
#: batches, so a larger pool than the annotate flow's pads less; vLLM schedules its own batches.
CHUNK = 128
VLLM_CHUNK = 1024
_RUN_ID = "evaluate"


@dataclass(frozen=True)
class Request:
    """One prompt for the engine: a passage, or a window of a passage too long for the model."""

    passage: int  # index into the passages
    window: tuple[int, int]  # [start, end) in the passage text
    text: str  # the passage text in the window
    schema: EntitySchema  # what this request asks: the passage's schema, or a part of it
    prompt: str
    params: GenerationParams
    asked: EntitySchema  # the passage's schema whole

    def target(self) -> SymbolicTarget:
        """The valid answers of this request (copy-constrained decoding)."""
        return SymbolicTarget.of(self.text, self.schema)


def passages_of(
    docs: Sequence[AnnotatedDocument], max_chars: int = DEFAULT_MAX_CHARS
) -> list[Passage]:
    """The passages of the documents in order, cut as ``bioner run`` cuts them."""
    return [p for d in docs for p in segment(d.document, max_chars=max_chars)]


def plan_requests(
    engine: Engine,
    passages: Sequence[Passage],
    schema: str,
    cap: int | None = None,
    groups: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> list[Request]:
    """The requests of the passages, in passage order, as :func:`tasks.annotate.generate`
    makes them: each passage in its language's schema, in the parts ``groups`` asks it
    (:func:`bioner.labels.request_parts`; whole by default), whole when its prompt and longest
    answer fit the model's context, else as windows; ``cap`` caps the token limits."""
    units = [
        (i, part)
        for i, p in enumerate(passages)
        for part in request_parts(schema, p.language, groups or {})
    ]
    whole = [schema_for(schema, p.language) for p in passages]
    schemas = [part for _, part in units]
    texts = [passages[i].text for i, _ in units]
    base = GenerationParams()
    params = per_schema_params(engine, texts, schemas, base, cap)
    version = engine.prompt_version
    prompts = [build_prompt(t, s, version) for t, s in zip(texts, schemas, strict=True)]
    windows = context_windows(engine, texts, schemas, prompts, params, base, cap)
    requests = []
    for u, (text, s, found) in enumerate(zip(texts, schemas, windows, strict=True)):
        i = units[u][0]
        if found == [(0, len(text))]:
            requests.append(Request(i, found[0], text, s, prompts[u], params[u], whole[i]))
            continue
        parts = [text[a:b] for a, b in found]
        part_params = per_schema_params(engine, parts, [s] * len(parts), base, cap)
        for window, part, p in zip(found, parts, part_params, strict=True):
            prompt = build_prompt(part, s, version)
            requests.append(Request(i, window, part, s, prompt, p, whole[i]))
    return requests


def generate_requests(
    engine: Engine,
    requests: Sequence[Request],
    *,
    chunk_size: int | None = DEFAULT_CHUNK,
    stage: str | None = None,
) -> tuple[list[Generation], float]:
    """The engine's answers to ``requests`` in order, and the seconds spent generating.

    ``chunk_size`` requests go to the engine per call (None: all in one call). With a
    ``stage``, progress goes to :func:`tasks.progress.report` after each call, in passages (a
    passage is done when its last window is) and output tokens.
    """
    chunk_size = chunk_size or max(1, len(requests))
    targets = [r.target() for r in requests]
    finished: list[int] = []  # passages completed once request i is answered
    for i, r in enumerate(requests):
        last = i + 1 == len(requests) or requests[i + 1].passage != r.passage
        finished.append((finished[-1] if finished else 0) + last)
    total = finished[-1] if finished else 0
    if stage:
        report(stage, 0, total, tokens=0)
    out: list[Generation] = []
    tokens = 0
    started = time.perf_counter()
    for lo in range(0, len(requests), chunk_size):
        chunk = range(lo, min(lo + chunk_size, len(requests)))
        answers = engine.generate(
            [requests[i].prompt for i in chunk],
            [requests[i].params for i in chunk],
            targets=[targets[i] for i in chunk],
        )
        out.extend(answers)
        tokens += sum(g.output_tokens for g in answers)
        if stage:
            report(stage, finished[chunk[-1]], total, tokens=tokens)
    return out, time.perf_counter() - started


@dataclass
class Decoded:
    """The spans of a set's answers by document (document offsets; every document present)."""

    spans: dict[str, list[Span]]  # what the pipeline outputs: tagger, lexicon, abbreviations
    tagger: dict[str, list[Span]]  # the tagger's decoded spans alone
    issues: list[list[DecodeIssue]]  # per passage
    added: Counter[str]  # spans by source other than the tagger
    dropped: int = 0  # tagger spans the lexicon vetoed
    redefined: int = 0  # spans on short forms their document defines on no mention


def decode_answers(
    passages: Sequence[Passage],
    texts: dict[str, str],
    requests: Sequence[Request],
    generations: Sequence[Generation],
    model_id: str,
    prompt_version: str = PROMPT_VERSION,
    lexicons: dict[str, Lexicon] | None = None,
    rules: str = "",
) -> Decoded:
    """The spans of the answers as :func:`tasks.annotate.decode` makes them
    (:func:`tasks.annotate.entities_of`, :func:`tasks.annotate.lexicon_entities` with the
    lexicon of the passage's schema, then :func:`tasks.annotate.document_entities` per
    document), and the tagger's own spans beside them."""
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r, g in zip(requests, generations, strict=True):
        rows[r.passage].append(
            {
                "text": g.text,
                "finish_reason": g.finish_reason,
                "window_start": r.window[0],
                "window_end": r.window[1],
                "schema": r.schema.name,
                "model_id": model_id,
                "prompt_version": prompt_version,
            }
        )
    schema_of = {r.passage: r.asked for r in requests}
    chosen = {s.name: DecodeRules.parse(rules, s.name) for s in schema_of.values()}
    out = Decoded({d: [] for d in texts}, {d: [] for d in texts}, [], Counter())
    by_document: dict[str, list[DocumentPart]] = defaultdict(list)
    doc_rules: dict[str, DecodeRules] = {}
    for i, p in enumerate(passages):
        entities, found = entities_of(p, texts[p.doc_id], rows[i], schema_of[i], _RUN_ID)
        out.tagger[p.doc_id].extend(Span(e.start, e.end, e.label) for e in entities)
        out.issues.append(found)
        asked = schema_of[i]
        kept, added, dropped = lexicon_entities(
            p, entities, asked, lexicons or {}, rows[i][0], _RUN_ID, chosen[asked.name]
        )
        entities = kept + added
        out.dropped += len(dropped)
        by_document[p.doc_id].append((p, rows[i][0], entities))
        doc_rules.setdefault(p.doc_id, chosen[schema_of[i].name])
    for doc_id, parts in by_document.items():
        entities, redefined = document_entities(parts, texts[doc_id], _RUN_ID, doc_rules[doc_id])
        out.redefined += redefined
        out.spans[doc_id] = [Span(e.start, e.end, e.label) for e in entities]
        out.added.update(e.source for e in entities if e.source != TAGGER)
    return out


def spans_across_passages(docs: Sequence[AnnotatedDocument], passages: Sequence[Passage]) -> int:
    """Gold spans that no single passage contains: the pipeline cannot find them."""
    bounds: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p in passages:
        bounds[p.doc_id].append((p.start, p.end))
    return sum(
        not any(a <= s.start and s.end <= b for a, b in bounds[d.id]) for d in docs for s in d.spans
    )


@dataclass
class SetRun:
    """What evaluating one set gave: the metrics, the predictions and how they were made."""

    evaluation: Evaluation
    predictions: list[AnnotatedDocument]
    passages: int
    requests: int
    generations: list[Generation]
    seconds: float
    issues: list[list[DecodeIssue]]  # per passage
    across: int  # gold spans crossing a passage boundary
    tagger: Evaluation | None = None  # the tagger's spans alone, when a rule changed them
    lexicon_added: int = 0  # spans the lexicon gave
    abbreviations_added: int = 0  # later uses of a defined abbreviation
    lexicon_dropped: int = 0  # tagger spans the lexicon vetoed
    abbreviations_dropped: int = 0  # spans on short forms defined on no mention
    #: The tagger's spans alone, when a rule changed them (to score or re-apply rules offline).
    tagger_predictions: list[AnnotatedDocument] | None = None

    @property
    def lossy_passages(self) -> int:
        """Passages with an issue that may have cost or moved a span (not an exact copy)."""
        return sum(any(i.lossy for i in found) for found in self.issues)

    @property
    def truncated(self) -> int:
        """Answers cut at their token limit."""
        return sum(g.finish_reason == "length" for g in self.generations)

    def summary(self) -> dict[str, Any]:
        """Counts, speed, decode issues and metrics as plain JSON values."""
        output_tokens = sum(g.output_tokens for g in self.generations)
        kinds = Counter(str(i.kind) for found in self.issues for i in found)
        seconds = self.seconds
        return {
            "documents": len(self.predictions),
            "passages": self.passages,
            "requests": self.requests,
            "gold_spans": self.evaluation.strict.micro.support,
            "predicted_spans": sum(len(d.spans) for d in self.predictions),
            "gold_spans_across_passages": self.across,
            "truncated": self.truncated,
            "decode_issues": {
                "total": sum(kinds.values()),
                "by_kind": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
                "lossy_passages": self.lossy_passages,
            },
            "speed": {
                "seconds": round(seconds, 3),
                "passages_per_s": self.passages / seconds if seconds > 0 else 0.0,
                "tokens_per_s": output_tokens / seconds if seconds > 0 else 0.0,
                "output_tokens": output_tokens,
                "prompt_tokens": sum(g.prompt_tokens for g in self.generations),
            },
            "metrics": self.evaluation.to_dict(),
            "lexicon_added": self.lexicon_added,
            "abbreviations_added": self.abbreviations_added,
            "lexicon_dropped": self.lexicon_dropped,
            "abbreviations_dropped": self.abbreviations_dropped,
            "tagger_metrics": self.tagger.to_dict() if self.tagger else None,
        }


def evaluate_documents(
    engine: Engine,
    docs: Sequence[AnnotatedDocument],
    schema: str,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    cap: int | None = None,
    chunk_size: int | None = DEFAULT_CHUNK,
    stage: str | None = None,
    lexicons: dict[str, Lexicon] | None = None,
    rules: str = "",
    labels: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> SetRun:
    """Tag gold documents with ``engine`` as the pipeline would, and score the spans.

    ``schema`` names the entity schema asked (a dataset's, or the unified one); ``labels`` the
    types scored (default: the schema's), and macro averages run over them: a span of another
    type is neither right nor wrong here (the unified schema asks types a dataset does not
    annotate) and is left out of the predictions. The decode rules (``rules``, as
    :meth:`bioner.rules.DecodeRules.parse` reads it) run with ``lexicons`` (by schema name);
    the tagger's spans alone are scored too (``SetRun.tagger``). ``groups``: how the model
    wants each schema asked (:func:`infra.llm.local.request_groups`).
    """
    passages = passages_of(docs, max_chars)
    requests = plan_requests(engine, passages, schema, cap, groups)
    generations, seconds = generate_requests(engine, requests, chunk_size=chunk_size, stage=stage)
    texts = {d.id: d.text for d in docs}
    decoded = decode_answers(
        passages,
        texts,
        requests,
        generations,
        engine.model_id,
        engine.prompt_version,
        lexicons,
        rules,
    )
    labels = tuple(labels) if labels is not None else schema_for(schema, None).labels
    scored = set(labels)

    def of_scored(found: dict[str, list[Span]]) -> dict[str, list[Span]]:
        return {k: [s for s in v if s.label in scored] for k, v in found.items()}

    gold = of_scored({d.id: list(d.spans) for d in docs})
    spans = of_scored(decoded.spans)
    changed = decoded.added or decoded.dropped or decoded.redefined
    tagger = evaluate(gold, of_scored(decoded.tagger), labels=labels) if changed else None
    result = evaluate(gold, spans, labels=labels)

    def documents(found: dict[str, list[Span]]) -> list[AnnotatedDocument]:
        return [AnnotatedDocument(d.document, sorted_unique(found[d.id])) for d in docs]

    return SetRun(
        evaluation=result,
        predictions=documents(spans),
        passages=len(passages),
        requests=len(requests),
        generations=generations,
        seconds=seconds,
        issues=decoded.issues,
        across=spans_across_passages(docs, passages),
        tagger=tagger,
        lexicon_added=decoded.added[LEXICON],
        abbreviations_added=decoded.added[ABBREVIATION],
        lexicon_dropped=decoded.dropped,
        abbreviations_dropped=decoded.redefined,
        # Every type the tagger was asked: the rules can be applied to them again offline.
        tagger_predictions=documents(decoded.tagger) if changed else None,
    )


def constraint_version(engine: Engine, constrained: bool) -> str:
    """The copy constraint the engine applied: its declared version, or ``off``."""
    found = engine_settings(engine).get("constrained")
    if found:
        return found
    return CONSTRAINT_VERSION if constrained else "off"


# --------------------------------------------------------------------------- Prefect tasks


@task(name="evaluate-set", **_TASK)
def evaluate_set(
    name: str,
    model: str,
    out: str,
    *,
    limit: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
    max_new_tokens: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    threads: int | None = None,
    schema: str = ev.DEFAULT_SCHEMA_MODE,
    rules: str = "",
) -> str:
    """Evaluate ``model`` on test set ``name``; writes ``OUT/sets/<name>.json`` and the
    predictions beside it, and returns the result's URI. Progress is reported as stage
    ``name``. ``schema``: ask the unified schema (``general``) or the set's own
    (``dataset``), :func:`infra.evaluation.request_of`; ``rules``: the decode rules
    (:meth:`bioner.rules.DecodeRules.parse`), with the model folder's training lexicon."""
    ev.set_threads(threads)
    asked, labels = ev.request_of(name, schema)
    docs = ev.load_eval_set(name, Path(data_dir) if data_dir else None, limit, schema)
    lexicons = read_lexicons(model) if uses_lexicon(rules, asked) and Path(model).is_dir() else None
    engine = engine_for(model, device, batch_tokens, backend, constrained)
    run = evaluate_documents(
        engine,
        docs,
        asked,
        max_chars=max_chars,
        cap=max_new_tokens,
        chunk_size=VLLM_CHUNK if backend == "vllm" else CHUNK,
        stage=name,
        lexicons=lexicons,
        rules=rules,
        labels=labels,
        groups=request_groups(model) if Path(model).is_dir() else None,
    )
    spec = ev.EVAL_SETS[name]
    result = {
        "set": name,
        "description": spec.description,
        "split": spec.split + (" (evaluation part)" if spec.eval_part else ""),
        "schema": asked,
        "schema_mode": schema,
        "scored_types": list(labels),
        "limit": limit,
        **run.summary(),
        "model_id": engine.model_id,
        "engine": engine_settings(engine),
        "prompt_version": engine.prompt_version,
        "constraint_version": constraint_version(engine, constrained),
        "max_new_tokens": max_new_tokens,
        "max_chars": max_chars,
        "decode_rules": rules_setting(rules, asked),
        "lexicon": lexicon_info(model) if lexicons is not None else None,
    }
    return ev.write_set_result(result, run.predictions, out, run.tagger_predictions)


@task(name="evaluation-report", **_TASK)
def write_evaluation_report(
    results: dict[str, str],
    model: str,
    out: str,
    *,
    limit: int | None = None,
    data_dir: str | None = None,
    schema: str = ev.DEFAULT_SCHEMA_MODE,
    rules: str = "",
) -> dict[str, Any]:
    """Gather the sets' results (URIs by set name) into ``report.json`` and ``report.md``
    under ``out``; returns the report, with its files under ``outputs``."""
    sets = {name: ev.read_set_result(uri) for name, uri in results.items()}
    first = next(iter(sets.values()), {})
    report = {
        "model": model,
        "model_id": first.get("model_id", ""),
        "untrained": Path(model).is_dir() and is_untrained(model),
        "engine": first.get("engine", {}),
        "prompt_version": first.get("prompt_version", ""),
        "constraint_version": first.get("constraint_version", ""),
        "lexicon": first.get("lexicon"),
        "schema_mode": schema,
        "decode_rules": rules,
        "limit": limit,
        "data_dir": str(Path(data_dir) if data_dir else default_data_dir()),
        "code_version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sets": sets,
        "outputs": {
            **ev.report_uris(out),
            "sets": results,
            "predictions": {name: ev.predictions_uri(out, name) for name in results},
        },
    }
    ev.write_report(report, out)
    return report
