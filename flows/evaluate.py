"""The evaluate flow: a model on the standard test sets, one task per set, then the report.

Each set is evaluated by :func:`tasks.evaluate.evaluate_set` (generate and decode as the annotate
flow does, then strict and relaxed metrics), which writes ``OUT/sets/<name>.json`` and the
predictions beside it and passes on the file's URI; :func:`tasks.evaluate.write_evaluation_report`
gathers them into ``OUT/report.json`` and ``OUT/report.md``. Sets run one after another in this
process so the single engine is loaded once.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from infra.evaluation import DEFAULT_SCHEMA_MODE, check_schema_mode, parse_sets
from tasks import evaluate as t
from tasks.annotate import DEFAULT_BACKEND, DEFAULT_BATCH_TOKENS


@flow(name="evaluate", validate_parameters=True)
def evaluate(
    model: str,
    out: str,
    sets: list[str],
    limit: Annotated[int, Field(ge=1)] | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    batch_tokens: Annotated[int, Field(ge=1)] = DEFAULT_BATCH_TOKENS,
    backend: str = DEFAULT_BACKEND,
    constrained: bool = True,
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None,
    threads: Annotated[int, Field(ge=1)] | None = None,
    schema: str = DEFAULT_SCHEMA_MODE,
    rules: str = "",
) -> dict[str, Any]:
    """Evaluate ``model`` on ``sets`` (names of :data:`infra.evaluation.EVAL_SETS`), the first
    ``limit`` documents of each, each asked with the unified schema (``schema="general"``) or
    its own (``"dataset"``); the report goes under ``out`` and is returned. ``rules``: the
    decode rules (:meth:`bioner.rules.DecodeRules.parse`; the tagger alone is scored too)."""
    check_schema_mode(schema)
    names = parse_sets(sets)
    results = {
        name: t.evaluate_set(
            name,
            model,
            out,
            limit=limit,
            data_dir=data_dir,
            device=device,
            batch_tokens=batch_tokens,
            backend=backend,
            constrained=constrained,
            max_new_tokens=max_new_tokens,
            threads=threads,
            schema=schema,
            rules=rules,
        )
        for name in names
    }
    return t.write_evaluation_report(
        results, model, out, limit=limit, data_dir=data_dir, schema=schema, rules=rules
    )
