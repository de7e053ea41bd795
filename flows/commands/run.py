"""``bioner run INPUT... --out DIR``: annotate a corpus end to end on this machine.

Ingest (as ``bioner ingest``: any supported format, versions and deletions reconciled, sharded),
then generate and decode every shard with new passages. Embedded defaults so that it works with
nothing configured: local storage, CPU, and an in-process Prefect (see
:mod:`flows.commands._prefect`). A missing or unrecognised input fails at once with one
``error: FILE: ...`` line and exit 2, before anything starts; a file that breaks part-way keeps
its valid records, says so in one line, and the run exits 1. Heavy imports (Prefect, torch) wait
until they are needed, so ``bioner --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bioner.errors import InputError
from bioner.ingest import read_pubmed
from bioner.labels import SCHEMAS, get_schema
from bioner.records import Document
from bioner.rules import GROUPS, RULES, DecodeRules
from bioner.segment import DEFAULT_MAX_CHARS
from flows import report
from flows.commands._common import (
    check_output,
    console,
    error,
    fail,
    inputs_argument,
    max_chars_option,
    out_option,
    workers_option,
    writing,
)
from flows.commands._prefect import (
    cache_dir,
    prefect_defaults,
    progress_bars,
    quiet_libraries,
    quiet_prefect_logs,
    stoppable,
)
from flows.runners import RUNNERS, RunnerSettings
from infra import storage
from infra.ingest_store import (
    ShardsChanged,
    check_config,
    error_lines,
    exit_status,
    expand_inputs,
    probe,
)
from infra.llm import BACKENDS
from infra.llm.local import (
    TINY_VERSION,
    ModelFolderError,
    check_model_dir,
    check_trained_schema,
    is_untrained,
)

ROOT = Path(__file__).resolve().parents[2]
#: The schema names a user may ask (restricted ones are written base[Type,Type]).
SCHEMA_NAMES = tuple(sorted(name for name in SCHEMAS if "[" not in name))
REFERENCE_MODEL = ROOT / "models" / "reference"
SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "pubmed-sample.xml.gz"
#: Engines the commands name (``infra.llm.BACKENDS``: those this installation has).
ENGINES = ("transformers", "vllm")
UNTRAINED_WARNING = (
    "WARNING: no trained model; using an UNTRAINED tiny model — entities will be meaningless"
)


def engine_option() -> typer.models.OptionInfo:
    """The ``--engine`` option: the LLM backend that generates."""
    return typer.Option(
        "transformers", "--engine", help=f"LLM backend: {', '.join(ENGINES)}.", show_default=True
    )


def no_constrain_option() -> typer.models.OptionInfo:
    """The ``--no-constrain`` option: free decoding instead of copy-constrained decoding."""
    return typer.Option(
        False,
        "--no-constrain",
        help="Let the model generate freely (default: copy-constrained decoding, every answer "
        "a valid tagged copy of its passage).",
    )


def lexicon_option() -> typer.models.OptionInfo:
    """``--lexicon/--no-lexicon``: apply the model's training lexicon (``bioner lexicon``)."""
    return typer.Option(
        True,
        "--lexicon/--no-lexicon",
        help="Apply the model's training lexicon (lexicon.parquet, bioner lexicon) where it has "
        "one for the schema: it adds the mentions the tagger missed or cut short, corrects labels "
        "(source 'lexicon') and drops spans of strings training never annotates (the rules on "
        "by default for the schema; --rules switches single ones).",
    )


def chunk_size_option() -> typer.models.OptionInfo:
    """``--chunk-size``: passages per engine call."""
    return typer.Option(
        32,
        "--chunk-size",
        min=1,
        max=100_000,
        help="Passages per engine call: the unit of progress, and of the work kept when a "
        "run is interrupted (a rerun resumes after the last whole chunk).",
    )


def runner_option() -> typer.models.OptionInfo:
    """``--runner``: where shard tasks run."""
    return typer.Option(
        None,
        "--runner",
        envvar="BIONER_TASK_RUNNER",
        help=f"Task runner for the shards: {', '.join(RUNNERS)} (default thread; ray and "
        "dask need the scale extra).",
        show_default=False,
    )


def runner_address_option() -> typer.models.OptionInfo:
    """``--runner-address``: the Ray or Dask cluster to use."""
    return typer.Option(
        None,
        "--runner-address",
        envvar="BIONER_RUNNER_ADDRESS",
        help="Ray (ray://host:10001, auto) or Dask (tcp://host:8786) cluster; default: a "
        "local one.",
        show_default=False,
    )


