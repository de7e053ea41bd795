"""``bioner evaluate --model DIR --sets ncbi,bc5cdr,jnlpba,cmeee``: a model on the test sets.

Runs the Prefect flow ``evaluate`` (:mod:`flows.evaluate`) in-process, as ``bioner run`` runs
``annotate-corpus``: generation through the real engine (transformers, copy-constrained by
default; ``--engine vllm`` on a GPU worker), decoding and metrics per set and per type, a JSON
and a Markdown report under ``--out``. A progress bar per set shows passages/s and tokens/s; a
table ends the run. An unknown set, a missing model folder or missing data fails at once with
one ``error: ...`` line and exit 2, before anything is loaded. (``bioner eval`` scores a
predictions file against a gold file; this command makes the predictions.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bioner.errors import InputError
from flows.commands._common import console, fail
from flows.commands._prefect import (
    prefect_defaults,
    progress_bars,
    quiet_libraries,
    quiet_prefect_logs,
)
from flows.commands.run import (
    UNTRAINED_WARNING,
    abbreviations_option,
    check_engine,
    decode_rules,
    engine_option,
    lexicon_option,
    no_constrain_option,
    rules_option,
)
from infra.datasets import data_dir
from infra.evaluation import (
    DEFAULT_SCHEMA_MODE,
    DEFAULT_SETS,
    EVAL_SETS,
    check_schema_mode,
    derived_cells,
    missing_data,
    parse_sets,
    request_of,
)
from infra.llm.local import (
    ModelFolderError,
    check_model_dir,
    check_trained_schema,
    is_untrained,
)


def main(
    model: Path = typer.Option(..., "--model", envvar="BIONER_MODEL", help="Local model folder."),
    sets: str = typer.Option(
        ",".join(DEFAULT_SETS),
        "--sets",
        help=f"Comma-separated sets to evaluate on; known: {', '.join(EVAL_SETS)} (the -dev "
        "sets are held out of training, for choosing settings).",
    ),
    out: Path = typer.Option(
        Path("out/evaluate"), "--out", "-o", help="Folder for report.json, report.md and sets/."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Evaluate on the first N documents of each set only."
    ),
    engine: str = engine_option(),
    no_constrain: bool = no_constrain_option(),
    batch_tokens: int = typer.Option(
        16_384, "--batch-tokens", min=256, help="Padded tokens per generation batch."
    ),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="Cap on tokens per answer (default: derived from passage length and type count).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: torch's own)."
    ),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
    schema: str = typer.Option(
        DEFAULT_SCHEMA_MODE,
        "--schema",
        help="general: ask every set the unified schema, as bioner run does, and score the "
        "unified types its dataset annotates; dataset: ask each set its dataset's own schema.",
    ),
    lexicon: bool = lexicon_option(),
    abbreviations: bool = abbreviations_option(),
    rules: str = rules_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Evaluate a model on the test sets: generate, decode, score; reports under --out."""
    quiet_libraries()
    try:
        names = parse_sets(sets)
        check_schema_mode(schema)
    except InputError as e:
        raise fail(str(e)) from None
    spec = decode_rules(lexicon, abbreviations, rules, "general" if schema == "general" else None)
    check_engine(engine)
    try:
        check_model_dir(model)
        for name in names:
            check_trained_schema(model, request_of(name, schema)[0])
    except ModelFolderError as e:
        raise fail(str(e)) from None
    root = data_dir()
    for name in names:
        if problem := missing_data(name, root):
            raise fail(problem)
    untrained = is_untrained(model)
    if untrained:
        console.print(
            f"[bold yellow]{UNTRAINED_WARNING}[/] ({model})", highlight=False, soft_wrap=True
        )

    prefect_defaults()
    with quiet_prefect_logs(), progress_bars(unit="passages") as listener:
        # Imported here: Prefect reads its settings at import, after prefect_defaults.
        from flows.evaluate import evaluate
        from tasks.progress import listening

        console.print(
            f"evaluating {model} on {', '.join(names)} → {out}", highlight=False, soft_wrap=True
        )
        try:
            with listening(listener):
                report = evaluate(
                    model=str(model),
                    out=str(out),
                    sets=names,
                    limit=limit,
                    data_dir=str(root),
                    device=device,
                    batch_tokens=batch_tokens,
                    backend=engine,
                    constrained=not no_constrain,
                    max_new_tokens=max_new_tokens,
                    threads=threads,
                    schema=schema,
                    rules=spec,
                )
        except (InputError, ModelFolderError) as e:
            raise fail(str(e)) from None
        except ImportError as e:  # the engine's libraries are not installed
            raise fail(f"--engine {engine}: {e}") from None
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)


# --------------------------------------------------------------------------- output


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def print_report(report: dict[str, Any]) -> None:
    """One row per set (micro P/R/F1 strict, F1 relaxed, issues, speed), then provenance."""
    table = Table(
        title="bioner evaluate",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    lexicon = report.get("lexicon")
    columns = ("set", "docs", "passages", "P", "R", "F1", "F1 relaxed", "issues", "pass/s", "tok/s")
    derived = bool(lexicon) or any(r.get("tagger_metrics") for r in report["sets"].values())
    if derived:
        columns = (*columns[:6], "F1 tagger", "lexicon", "abbrev", *columns[6:])
    for name in columns:
        table.add_column(name, justify="left" if name == "set" else "right", no_wrap=True)
    for name, r in report["sets"].items():
        strict, relaxed = r["metrics"]["strict"]["micro"], r["metrics"]["relaxed"]["micro"]
        with_lexicon = derived_cells(r) if derived else []
        table.add_row(
            name,
            str(r["documents"]),
            str(r["passages"]),
            _pct(strict["precision"]),
            _pct(strict["recall"]),
            _pct(strict["f1"]),
            *with_lexicon,
            _pct(relaxed["f1"]),
            str(r["decode_issues"]["total"]),
            f"{r['speed']['passages_per_s']:.1f}",
            f"{r['speed']['tokens_per_s']:.0f}",
        )
    out = Console(highlight=False)
    out.print(table)
    model = escape(report["model_id"]) + (
        " [bold yellow](UNTRAINED)[/]" if report["untrained"] else ""
    )
    out.print(f"model {model}", soft_wrap=True)
    out.print(
        f"schema {report.get('schema_mode', 'dataset')}, decode rules "
        f"{report.get('decode_rules') or 'default'}; "
        f"prompt {report['prompt_version']}, constraint {report['constraint_version']}, "
        f"limit {report['limit'] if report['limit'] is not None else 'none'}; "
        "P, R, F1: micro, percent",
        soft_wrap=True,
    )
    if derived:
        out.print(
            (
                f"lexicon {lexicon['digest']} (ratio ≥ {lexicon['min_ratio']}, count ≥ "
                f"{lexicon['min_count']})"
                if lexicon
                else "no lexicon"
            )
            + ": F1 tagger is the tagger's spans alone, lexicon the spans the lexicon gave and "
            "dropped, "
            "abbrev the later uses of abbreviations defined on a found mention and the spans "
            "on them relabelled by the definition, and the spans dropped on short forms "
            "defined on no mention",
            soft_wrap=True,
            markup=False,
        )
    for kind in ("json", "markdown"):
        out.print(f"→ {report['outputs'][kind]}", soft_wrap=True, markup=False)
