"""One temporary Prefect backend for every flow test of the session."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra import storage


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """A throw-away Prefect database and server (started once: it takes seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    # The server subprocess inherits the environment: no telemetry from tests.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A loaded 2-core machine can take longer than the harness's default 30 s to start it.
    with prefect_test_harness(server_startup_timeout=180):
        yield
        # Its "Stopping temporary server" INFO line would go to a stream pytest has closed.
        logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An UNTRAINED tiny model folder (random weights) for end-to-end runs."""
    from infra.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", ["Disease: [x]"], seed=0)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> Iterator[str]:
    """A local two-CPU Ray cluster for the session (no dashboard, no usage stats, its files in
    a temporary folder); the Ray task runner finds it initialised and uses it."""
    ray = pytest.importorskip("ray", reason="install the scale extra for the Ray tests")
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's socket paths must stay short: a temporary folder of its own under /tmp.
    tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    patch.setenv("RAY_TMPDIR", str(tmp))
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
        _temp_dir=str(tmp),
        configure_logging=False,
    )
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()
        patch.undo()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A local Dask cluster of two single-threaded worker processes; its scheduler address."""
    distributed = pytest.importorskip("distributed", reason="install the scale extra")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _kill_after_chunks(
    command: list[str], env: dict[str, str], out: str, n: int = 3
) -> subprocess.Popen[bytes]:
    """Start ``command`` (a ``bioner run`` writing to ``out``, local or S3) and ``kill -9`` it
    once ``n`` chunks of generations are committed under ``out/_work``; the ended process."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    work = storage.join(out, "_work", "generations")
    deadline = time.monotonic() + 180
    while sum("/part-" in f for f in storage.files_under(work)) < n:
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no chunk committed in 180 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return proc


@pytest.fixture
def kill_after_chunks() -> Callable[..., subprocess.Popen[bytes]]:
    """:func:`_kill_after_chunks`: a run killed in the middle of its generation."""
    return _kill_after_chunks
