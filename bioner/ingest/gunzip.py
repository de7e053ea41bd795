"""Gzip decompression that hands out every byte before a cut and stops at stray trailing bytes.

:class:`gzip.GzipFile` drops the data it decompressed in the call that meets a cut (a read of
64 KiB at a cut inside the first 64 KiB gives nothing), and calls bytes after the last member
"not a gzipped file", losing the end of the data. :class:`GunzipStream` reads through
:func:`zlib.decompressobj` instead: all data before a cut is returned before ``EOFError``, stray
bytes after the last member end the data cleanly and are described in :attr:`trailing`.
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

_MAGIC = b"\x1f\x8b"
_IN_BYTES = 1 << 14  # compressed bytes fed at a time: a corrupt block loses at most their output
_OUT_BYTES = 1 << 16  # decompressed bytes produced at a time: a gzip bomb stays bounded
#: What ``EOFError`` says at a cut, as :mod:`gzip` says it.
TRUNCATED = "Compressed file ended before the end-of-stream marker was reached"


class GunzipStream(io.RawIOBase):
    """The decompressed bytes of a gzip stream of one or more members, read-only, forward only.

    ``read`` returns what is decompressed so far before raising: ``EOFError`` at a cut,
    ``zlib.error`` at corrupt data. After the end, :attr:`trailing` is "" or one line on the
    stray bytes that followed the last member (ignored, like gzip's trailing zeros).
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._pending = b""  # compressed bytes read but not yet given to the decompressor
        self._member_started = False
        self._compressed = 0  # bytes of the raw stream consumed by members
        self._done = False
        self._failure: BaseException | None = None
        self.trailing = ""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._next(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative); fewer only where the data ends or breaks."""
        if size is None or size < 0:
            return self.readall()
        chunks = []
        while size > 0:
            try:
                chunk = self._next(size)
            except (EOFError, zlib.error):
                if chunks:  # the failure is raised by the next read
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(_OUT_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)

    def _next(self, size: int) -> bytes:
        """Some decompressed bytes (at most ``size``); b"" at the end of the data."""
        while True:
            if self._failure is not None:
                raise self._failure
            if self._done:
                return b""
            inflate = self._inflate
            if inflate.unconsumed_tail:
                source = inflate.unconsumed_tail
            else:
                if not self._pending:
                    self._pending = self._raw.read(_IN_BYTES)
                    if not self._pending:
                        self._end_of_input()
                        continue
                source, self._pending = self._pending, b""
                self._member_started = True
            try:
                data = inflate.decompress(source, min(size, _OUT_BYTES))
            except zlib.error as e:
                self._failure = e
                raise
            self._compressed += len(source) - len(inflate.unconsumed_tail)
            if inflate.eof:
                self._compressed -= len(inflate.unused_data)
                self._next_member(inflate.unused_data)
            if data:
                return data

    def _end_of_input(self) -> None:
        if self._member_started and not self._inflate.eof:
            self._failure = EOFError(TRUNCATED)
        else:
            self._done = True

    def _next_member(self, rest: bytes) -> None:
        """After a member's end: another member, the end, or stray bytes."""
        self._member_started = False
        while len(rest) < 2 and (more := self._raw.read(_IN_BYTES)):
            rest += more
        if rest[:2] == _MAGIC:
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._pending = rest
            return
        self._done = True
        if not rest:
            return
        stray = len(rest)
        zeros = not rest.strip(b"\0")
        while more := self._raw.read(_OUT_BYTES):
            stray += len(more)
            zeros = zeros and not more.strip(b"\0")
        if not zeros:
            plural = "s" if stray > 1 else ""
            self.trailing = (
                f"{stray:,} stray trailing byte{plural} after the end of the gzip data "
                f"(at byte {self._compressed:,}) ignored"
            )
