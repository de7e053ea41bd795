"""Stopping a real ``bioner`` process: SIGTERM, SIGINT and ``kill -9`` of ``run`` and ``ingest``.

Each command runs as a subprocess with Prefect unconfigured, so it starts its own ephemeral
Prefect server (the process that used to outlive it); one Prefect home for the module keeps the
server's database between the runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.commands.run import SAMPLE

psutil = pytest.importorskip("psutil")

BIONER = str(Path(sys.executable).parent / "bioner")
SERVER = "prefect.server.api.server:create_app"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of a user with nothing configured: bioner's Prefect home, own server."""
    home = tmp_path_factory.mktemp("home")
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return keep | {
        "HOME": str(home),
        "BIONER_CACHE_DIR": str(home / "cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def start(args: list[str], env: dict[str, str], stderr: Path) -> subprocess.Popen[bytes]:
    """The command, its stderr to a file (a pipe would wait for every process holding it)."""
    with stderr.open("wb") as sink:
        return subprocess.Popen([BIONER, *args], env=env, stdout=subprocess.DEVNULL, stderr=sink)


def command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # exited meanwhile
        return []


def wait_for(proc: subprocess.Popen[bytes], ready, seconds: float = 240) -> list[psutil.Process]:
    """Wait until ``ready()`` and the Prefect server child runs; the command's descendants."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, "finished before the signal"
        assert time.monotonic() < deadline, "the command never got going"
        tree = psutil.Process(proc.pid).children(recursive=True)
        if ready() and any(SERVER in " ".join(command(p)) for p in tree):
            return tree
        time.sleep(0.2)


def gone(tree: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """The processes of ``tree`` still running after ``seconds`` (none, hopefully)."""
    _, alive = psutil.wait_procs(tree, timeout=seconds)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def stop(proc: subprocess.Popen[bytes], number: int, stderr: Path) -> tuple[float, str]:
    """Send signal ``number``; the seconds until the command exited, and its stderr."""
    sent = time.monotonic()
    proc.send_signal(number)
    proc.wait(timeout=60)
    return time.monotonic() - sent, stderr.read_text()


def run_args(out: Path, model: Path) -> list[str]:
    # Long answers: generation lasts long enough to be interrupted.
    return ["run", str(SAMPLE), "--out", str(out), "--model", str(model), "--shards", "2",
            "--max-new-tokens", "400"]  # fmt: skip


def test_sigterm_stops_a_run_within_seconds_and_a_rerun_finishes(env, tiny_model, tmp_path):
    out = tmp_path / "out"
    proc = start(run_args(out, tiny_model), env, tmp_path / "stderr")
    tree = wait_for(proc, lambda: any(out.glob("passages/shard=*.parquet")))
    time.sleep(2)  # into generation
    seconds, stderr = stop(proc, signal.SIGTERM, tmp_path / "stderr")
    assert proc.returncode == 143, stderr
    assert seconds < 15
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: stopped by SIGTERM: nothing half-written was committed")
    assert "Traceback" not in stderr
    assert gone(tree, 5) == []  # Prefect's server, the watchdog: nothing outlives the command
    again = subprocess.run([BIONER, *run_args(out, tiny_model)], env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (out / "entities").iterdir()) == [
        "shard=0.parquet", "shard=1.parquet"
    ]  # fmt: skip
    assert not [p for p in out.rglob("*.tmp")]


def test_sigint_stops_an_ingest_with_130(env, tmp_path):
    proc = start(["ingest", str(SAMPLE), "--out", str(tmp_path / "out")], env, tmp_path / "err")
    tree = wait_for(proc, lambda: True)
    seconds, stderr = stop(proc, signal.SIGINT, tmp_path / "err")
    assert proc.returncode == 130, stderr
    assert seconds < 15
    assert stderr.strip().splitlines()[-1].startswith("error: stopped by SIGINT:")
    assert gone(tree, 5) == []


def test_kill_9_leaves_no_process_behind(env, tmp_path):
    proc = start(["ingest", str(SAMPLE), "--out", str(tmp_path / "out")], env, tmp_path / "err")
    tree = wait_for(proc, lambda: True)  # at once: the server just started
    proc.kill()
    proc.wait()
    # The watchdog sees the command gone and ends the server (SIGKILL after 3 s if need be).
    left = gone(tree, 30)
    for process in left:  # not to leave them to the next test
        process.kill()
    assert left == []
