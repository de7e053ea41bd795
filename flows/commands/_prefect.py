"""Running a flow inside a command: Prefect's local defaults, quiet logs, progress bars.

Shared by ``bioner run``, ``bioner tag`` and ``bioner ingest``: they work with nothing
configured (an in-process Prefect with its ephemeral server, its home in bioner's cache folder)
unless the user has configured Prefect, and they draw the progress that tasks report
(:mod:`tasks.progress`) as rich bars on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Task as ProgressTask
from rich.text import Text

from flows.commands._common import console


def cache_dir() -> Path:
    """Where bioner keeps things it can rebuild: ``BIONER_CACHE_DIR`` or ``~/.cache/bioner``."""
    if "BIONER_CACHE_DIR" in os.environ:
        return Path(os.environ["BIONER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bioner"


def quiet_libraries() -> None:
    """Keep transformers' loading bars and chatter out of our output (read at their import)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _prefect_configured() -> bool:
    names = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE")
    return any(n in os.environ for n in names) or (Path.home() / ".prefect").exists()


def prefect_defaults() -> None:
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
        # Read at import and whenever Prefect reconfigures logging: see quiet_prefect_logs.
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
def quiet_prefect_logs() -> Iterator[None]:
    """Silence Prefect's console logs during the run unless the user set a logging level.

    The commands report progress, results and errors themselves; Prefect's INFO lines and its
    tracebacks of a failed run (bad input included) would bury them. A Prefect imported by us
    takes the level from the environment (prefect_defaults); one imported earlier (a test
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


_UNITS = {"generate": "passages", "compact": "shards"}


class _Rate(ProgressColumn):
    """Items done and items per second since the stage started (records while parsing), and
    tokens per second where the stage reports tokens (generation: output tokens)."""

    def render(self, task: ProgressTask) -> Text:
        unit = task.fields.get("unit", "items")
        count = task.fields.get("count")
        if count is None:
            count = int(task.completed)
            done = f"{count:,}/{int(task.total or 0):,} {unit}"
        else:
            done = f"{count:,} {unit}"
        # A finished bar keeps its own time; ``elapsed`` would go on counting.
        elapsed = (task.finished_time if task.finished else task.elapsed) or 0.0
        rate = count / elapsed if elapsed > 0 else 0.0
        text = f"{done}, {rate:,.1f} {unit}/s"
        tokens = task.fields.get("tokens")
        if tokens is not None:
            text += f", {tokens / elapsed if elapsed > 0 else 0.0:,.0f} tokens/s"
        return Text(text, style="progress.data.speed")


@contextmanager
def progress_bars(unit: str = "items") -> Iterator[object]:
    """A :data:`tasks.progress.Listener` drawing one rich bar per reported stage, on stderr.

    While a file is parsed the bar measures bytes and the text counts records. ``unit`` names
    what a stage counts when the stage is not one of the pipeline's own (``generate``,
    ``compact``): evaluation reports one stage per set, in passages.
    """
    progress = Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        _Rate(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bars: dict[str, int] = {}

    def listener(
        stage: str, done: int, total: int, count: int | None = None, tokens: int | None = None
    ) -> None:
        if stage not in bars or (done == 0 and progress.tasks[bars[stage]].finished):
            if not progress.live.is_started:
                progress.start()
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(
            bars[stage],
            completed=done,
            total=total,
            count=count,
            unit="records" if count is not None else _UNITS.get(stage, unit),
            tokens=tokens,
        )

    try:
        yield listener
    finally:
        progress.stop()
