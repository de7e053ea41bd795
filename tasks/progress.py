"""Progress of long stages, reported to whoever listens in this process (a CLI's progress bar).

Tasks call :func:`report`; a front end installs a listener with :func:`listening`. With no
listener (a worker, a test) reporting costs nothing. A module-level listener rather than a
flow parameter: flow parameters must be serialisable and are recorded by Prefect, a progress
bar is neither.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: ``listener(stage, done, total, count, tokens)``; ``done == 0`` announces a stage,
#: ``done == total`` ends it. ``count`` is the items handled so far when ``done``/``total``
#: measure something else (bytes of a file being parsed, with ``count`` records); ``tokens`` the
#: tokens produced so far where the stage produces them (output tokens while generating); None
#: otherwise.
Listener = Callable[[str, int, int, int | None, int | None], None]

_lock = threading.Lock()
_listener: Listener | None = None


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send progress reports of this process to ``listener`` while the block runs."""
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    try:
        yield
    finally:
        with _lock:
            _listener = previous


def report(
    stage: str, done: int, total: int, count: int | None = None, *, tokens: int | None = None
) -> None:
    """Tell the listener, if any, that ``done`` of ``total`` of ``stage`` are finished."""
    listener = _listener
    if listener is not None:
        listener(stage, done, total, count, tokens)