def max_concurrency_option() -> typer.models.OptionInfo:
    """``--max-concurrency``: shards in flight at once."""
    return typer.Option(
        4, "--max-concurrency", min=1, max=4096, help="Shards annotated at once, at most."
    )


def schema_option() -> typer.models.OptionInfo:
    """``--schema``: the entity types asked (default the unified schema)."""
    return typer.Option(
        "general",
        "--schema",
        help="Entity types to tag: the unified schema general (Chinese passages: general-zh), "
        "some of its types (general[Gene,Species]) or a dataset's schema, one of "
        f"{', '.join(SCHEMA_NAMES)}.",
    )


def abbreviations_option() -> typer.models.OptionInfo:
    """``--abbreviations/--no-abbreviations``: run the abbreviation rules."""
    return typer.Option(
        True,
        "--abbreviations/--no-abbreviations",
        help="Run the abbreviation rules: a short form defined on a mention labels its later "
        "uses (source 'abbreviation') and its spans; one defined on no mention loses its spans.",
    )


def rules_option() -> typer.models.OptionInfo:
    """``--rules``: switch single decode rules off or on."""
    return typer.Option(
        "",
        "--rules",
        help="Decode rules to switch off (-NAME) or on (+NAME), comma-separated, over the "
        f"schema's defaults; names: {', '.join((*RULES, *GROUPS))}.",
        show_default=False,
    )


