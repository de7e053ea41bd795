"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared benchmark data: ``BIONER_DATA_DIR``, by default ``../shared/data``."""
    return Path(os.environ.get("BIONER_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder, or a skip that says where it was looked for."""
    d = data_dir()
    if not (d / "README.md").is_file():
        pytest.skip(f"real benchmark data not found at {d} (set BIONER_DATA_DIR)")
    return d
