"""Running a flow inside a command: Prefect's local defaults, quiet logs, progress bars.

Shared by ``bioner run``, ``bioner tag`` and ``bioner ingest``: they work with nothing
configured (an in-process Prefect with its ephemeral server, its home in bioner's cache folder)
unless the user has configured Prefect, they draw the progress that tasks report
(:mod:`tasks.progress`) as rich bars on stderr, and they stop cleanly (:func:`stoppable`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Task as ProgressTask
from rich.text import Text

from flows.commands import _watchdog
from flows.commands._common import console, error


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


#: The signals that stop a command (exit status 128 + the signal's number: 130, 143).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stoppable = False  # inside stoppable(): the wake-up socket and handlers are ours


def _after_fork() -> None:
    """A child forked while a command is stoppable neither reports signals to the command's
    wake-up socket nor ignores SIGINT/SIGTERM."""
    global _stoppable
    if _stoppable:
        _stoppable = False
        signal.set_wakeup_fd(-1)  # the forking thread is the child's main thread
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)


def _stop(number: int) -> None:
    """Stop the command now: one line, its processes ended, exit 128 + ``number``.

    Nothing half-written is committed: every table, chunk and segment becomes visible by one
    rename or one upload (:mod:`infra.storage`), the ingest's shard tables carry the point they
    were compacted to, and a rerun removes the temporary files this exit leaves. The exit skips
    waiting for running tasks: a generating shard would hold the command for minutes.
    """
    error(
        f"stopped by {signal.Signals(number).name}: nothing half-written was committed; "
        "run the same command again to continue"
    )
    console.show_cursor(True)
    _watchdog.end(psutil.Process().children(recursive=True))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + number)


def _wait_for_signals(wakeup: socket.socket, stopping: threading.Event) -> None:
    """Read the signal numbers Python writes to the wake-up socket; stop on SIGINT/SIGTERM."""
    while data := wakeup.recv(64):
        for number in data:
            if number in STOP_SIGNALS:
                stopping.set()
                _stop(number)


@contextmanager
def stoppable() -> Iterator[None]:
    """SIGINT/SIGTERM stop the command within seconds, and no process of it outlives it.

    A signal is seen through Python's signal wake-up socket by a thread of ours, whatever
    handler Prefect installs meanwhile (its flow engine turns SIGTERM into an exception that
    waits for running tasks) and even while the main thread is busy in native code; the thread
    prints one line, ends the command's child processes (Prefect's ephemeral server first among
    them) and exits with 130 (SIGINT) or 143 (SIGTERM): :func:`_stop`. A watchdog process
    (:mod:`flows.commands._watchdog`) ends them when the command dies without a word
    (``kill -9``). Outside the main thread (an embedding program) it does nothing.
    """
    global _stoppable
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    token = uuid.uuid4().hex
    marked = os.environ.get(_watchdog.TOKEN_VARIABLE)
    os.environ[_watchdog.TOKEN_VARIABLE] = token  # inherited by every process it starts
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "flows.commands._watchdog", str(os.getpid()), token],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C at the terminal is the command's to handle
    )
    wakeup, wakeup_send = socket.socketpair()
    wakeup_send.setblocking(False)
    stopping = threading.Event()
    previous_fd = signal.set_wakeup_fd(wakeup_send.fileno(), warn_on_full_buffer=False)
    previous = {n: signal.signal(n, lambda number, frame: None) for n in STOP_SIGNALS}
    _stoppable = True
    waiter = threading.Thread(
        target=_wait_for_signals, args=(wakeup, stopping), name="bioner-stop", daemon=True
    )
    waiter.start()
    try:
        yield
    except BaseException:
        if stopping.is_set():  # Prefect's SIGTERM exception: the waiter ends the process
            waiter.join()
        raise
    finally:
        _stoppable = False
        signal.set_wakeup_fd(previous_fd)
        for number, handler in previous.items():
            signal.signal(number, handler)
        wakeup_send.close()
        waiter.join()
        wakeup.close()
        watchdog.terminate()
        watchdog.wait()
        if marked is None:
            os.environ.pop(_watchdog.TOKEN_VARIABLE, None)
        else:
            os.environ[_watchdog.TOKEN_VARIABLE] = marked


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
