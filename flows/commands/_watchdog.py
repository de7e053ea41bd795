"""The watchdog of a running command: ends the command's processes when it dies unannounced.

``python -m flows.commands._watchdog PID TOKEN`` (started by
:func:`flows.commands._prefect.stoppable` in a session of its own) notes every descendant of
process ``PID`` twice a second; when ``PID`` is gone (``kill -9``, a crash, an out-of-memory
kill) it ends those still running, and every process whose environment has ``TOKEN`` in
:data:`TOKEN_VARIABLE` (set by the command, so inherited by whatever it starts, even in the
last half second): Prefect's server, parsing workers, a local Ray or Dask cluster. Ending is
:func:`end`: SIGTERM, SIGKILL after a few seconds (the Prefect server ignores SIGTERM while it
starts).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import psutil

#: How long a SIGTERMed process has to exit before SIGKILL.
GRACE_S = 3.0
#: How often the watchdog looks at its command.
INTERVAL_S = 0.5
#: The environment variable that marks the processes of one command.
TOKEN_VARIABLE = "BIONER_COMMAND_TOKEN"


def end(processes: list[psutil.Process], grace: float = GRACE_S) -> None:
    """Terminate ``processes``, then kill those still running after ``grace`` seconds."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)


def _alive(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def _marked(token: str) -> list[psutil.Process]:
    """This user's processes whose environment carries ``token``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone, or not ours to read
            if process.environ().get(TOKEN_VARIABLE) == token:
                found.append(process)
    return found


def watch(pid: int, token: str) -> None:
    """Note the descendants of ``pid`` until it is gone, then :func:`end` them and the
    processes marked with ``token``."""
    try:
        command = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    seen: dict[int, psutil.Process] = {}
    while _alive(command):
        with contextlib.suppress(psutil.Error):
            # Accumulated: once the command is dead its children belong to init.
            seen |= {p.pid: p for p in command.children(recursive=True) if p.pid != os.getpid()}
        seen = {k: p for k, p in seen.items() if _alive(p)}  # is_running: no reused pid
        time.sleep(INTERVAL_S)
    seen |= {p.pid: p for p in _marked(token) if p.pid != os.getpid()}
    end([p for p in seen.values() if _alive(p)])


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
