"""One temporary Prefect backend for every flow test of the session."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


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
