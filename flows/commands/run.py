"""``bioner run INPUT... --out DIR``: annotate PubMed XML end to end on this machine.

Embedded defaults so that it works with nothing configured: local storage, CPU, and an
in-process Prefect (its ephemeral server, with a ``PREFECT_HOME`` in bioner's cache folder)
unless the user has configured Prefect. Bad input is one ``error: FILE: ...`` line and exit 2.
Heavy imports (Prefect, torch) wait until they are needed, so ``bioner --help`` stays fast.
"""

from __future__ import annotations

import gzip
import logging
import os
import sys
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as ProgressTask
from rich.table import Table
from rich.text import Text

from bioner.errors import InputError
from bioner.ingest import ROOT_TAG, read_pubmed, sniff_root
from bioner.labels import SCHEMAS
from bioner.records import Document
from bioner.segment import DEFAULT_MAX_CHARS
from flows.commands._common import console, fail
from infra import storage
from infra.llm.local import TINY_VERSION, ModelFolderError, check_model_dir, is_untrained

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_MODEL = ROOT / "models" / "reference"
SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "pubmed-sample.xml.gz"
UNTRAINED_WARNING = (
    "WARNING: no trained model; using an UNTRAINED tiny model — entities will be meaningless"
)
_SNIFF_BYTES = 4096


def main(
    inputs: list[Path] = typer.Argument(
        ...,
        metavar="INPUT...",
        show_default=False,
        help="PubMed XML files (PubmedArticleSet, .xml or .xml.gz).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the output tables."),
    model: Path | None = typer.Option(
        None,
        "--model",
        envvar="BIONER_MODEL",
        help="Local model folder. Default: models/reference if present, "
        "else an UNTRAINED tiny model (for trying the pipeline only).",
    ),
    schema: str = typer.Option(
        "general", "--schema", help=f"Entity types to tag: {', '.join(sorted(SCHEMAS))}."
    ),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
    max_chars: int = typer.Option(
        DEFAULT_MAX_CHARS, "--max-chars", min=16, help="Longest passage, in characters."
    ),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="Cap on tokens per answer (default: derived from passage length and type count).",
    ),
    batch_tokens: int = typer.Option(
        16_384, "--batch-tokens", min=256, help="Padded tokens per generation batch."
    ),
) -> None:
    """Annotate PubMed XML files: ingest, segment, generate, decode; tables under --out."""
    _quiet_libraries()
    for path in inputs:
        _check_input(path)
    if schema.lower() not in SCHEMAS:
        raise fail(f"unknown schema {schema!r}; known: {', '.join(sorted(SCHEMAS))}")
    model_dir = _resolve_model(model)

    _prefect_defaults()
    with _quiet_prefect_logs(), _progress() as listener:
        # Imported here: Prefect reads its settings at import, after _prefect_defaults.
        from flows.annotate import annotate_corpus
        from tasks.progress import listening

        console.print(
            f"annotating {len(inputs)} file(s) with {model_dir} → {out}",
            highlight=False,
            soft_wrap=True,
        )
        try:
            with listening(listener):
                summary = annotate_corpus(
                    inputs=[str(p) for p in inputs],
                    out=str(out),
                    model=str(model_dir),
                    schema=schema.lower(),
                    device=device,
                    max_chars=max_chars,
                    max_new_tokens=max_new_tokens,
                    batch_tokens=batch_tokens,
                )
        except (InputError, ModelFolderError) as e:
            # A SourceError (an InputError) names its file: "FILE: line N: what".
            raise fail(str(e)) from None
    print_summary(summary, untrained=is_untrained(model_dir))


# --------------------------------------------------------------------------- inputs and model


def _check_input(path: Path) -> None:
    """Fail early, before Prefect starts, on a missing, unreadable or obviously non-XML file."""
    if not path.exists():
        raise fail(f"{path}: no such file")
    if path.is_dir():
        raise fail(f"{path}: is a directory, expected a PubMed XML file")
    try:
        with storage.open_input(str(path)) as stream:
            head = stream.read(_SNIFF_BYTES)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise fail(f"{path}: not a valid gzip file ({e})") from None
    except OSError as e:
        raise fail(f"{path}: cannot read ({e.strerror or e})") from None
    root = sniff_root(head)
    if root is None:
        raise fail(f"{path}: not XML (expected a PubMed XML file, .xml or .xml.gz)")
    if root != ROOT_TAG:
        raise fail(f"{path}: not a PubMed file: root element is <{root}>, expected <{ROOT_TAG}>")


