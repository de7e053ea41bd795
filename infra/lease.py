"""One writer per output: the lease every writing command takes on its output folder.

The lease is the object ``OUT/_lease.json``: who holds it (host, pid, command) and since when.
A second writer is refused with :class:`LeaseHeld`, one line naming the holder.

* Local folder: the file is held with an exclusive ``flock``. The kernel drops the lock when
  the holder exits or dies, so the lease of a dead process is taken over at once, safely.
* S3: the object is created with a conditional PUT (``If-None-Match: *``): of two writers only
  one succeeds. The holder renews it every third of the TTL (a heartbeat thread, each PUT
  conditional on its last ETag). A lease is stale when its holder is a process of this host
  that is gone, or when it was not renewed for the TTL (``BIONER_LEASE_TTL`` seconds, default
  600); a stale lease is taken over by a PUT conditional on the stale lease's ETag, so of two
  takers only one wins.

The lease is released (the object deleted) when the command ends, on an error too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from infra import s3, storage
from infra.s3 import StorageError

LEASE = "_lease.json"
DEFAULT_TTL = 600.0


#: The S3 leases this process holds now (their URIs).
_HELD: set[str] = set()


def ttl_seconds() -> float:
    """How long an S3 lease lives without renewal: ``BIONER_LEASE_TTL``, default 600 s."""
    return float(os.environ.get("BIONER_LEASE_TTL", DEFAULT_TTL))


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, since when (UTC, ISO 8601), and when it was last renewed (epoch s)."""

    host: str
    pid: int
    command: str
    since: str
    renewed: float

    @classmethod
    def me(cls, command: str) -> Holder:
        now = time.time()
        since = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        return cls(socket.gethostname(), os.getpid(), command, since, now)

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder a lease object names; None for an empty or partly written one."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def renew(self) -> Holder:
        return Holder(self.host, self.pid, self.command, self.since, time.time())

    def stale(self, ttl: float) -> bool:
        """Whether the holder is gone: a process of this host that no longer runs, or a
        lease not renewed for ``ttl`` seconds."""
        if self.host == socket.gethostname() and not _running(self.pid):
            return True
        return time.time() - self.renewed > ttl

    def describe(self) -> str:
        return f"{self.command} (host {self.host}, pid {self.pid}) since {self.since}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class LeaseHeld(StorageError):
    """Another writer holds the output's lease."""

    def __init__(self, out: str, holder: Holder | None) -> None:
        who = holder.describe() if holder else "another process (its lease is being written)"
        # A local lease is free as soon as its holder is gone; an S3 one only after its TTL.
        hint = (
            f"; if that writer is gone, remove {storage.join(out, LEASE)} or wait for its TTL"
            if s3.is_s3(out)
            else ""
        )
        super().__init__(
            f"{out}: already being written by {who}; wait for it to finish{hint}",
            transient=False,
        )
        self.holder = holder


class Lease:
    """The held lease of an output; :meth:`release` (or leaving the ``with``) gives it back."""

    def __init__(self, out: str, command: str, ttl: float | None = None) -> None:
        self.out = out
        self.uri = storage.join(out, LEASE)
        self.ttl = ttl_seconds() if ttl is None else ttl
        self.holder = Holder.me(command)
        #: Whose stale lease this one replaced, if any.
        self.took_over: Holder | None = None
        #: Set when another writer took this S3 lease over (a stall longer than the TTL).
        self.lost = False
        self._fd: int | None = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if s3.is_s3(out):
            self._acquire_s3()
        else:
            self._acquire_local()

    # ------------------------------------------------------------------ local: flock

    def _acquire_local(self) -> None:
        path = storage.local_path(self.uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = Holder.parse(os.pread(fd, 4096, 0))
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LeaseHeld(self.out, holder) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file as we opened it: again
                os.close(fd)
                continue
            previous = Holder.parse(os.pread(fd, 4096, 0))
            self.took_over = previous
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.holder.encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return

    # ------------------------------------------------------------------ S3: conditional PUT

    def _acquire_s3(self) -> None:
        client = s3.client()
        bucket, key = s3.split(self.uri)
        with s3.errors(self.uri):
            while True:
                try:
                    put = client.put_object(
                        Bucket=bucket, Key=key, Body=self.holder.encode(), IfNoneMatch="*"
                    )
                    self._etag = put["ETag"]
                    break
                except client.exceptions.ClientError as e:
                    if not _precondition_failed(e):
                        raise
                try:
                    found = client.get_object(Bucket=bucket, Key=key)
                except client.exceptions.NoSuchKey:
                    continue  # released in between: try to create it again
                holder = Holder.parse(found["Body"].read())
                if holder is not None and not (holder.stale(self.ttl) or self._left_here(holder)):
                    raise LeaseHeld(self.out, holder)
                try:
                    put = client.put_object(
                        Bucket=bucket, Key=key, Body=self.holder.encode(), IfMatch=found["ETag"]
                    )
                except client.exceptions.ClientError as e:
                    if not _precondition_failed(e):
                        raise
                    continue  # another writer took it over first: look again
                self._etag = put["ETag"]
                self.took_over = holder
                break
        _HELD.add(self.uri)
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"lease {self.uri}", daemon=True
        )
        self._heartbeat.start()

    def _left_here(self, holder: Holder) -> bool:
        """Whether ``holder`` is this process, which holds no such lease now: an earlier
        command in it could not delete its lease (an outage at release)."""
        mine = holder.host == socket.gethostname() and holder.pid == os.getpid()
        return mine and self.uri not in _HELD

    def _renew(self) -> None:
        """Renew the S3 lease every third of the TTL until it is released or lost."""
        while not self._stop.wait(self.ttl / 3) and not self.lost:
            self.renew()

    def renew(self) -> None:
        """Renew the S3 lease if it is still ours (a PUT conditional on its ETag). A failed
        condition means another writer took it over after a stall longer than the TTL: the
        lease is lost. A network blip is left to the next beat."""
        client = s3.client()
        bucket, key = s3.split(self.uri)
        renewed = self.holder.renew()
        try:
            put = client.put_object(
                Bucket=bucket, Key=key, Body=renewed.encode(), IfMatch=self._etag
            )
        except client.exceptions.ClientError as e:
            self.lost = _precondition_failed(e)
            return
        except Exception:  # botocore's connection errors
            return
        self.holder, self._etag = renewed, put["ETag"]

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Give the lease back: unlock and remove the file, or delete the S3 object unless it
        was lost. Calling it twice does nothing."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(storage.local_path(self.uri))
            os.close(fd)  # drops the flock
        if self._heartbeat is not None:
            self._stop.set()
            self._heartbeat.join()
            self._heartbeat = None
            _HELD.discard(self.uri)
            if self.lost:
                return
            client = s3.client()
            bucket, key = s3.split(self.uri)
            with contextlib.suppress(client.exceptions.ClientError):
                client.delete_object(Bucket=bucket, Key=key, IfMatch=self._etag)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _precondition_failed(error: Any) -> bool:
    """Whether an S3 error is a failed condition (412), or a concurrent conditional write
    (409 ConditionalRequestConflict): in both cases someone else wrote the lease."""
    code = error.response.get("Error", {}).get("Code", "")
    return code in ("PreconditionFailed", "ConditionalRequestConflict")
