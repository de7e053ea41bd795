"""Freed memory goes back to the system: Arrow's pool and glibc's mmap threshold."""

from __future__ import annotations

import os
import platform

import pyarrow as pa
import pytest

from infra import memory


def test_return_freed_memory_sets_the_pool_and_the_threshold(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    memory.return_freed_memory()
    assert pa.default_memory_pool().backend_name != "mimalloc"
    # Worker processes started from here read it at start.
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(memory.MMAP_THRESHOLD)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_mallopt_is_applied_on_glibc():
    assert memory._set_mmap_threshold(memory.MMAP_THRESHOLD) is True
