"""One temporary Prefect backend for every flow test of the session."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """A throw-away Prefect database and server (started once: it takes seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    # The server subprocess inherits the environment: no telemetry from tests.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness():
        yield
        # Its "Stopping temporary server" INFO line would go to a stream pytest has closed.
        logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An UNTRAINED tiny model folder (random weights) for end-to-end runs."""
    from infra.llm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", ["Disease: [x]"], seed=0)