def main(
    inputs: list[str] = inputs_argument(),
    out: str = out_option("Folder for the output tables: a local folder or s3://bucket/prefix."),
    model: Path | None = typer.Option(
        None,
        "--model",
        envvar="BIONER_MODEL",
        help="Local model folder. Default: models/reference if present, "
        "else an UNTRAINED tiny model (for trying the pipeline only).",
    ),
    schema: str = schema_option(),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
    max_chars: int = max_chars_option(DEFAULT_MAX_CHARS),
    workers: int = workers_option(),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="Cap on tokens per answer (default: derived from passage length and type count).",
    ),
    batch_tokens: int = typer.Option(
        16_384, "--batch-tokens", min=256, help="Padded tokens per generation batch."
    ),
    shards: int | None = typer.Option(
        None,
        "--shards",
        min=1,
        max=65_536,
        help="Number of shards, fixed by the first run into --out (default 16).",
    ),
    engine: str = engine_option(),
    no_constrain: bool = no_constrain_option(),
    lexicon: bool = lexicon_option(),
    abbreviations: bool = abbreviations_option(),
    rules: str = rules_option(),
    chunk_size: int = chunk_size_option(),
    runner: str | None = runner_option(),
    runner_address: str | None = runner_address_option(),
    max_concurrency: int = max_concurrency_option(),
    selector: Path | None = typer.Option(
        None,
        "--selector",
        help="Selector folder (bioner train-selector): score every entity into OUT/selected "
        "(accepted and rejected both kept, with score and reason).",
    ),
) -> None:
    """Annotate corpus files: ingest, segment, generate, decode; tables under --out."""
    quiet_libraries()
    _check_inputs(inputs)
    check_output(out)
    check_schema(schema)
    spec = decode_rules(lexicon, abbreviations, rules, schema)
    check_engine(engine)
    check_runner(runner, runner_address)
    try:
        check_config(out, shards)
    except ShardsChanged as e:
        raise fail(str(e)) from None
    model_dir = _resolve_model(model, schema)
    if selector is not None and not (selector / "selector.json").is_file():
        raise fail(f"{selector}: not a selector folder (no selector.json; see train-selector)")

    prefect_defaults()
    with stoppable(), writing(out, "bioner run"), quiet_prefect_logs(), progress_bars() as listener:
        # Imported here: Prefect reads its settings at import, after prefect_defaults.
        from flows.annotate import ShardsFailed, annotate_corpus
        from tasks.progress import listening

        console.print(
            f"annotating {len(inputs)} file(s) with {model_dir} → {out}",
            highlight=False,
            soft_wrap=True,
        )
        try:
            with listening(listener):
                summary = annotate_corpus(
                    inputs=inputs,
                    out=out,
                    model=str(model_dir),
                    schema=schema.lower(),
                    device=device,
                    max_chars=max_chars,
                    workers=workers,
                    max_new_tokens=max_new_tokens,
                    batch_tokens=batch_tokens,
                    n_shards=shards,
                    backend=engine,
                    constrained=not no_constrain,
                    rules=spec,
                    chunk_size=chunk_size,
                    runner=runner,
                    runner_address=runner_address,
                    max_concurrency=max_concurrency,
                    selector=str(selector) if selector else None,
                )
        except (InputError, ModelFolderError) as e:
            raise fail(str(e)) from None
        except ImportError as e:  # the engine's or the runner's libraries are not installed
            raise fail(str(e)) from None
        except ShardsFailed as e:
            raise fail(e.line(), 1) from None
    for note in summary["ingest"]["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    for line in error_lines(summary["ingest"]):
        error(line)
    print_summary(summary, untrained=is_untrained(model_dir))
    raise typer.Exit(exit_status(summary["ingest"]))


# --------------------------------------------------------------------------- options and checks


def check_runner(runner: str | None, address: str | None) -> None:
    """A one-line error for an unknown runner, or an address the thread runner cannot use."""
    try:
        RunnerSettings.resolve(runner, address)
    except ValueError as e:
        raise fail(str(e)) from None


def check_schema(schema: str) -> None:
    """A one-line error for an unknown schema or type (``general[Gene,Foo]``)."""
    try:
        get_schema(schema)
    except ValueError as e:
        raise fail(str(e)) from None


def decode_rules(lexicon: bool, abbreviations: bool, rules: str, schema: str) -> str:
    """The decode rules spec of the options (:meth:`bioner.rules.DecodeRules.parse`), checked:
    a one-line error names an unknown rule."""
    parts = [p for p in rules.split(",") if p.strip()]
    parts += [] if lexicon else ["-lexicon"]
    parts += [] if abbreviations else ["-abbreviations"]
    spec = ",".join(parts)
    try:
        DecodeRules.parse(spec, schema)
    except ValueError as e:
        raise fail(str(e)) from None
    return spec


def check_engine(engine: str) -> None:
    """A one-line error for an unknown engine, or one this installation lacks."""
    if engine not in ENGINES:
        raise fail(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine not in BACKENDS:
        raise fail(f"engine {engine!r} is not available in this installation")


# --------------------------------------------------------------------------- inputs and model


def _check_inputs(paths: list[str]) -> None:
    """Fail early, before Prefect starts, on a missing, empty or unrecognised input file."""
    found, missing = expand_inputs(paths)
    if missing:
        raise fail(f"{missing[0]}: no such file")
    if not found:
        raise fail(f"no input files in {', '.join(paths)}")
    for uri, explicit in found:
        if explicit and (problem := probe(uri)[3]):
            raise fail(f"{uri}: {problem}")


def _resolve_model(model: Path | None, schema: str | None = None) -> Path:
    """The model folder to use, with a loud warning when its weights are untrained; a one-line
    error when it was trained but never on ``schema``."""
    if model is None and REFERENCE_MODEL.is_dir():
        model = REFERENCE_MODEL
    if model is None:
        model = _tiny_model()
    try:
        check_model_dir(model)
        if schema is not None:
            check_trained_schema(model, schema)
    except ModelFolderError as e:
        raise fail(str(e)) from None
    if is_untrained(model):
        console.print(
            f"[bold yellow]{UNTRAINED_WARNING}[/] ({model})", highlight=False, soft_wrap=True
        )
    return model


def _tiny_model() -> Path:
    """The cached UNTRAINED tiny model, built on first use from the bundled sample's text."""
    path = cache_dir() / "models" / f"tiny-untrained-v{TINY_VERSION}-seed0"
    if not (path / "config.json").is_file():
        from infra.llm.tiny import build_tiny_model  # torch and transformers: only to build

        console.print(
            f"building an UNTRAINED tiny model in {path} …", highlight=False, soft_wrap=True
        )
        with storage.open_input(str(SAMPLE)) as stream:
            texts = [r.text for r in read_pubmed(stream) if isinstance(r, Document)]
        build_tiny_model(path, corpus_texts=texts, seed=0)
    return path


# --------------------------------------------------------------------------- output


def print_summary(summary: dict[str, Any], *, untrained: bool = False) -> None:
    """The run summary as a table on stdout: counts, issues by kind, time per stage, outputs."""
    table = summary_table("bioner run")
    add_request_rows(table, summary, untrained=untrained)
    ingest = summary["ingest"]
    totals, current = ingest["totals"], ingest["current"]
    table.add_row(
        "inputs",
        f"{totals['inputs']} ({totals['ingested']} ingested, {totals['skipped']} skipped, "
        f"{totals['errors']} with errors)",
    )
    table.add_row(
        "records read",
        f"{totals['records_read']:,} = {totals['documents']:,} documents + "
        f"{totals['tombstones']:,} deletions + {totals['quarantined']:,} quarantined",
    )
    table.add_row(
        "corpus",
        f"{current['documents']:,} documents, {current['tombstones']:,} deletions in force, "
        f"{ingest['n_shards']} shards",
    )
    add_annotation_rows(table, summary)
    Console().print(table, highlight=False)
    Console().print(stage_table(summary), highlight=False)


def stage_table(summary: dict[str, Any]) -> Table:
    """Records in, out, quarantined, tombstoned and rejected per stage, time and throughput,
    and the share of wall time spent in orchestration."""
    time = summary["time"]
    table = Table(
        title="per stage",
        title_justify="left",
        caption=f"wall {time['wall_seconds']:.1f} s: stages {time['stage_seconds']:.1f} s, "
        f"orchestration {time['orchestration_seconds']:.1f} s "
        f"({100 * time['orchestration_share']:.1f}%)",
        caption_justify="left",
    )
    for i, (_, title) in enumerate(report.COLUMNS):
        table.add_column(title, justify="left" if i == 0 else "right")
    for row in summary["stages"]:
        table.add_row(*report.stage_cells(row))
    return table


def summary_table(title: str) -> Table:
    """The two-column table the annotating commands print their summary in."""
    table = Table(title=title, show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column()
    return table


def add_request_rows(table: Table, summary: dict[str, Any], *, untrained: bool = False) -> None:
    """Rows saying what was asked: run, model (and engine settings), schema and prompt."""
    model = summary["model_id"] or "not loaded (nothing to annotate)"
    model += " [bold yellow](UNTRAINED)[/]" if untrained and summary["model_id"] else ""
    table.add_row("run", summary["run_id"])
    table.add_row("model", model)
    if summary.get("engine"):
        table.add_row("engine", ", ".join(f"{k}={v}" for k, v in summary["engine"].items()))
    table.add_row("schema / prompt", f"{summary['schema']} / {summary['prompt_version']}")


def add_annotation_rows(table: Table, summary: dict[str, Any]) -> None:
    """Rows of what was annotated: counts (generated and cached passages), issues, time."""
    shards = summary["shards"]
    table.add_row("shards annotated", ", ".join(map(str, shards)) if shards else "none (no change)")
    table.add_row("documents", f"{summary['documents']:,}")
    table.add_row("tombstones", f"{summary['tombstones']:,}")
    table.add_row("passages", f"{summary['passages']:,}")
    table.add_row(
        "generations",
        f"{summary['generations']:,}: {summary['generated']:,} generated, "
        f"{summary['cached']:,} cached ({summary['truncated']:,} cut at their token limit)",
    )
    table.add_row(
        "tokens",
        f"{summary['prompt_tokens']:,} prompt, {summary['output_tokens']:,} generated"
        + (f" ({_rate(summary)})" if summary["generated"] else ""),
    )
    derived = [
        f"{n:,} {what}"
        for n, what in (
            (summary.get("lexicon_entities", 0), "found by the model's training lexicon"),
            (summary.get("abbreviation_entities", 0), "labelled by an abbreviation's definition"),
        )
        if n
    ]
    if summary.get("lexicon_dropped"):
        derived.append(f"{summary['lexicon_dropped']:,} decoded spans dropped by the lexicon")
    if summary.get("abbreviation_dropped"):
        derived.append(
            f"{summary['abbreviation_dropped']:,} dropped on short forms defined on no mention"
        )
    table.add_row(
        "entities", f"{summary['entities']:,}" + (f" ({', '.join(derived)})" if derived else "")
    )
    issues = summary["issues"]
    table.add_row(
        "decode issues",
        ", ".join(f"{kind} {n:,}" for kind, n in issues.items()) if issues else "none",
    )
    seconds = summary["seconds"]
    table.add_row(
        "time",
        ", ".join(f"{stage} {s:.1f} s" for stage, s in seconds.items())
        + f" (total {sum(seconds.values()):.1f} s)",
    )
    for name, uri in summary["outputs"].items():
        table.add_row(f"→ {name}", uri)


def _rate(summary: dict[str, Any]) -> str:
    """Generation speed: passages and output tokens per second of the generate stage."""
    seconds = summary["seconds"].get("generate", 0.0)
    if seconds <= 0:
        return "no time measured"
    return (
        f"{summary['generated'] / seconds:,.1f} passages/s, "
        f"{summary['output_tokens'] / seconds:,.0f} tokens/s"
    )
