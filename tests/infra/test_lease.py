"""The output lease: one writer per output, locally (flock) and on S3 (conditional PUT, moto)."""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
import uuid

import pytest

from infra import s3, storage
from infra.lease import LEASE, Holder, Lease, LeaseHeld


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def out(request, tmp_path):
    """A fresh output folder: local, or a prefix on moto."""
    s3.reset()
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("moto_s3").uri(f"lease-{uuid.uuid4().hex[:12]}")


def test_a_second_writer_is_refused_naming_the_holder(out):
    with Lease(out, "bioner run") as first:
        assert Holder.parse(storage.read_bytes(first.uri)) == first.holder
        with pytest.raises(LeaseHeld) as refused:
            Lease(out, "bioner ingest")
        line = str(refused.value)
        assert "\n" not in line
        assert f"bioner run (host {socket.gethostname()}, pid {first.holder.pid})" in line
        assert f"since {first.holder.since}" in line
    assert LEASE not in storage.list_dir(out)  # released at exit
    with Lease(out, "bioner ingest") as again:
        assert again.took_over is None


def test_released_when_the_command_fails(out):
    with pytest.raises(RuntimeError), Lease(out, "bioner run"):
        raise RuntimeError("boom")
    assert LEASE not in storage.list_dir(out)
    Lease(out, "bioner run").release()


def _hold(out: str, ready: multiprocessing.synchronize.Event) -> None:
    Lease(out, "bioner run")  # never released: the process dies holding it
    ready.set()
    time.sleep(60)


def test_the_lease_of_a_dead_process_is_taken_over(out):
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold, args=(out, ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(LeaseHeld, match=f"pid {holder.pid}"):
            Lease(out, "bioner ingest")
    finally:
        holder.kill()
        holder.join()
    with Lease(out, "bioner ingest") as taken:
        assert taken.took_over is not None and taken.took_over.pid == holder.pid


@pytest.mark.s3
def test_s3_lease_of_another_host_is_stale_after_the_ttl(moto_s3):
    s3.reset()
    out = moto_s3.uri(f"lease-{uuid.uuid4().hex[:12]}")
    other = Holder("elsewhere", 1, "bioner run", "2026-01-01T00:00:00+00:00", time.time())
    storage.write_bytes(other.encode(), storage.join(out, LEASE))
    with pytest.raises(LeaseHeld, match=r"host elsewhere, pid 1\) since 2026-01-01"):
        Lease(out, "bioner run", ttl=60)
    old = Holder("elsewhere", 1, "bioner run", other.since, time.time() - 61)
    storage.write_bytes(old.encode(), storage.join(out, LEASE))
    with Lease(out, "bioner run", ttl=60) as taken:
        assert taken.took_over == old


@pytest.mark.s3
def test_s3_lease_is_renewed_while_held(moto_s3):
    s3.reset()
    out = moto_s3.uri(f"lease-{uuid.uuid4().hex[:12]}")
    with Lease(out, "bioner run", ttl=0.6) as lease:
        first = json.loads(storage.read_bytes(lease.uri))["renewed"]
        time.sleep(1.0)
        renewed = json.loads(storage.read_bytes(lease.uri))["renewed"]
        assert renewed > first
        # Renewed: not stale to another writer although the TTL has passed since it began.
        with pytest.raises(LeaseHeld):
            Lease(out, "bioner ingest", ttl=0.6)
    assert LEASE not in storage.list_dir(out)


@pytest.mark.s3
def test_s3_lease_needs_the_bucket(moto_s3):
    s3.reset()
    with pytest.raises(s3.StorageError, match="no such bucket"):
        Lease(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/out", "bioner run")


@pytest.mark.s3
def test_s3_lease_taken_over_after_a_stall_is_known_lost(moto_s3):
    s3.reset()
    out = moto_s3.uri(f"lease-{uuid.uuid4().hex[:12]}")
    stalled = Lease(out, "bioner run")
    # Another writer found it expired (the holder stalled past the TTL) and took it over.
    taker = Holder("elsewhere", 1, "bioner ingest", "2026-01-01T00:00:00+00:00", time.time())
    storage.write_bytes(taker.encode(), stalled.uri)
    stalled.renew()
    assert stalled.lost
    stalled.release()  # leaves the taker's lease alone
    assert Holder.parse(storage.read_bytes(stalled.uri)) == taker