def cache_dir() -> Path:
    """Where bioner keeps things it can rebuild: ``BIONER_CACHE_DIR`` or ``~/.cache/bioner``."""
    if "BIONER_CACHE_DIR" in os.environ:
        return Path(os.environ["BIONER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bioner"


def _resolve_model(model: Path | None) -> Path:
    """The model folder to use, with a loud warning when its weights are untrained."""
    if model is None and REFERENCE_MODEL.is_dir():
        model = REFERENCE_MODEL
    if model is None:
        model = _tiny_model()
    try:
        check_model_dir(model)
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


# --------------------------------------------------------------------------- Prefect


def _quiet_libraries() -> None:
    """Keep transformers' loading bars and chatter out of our output (read at their import)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _prefect_configured() -> bool:
    names = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE")
    return any(n in os.environ for n in names) or (Path.home() / ".prefect").exists()


def _prefect_defaults() -> None:
    """Quiet, local Prefect defaults; bioner's own PREFECT_HOME if Prefect is not configured.

    Does nothing when Prefect is already imported (a test harness, an embedding program):
    settings are read at import and belong to whoever imported it. The home is a cache folder
    kept between runs, not a fresh temporary one: a fresh home makes the ephemeral server
    create its database on every run (15-25 s here, past Prefect's 20 s start-up limit once)
    where a kept one starts in about 8 s. Deleting it loses only past run records.
    """
    if "prefect" in sys.modules:
        return
    defaults = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Read at import and whenever Prefect reconfigures logging: see _quiet_prefect_logs.
        "PREFECT_LOGGING_LEVEL": "CRITICAL",
        # The first start creates the database; slower machines need more than 20 s.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    if not _prefect_configured():
        home = cache_dir() / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        defaults |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_UI_ENABLED": "false"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


@contextmanager
def _quiet_prefect_logs() -> Iterator[None]:
    """Silence Prefect's console logs during the run unless the user set a logging level.

    This command reports progress, results and errors itself; Prefect's INFO lines and its
    tracebacks of a failed run (bad input included) would bury them. A Prefect imported by us
    takes the level from the environment (_prefect_defaults); one imported earlier (a test
    harness, an embedding program) gets it on its logger for the duration of the run.
    """
    logger = logging.getLogger("prefect")
    level = logger.level
    if os.environ.get("PREFECT_LOGGING_LEVEL", "CRITICAL") == "CRITICAL":
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            # Prefect's parameter model warns that ``schema`` shadows a pydantic attribute.
            warnings.filterwarnings("ignore", r'Field name "schema"', UserWarning)
            yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- output


class _Rate(ProgressColumn):
    """Average passages per second since the stage started."""

    def render(self, task: ProgressTask) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:.1f} passages/s", style="progress.data.speed")


@contextmanager
def _progress() -> Iterator[Any]:
    """A listener drawing one rich progress bar per reported stage, on stderr."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    bars: dict[str, Any] = {}

    def listener(stage: str, done: int, total: int) -> None:
        if stage not in bars or (done == 0 and progress.tasks[bars[stage]].finished):
            if not progress.live.is_started:
                progress.start()
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(bars[stage], completed=done, total=total)

    try:
        yield listener
    finally:
        progress.stop()


def print_summary(summary: dict[str, Any], *, untrained: bool = False) -> None:
    """The run summary as a table on stdout: counts, issues by kind, time per stage, outputs."""
    table = Table(title="bioner run", show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column()
    model = summary["model_id"] + (" [bold yellow](UNTRAINED)[/]" if untrained else "")
    table.add_row("run", summary["run_id"])
    table.add_row("model", model)
    table.add_row("schema / prompt", f"{summary['schema']} / {summary['prompt_version']}")
    table.add_row("documents", f"{summary['documents']:,}")
    table.add_row("tombstones", f"{summary['tombstones']:,}")
    table.add_row("passages", f"{summary['passages']:,}")
    table.add_row(
        "generations",
        f"{summary['generations']:,} ({summary['truncated']:,} cut at their token limit)",
    )
    table.add_row(
        "tokens",
        f"{summary['prompt_tokens']:,} prompt, {summary['output_tokens']:,} generated",
    )
    table.add_row("entities", f"{summary['entities']:,}")
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
    Console().print(table, highlight=False)
