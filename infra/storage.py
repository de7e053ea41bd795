"""Table storage behind URIs: local folders and ``s3://bucket/prefix``, one set of functions.

Every stage writes through :func:`write_table` and reads through :func:`read_table`, so where
the tables live changes this module only. A URI is a local path, a ``file://`` URL, or an
``s3://`` URI (:mod:`infra.s3`: AWS credential chain, endpoint override, SDK retries).

Writes are atomic: a reader sees the old object or the complete new one, never a partial one.
Locally that is a temporary file in the same folder, then ``os.replace``; on S3 the bytes are
made in a local temporary file first and then go up as one PUT (or one multipart upload for a
large object), which S3 makes visible only when complete; a failure before that leaves the old
object. A temporary file's name carries its writer's host and process id, so the next run can
remove what a killed one left (:func:`remove_orphan_temps`) without touching a live writer's.
Paths are joined with :func:`join`, which refuses components that would climb out of the base
(``..``); :func:`key_component` encodes any text (a document id) as one safe component.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, cast
from urllib.parse import quote

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from infra import s3
from infra.s3 import StorageError
from schemas import SCHEMA_KEY, schema_version

__all__ = ["StorageError"]

_GZIP_MAGIC = b"\x1f\x8b"
_COPY_CHUNK = 8 << 20


def local_path(uri: str) -> Path:
    """The local file system path of ``uri``; a clear error for an S3 or unknown scheme."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    scheme, sep, _ = uri.partition("://")
    if sep and scheme == "s3":
        raise ValueError(f"{uri}: an S3 URI has no local path")
    if sep and len(scheme) > 1:
        raise NotImplementedError(f"{uri}: storage scheme {scheme!r} is not supported")
    return Path(uri)


def join(uri: str, *parts: str) -> str:
    """``uri`` with path segments appended, as a string URI.

    A segment ``..`` or ``.``, or a control character, is refused: a joined path never
    leaves ``uri``. Use :func:`key_component` for text that is not a known-safe name.
    """
    base = uri.rstrip("/")
    cleaned = [p.strip("/") for p in parts]
    for part in cleaned:
        for segment in part.split("/"):
            if segment in ("..", ".") or any(ord(c) < 32 or c == "\\" for c in segment):
                raise ValueError(f"{base}: path component {part!r} would escape it")
    return "/".join([base, *cleaned])


def key_component(text: str) -> str:
    """``text`` (a document id ...) as one path component that cannot escape its folder.

    Letters, digits and ``-_.=`` stay; anything else (``/``, spaces, non-ASCII) is
    percent-encoded as UTF-8, and a leading dot too, so ``..`` and hidden names cannot occur.
    Distinct texts give distinct components.
    """
    if not text:
        raise ValueError("an empty string is not a path component")
    encoded = quote(text, safe="-_.=")
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded


def _fs_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow file system and path of ``uri`` (S3 only; local paths use ``Path``)."""
    return s3.filesystem(), s3.path_of(uri)


def _info(uri: str) -> pafs.FileInfo:
    fs, path = _fs_path(uri)
    with s3.errors(uri):
        return fs.get_file_info(path)


def exists(uri: str) -> bool:
    """Whether a file or folder exists at ``uri``."""
    if s3.is_s3(uri):
        return _info(uri).type != pafs.FileType.NotFound
    return local_path(uri).exists()


def is_dir(uri: str) -> bool:
    """Whether ``uri`` is a folder (on S3: a prefix with objects under it)."""
    if s3.is_s3(uri):
        return _info(uri).type == pafs.FileType.Directory
    return local_path(uri).is_dir()


def size(uri: str) -> int:
    """Bytes of the file at ``uri``."""
    if s3.is_s3(uri):
        info = _info(uri)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{uri}: no such object")
        return int(info.size)
    return local_path(uri).stat().st_size


def _s3_listing(uri: str, recursive: bool) -> list[pafs.FileInfo]:
    fs, path = _fs_path(uri)
    with s3.errors(uri):
        return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive))


def files_under(uri: str) -> list[str]:
    """Every file below the folder ``uri``, recursively, sorted by path (hidden ones too)."""
    if s3.is_s3(uri):
        found = (i.path for i in _s3_listing(uri, True) if i.type == pafs.FileType.File)
        return sorted(s3.SCHEME + p for p in found)
    root = local_path(uri)
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file()]


def list_dir(uri: str) -> list[str]:
    """Names of the entries of folder ``uri``, sorted; empty if it does not exist."""
    if s3.is_s3(uri):
        return sorted(i.base_name for i in _s3_listing(uri, False))
    path = local_path(uri)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def remove_tree(uri: str) -> None:
    """Delete the folder ``uri`` and everything in it, if it exists."""
    if s3.is_s3(uri):
        fs, path = _fs_path(uri)
        if "/" not in path:
            raise ValueError(f"{uri}: refusing to empty a whole bucket")
        with s3.errors(uri):
            if fs.get_file_info(path).type == pafs.FileType.Directory:
                fs.delete_dir(path)
        return
    shutil.rmtree(local_path(uri), ignore_errors=True)


def remove(uri: str) -> None:
    """Delete the file ``uri`` if it exists."""
    if s3.is_s3(uri):
        fs, path = _fs_path(uri)
        with s3.errors(uri):
            if fs.get_file_info(path).type == pafs.FileType.File:
                fs.delete_file(path)
        return
    local_path(uri).unlink(missing_ok=True)


def open_raw(uri: str) -> BinaryIO:
    """A binary stream of the file's bytes as stored (no decompression)."""
    if s3.is_s3(uri):
        fs, path = _fs_path(uri)
        with s3.errors(uri):
            return cast(BinaryIO, fs.open_input_file(path))
    return open(local_path(uri), "rb")


def read_bytes(uri: str) -> bytes:
    """The whole (small) file's bytes."""
    with open_raw(uri) as f, s3.errors(uri):
        return f.read()


def read_text(uri: str) -> str:
    """A small UTF-8 text file (a config, a manifest)."""
    if s3.is_s3(uri):
        return read_bytes(uri).decode("utf-8")
    return local_path(uri).read_text(encoding="utf-8")


def append_line(uri: str, line: str) -> str:
    """Append one line to a log file, flushed to disk before returning.

    A crash can leave at most a partial last line, which readers of the log skip. S3 has no
    append: the object is read and written back whole (one PUT), fine for the small,
    single-writer logs this is for.
    """
    text = line.rstrip("\n") + "\n"
    if s3.is_s3(uri):
        try:
            old = read_bytes(uri)
        except FileNotFoundError:
            old = b""
        _upload_bytes(old + text.encode("utf-8"), uri)
        return uri
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return uri


class _ClosingGzip(gzip.GzipFile):
    """A gunzipping stream that closes the stream it reads when closed."""

    def close(self) -> None:
        raw = self.fileobj
        try:
            super().close()
        finally:
            if raw is not None:
                raw.close()


def open_input(uri: str) -> BinaryIO:
    """A binary stream of an input file, transparently gunzipped when it starts like gzip."""
    if s3.is_s3(uri):
        raw = open_raw(uri)
        packed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        return cast(BinaryIO, _ClosingGzip(fileobj=raw, mode="rb")) if packed else raw
    path = local_path(uri)
    with open(path, "rb") as f:
        packed = f.read(2) == _GZIP_MAGIC
    # Both close their file when the caller closes the stream.
    return gzip.open(path, "rb") if packed else open(path, "rb")


def write_table(
    table: pa.Table,
    uri: str,
    schema: pa.Schema,
    metadata: Mapping[str, str] | None = None,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> str:
    """Write ``table`` as Parquet with exactly ``schema`` (plus ``metadata``) atomically,
    ``compression`` as ``pyarrow.parquet.write_table`` takes it (snappy: fast to read and
    write; zstd for a file written once and shipped).

    Columns are selected and cast to the schema, so a missing column or a lossy type fails
    here rather than in a later reader. Returns ``uri``.
    """
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{uri}: table lacks columns {missing} of {schema_version(schema)}")
    table = table.select(schema.names).cast(schema)
    meta = dict(schema.metadata or {})
    for key, value in (metadata or {}).items():
        meta[key.encode()] = value.encode()
    table = table.replace_schema_metadata(meta)

    _atomic_write(
        uri,
        lambda tmp: pq.write_table(
            table, tmp, compression=compression, compression_level=compression_level
        ),
    )
    return uri


def _atomic_write(uri: str, write: Callable[[Path], None]) -> None:
    """Make the file with ``write(temporary path)``, then put it at ``uri`` in one step."""
    if s3.is_s3(uri):
        tmp = _local_temp()
        try:
            write(tmp)
            _upload(tmp, uri)
        finally:
            tmp.unlink(missing_ok=True)
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: This host, as temporary names carry it: a process id means something on its host only.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: ``.<name>.<host>-<pid>-<uuid>.tmp`` beside a table, ``bioner-<host>-<pid>-<random>.tmp``
#: in the temporary folder; and the names before they carried a writer (``.<name>.<uuid>.tmp``).
_OWNED_TEMP = re.compile(r"^(?:\..+\.|bioner-)(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[^/]+\.tmp$")
_UNOWNED_TEMP = re.compile(r"^\..+\.[0-9a-f]+\.tmp$")
#: An unowned temporary file this long untouched has no writer (writers write as they go).
UNOWNED_TEMP_AGE_S = 24 * 3600


def _owner() -> str:
    return f"{_HOST}-{os.getpid()}"


def _temp_beside(path: Path) -> Path:
    """The temporary name a file written to ``path`` has until it is moved into place."""
    return path.with_name(f".{path.name}.{_owner()}-{uuid.uuid4().hex}.tmp")


def _local_temp() -> Path:
    """A fresh local temporary file name for an object on its way up to S3."""
    fd, name = tempfile.mkstemp(prefix=f"bioner-{_owner()}-", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _orphan(path: Path) -> bool:
    """Whether temporary file ``path`` belongs to no live writer: its process on this host has
    exited, or (a name without its writer) nothing has touched it for a day."""
    owned = _OWNED_TEMP.match(path.name)
    if owned:
        return owned["host"] == _HOST and not psutil.pid_exists(int(owned["pid"]))
    if _UNOWNED_TEMP.match(path.name):
        try:
            return time.time() - path.stat().st_mtime > UNOWNED_TEMP_AGE_S
        except FileNotFoundError:
            return False
    return False


def remove_orphan_temps(uri: str) -> int:
    """Remove the temporary files killed writers left under the local folder ``uri`` (none on
    S3: an upload appears whole or not at all) and in the temporary folder; returns how many.

    A file whose writer still runs on this host, or that was written on another host, stays.
    """
    folders = [Path(tempfile.gettempdir())]
    if not s3.is_s3(uri) and local_path(uri).is_dir():
        folders.append(local_path(uri))
    removed = 0
    for i, folder in enumerate(folders):
        paths = folder.glob("bioner-*.tmp") if i == 0 else folder.rglob("*.tmp")
        for path in paths:
            if path.is_file() and _orphan(path):
                try:
                    path.unlink()
                except OSError:  # gone meanwhile, or another user's
                    continue
                removed += 1
    return removed


def _upload(local: Path, uri: str) -> None:
    """Put the local file at the S3 ``uri``: one PUT, or one multipart upload when large.

    The object appears whole when the upload completes; a failure before that leaves what
    was there. (A failed multipart upload leaves invisible parts that the bucket's
    ``AbortIncompleteMultipartUpload`` lifecycle rule removes.)
    """
    fs, path = _fs_path(uri)
    with (
        s3.errors(uri),
        open(local, "rb") as src,
        fs.open_output_stream(path, compression=None) as dst,
    ):
        while chunk := src.read(_COPY_CHUNK):
            dst.write(chunk)


def _upload_bytes(data: bytes, uri: str) -> None:
    fs, path = _fs_path(uri)
    with s3.errors(uri), fs.open_output_stream(path, compression=None) as dst:
        dst.write(data)


def write_text(text: str, uri: str) -> str:
    """Write a small UTF-8 text file (a manifest, a summary) atomically; returns ``uri``."""
    if s3.is_s3(uri):
        _upload_bytes(text.encode("utf-8"), uri)
        return uri
    _atomic_write(uri, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return uri


def write_bytes(data: bytes, uri: str) -> str:
    """Write a small binary file atomically; returns ``uri``."""
    if s3.is_s3(uri):
        _upload_bytes(data, uri)
        return uri
    _atomic_write(uri, lambda tmp: tmp.write_bytes(data))
    return uri


def write_rows(
    rows: list[dict[str, object]],
    uri: str,
    schema: pa.Schema,
    metadata: Mapping[str, str] | None = None,
    **parquet: Any,
) -> str:
    """Write ``rows`` (dicts keyed by column) with :func:`write_table` (``parquet``: its
    compression options)."""
    return write_table(pa.Table.from_pylist(rows, schema=schema), uri, schema, metadata, **parquet)


def read_table(
    uri: str,
    schema: pa.Schema | None = None,
    columns: list[str] | None = None,
    filters: Any = None,
) -> pa.Table:
    """The table at ``uri`` (a file, or a folder of parts); checks the schema version if given.

    ``filters`` are pyarrow's (``[("id", "in", ids)]``): row groups that cannot match are
    skipped unread.
    """
    if s3.is_s3(uri):
        fs, path = _fs_path(uri)
        with s3.errors(uri):
            table = pq.read_table(path, columns=columns, filters=filters, filesystem=fs)
    else:
        table = pq.read_table(local_path(uri), columns=columns, filters=filters)
    if schema is not None:
        _check_version(uri, table.schema, schema)
    return table


def use_returning_memory_pool() -> str:
    """Make Arrow allocate from a pool that gives freed memory back; returns its backend name.

    pyarrow's default on Linux, mimalloc, keeps the pages of freed buffers: reading a Parquet
    file row group by row group then grows the process by about 4 MiB per row group read,
    although only one is alive at a time, so a long ingest's memory grows with its input.
    jemalloc (or the system allocator where pyarrow has no jemalloc) returns them. Ingest calls
    this at its entry points and in its worker processes; it changes the default pool of the
    whole process, which is what a pipeline process wants.
    """
    pool = pa.default_memory_pool()
    if pool.backend_name != "mimalloc":
        return pool.backend_name
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a build without jemalloc (Windows)
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return pool.backend_name


def _parquet_file(uri: str) -> pq.ParquetFile:
    if s3.is_s3(uri):
        with s3.errors(uri):
            return pq.ParquetFile(open_raw(uri))
    return pq.ParquetFile(local_path(uri))


def iter_batches(
    uri: str,
    schema: pa.Schema | None = None,
    columns: list[str] | None = None,
    batch_size: int = 1024,
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file in batches of at most ``batch_size``, in file order.

    Memory stays bounded by a row group and a batch, whatever the file's size.
    """
    file = _parquet_file(uri)
    if schema is not None:
        _check_version(uri, file.schema_arrow, schema)
    with s3.errors(uri):
        yield from file.iter_batches(batch_size=batch_size, columns=columns)


def _check_version(uri: str, found: pa.Schema, schema: pa.Schema) -> None:
    want = schema_version(schema)
    got = (found.metadata or {}).get(SCHEMA_KEY, b"").decode()
    if got != want:
        raise ValueError(f"{uri}: expected a {want} table, found {got or 'no schema tag'}")


class TableWriter:
    """Write a Parquet file batch by batch, so memory stays flat; it appears only on commit.

    Batches go to a temporary file (beside ``uri`` locally, in the temporary folder for S3);
    :meth:`commit` moves it into place (rename, or one upload), so a reader sees the old file
    or the complete new one; :meth:`abort` removes it. As a context manager it commits on
    success and aborts on an exception. Batches are cast to ``schema``.
    """

    def __init__(
        self, uri: str, schema: pa.Schema, metadata: Mapping[str, str] | None = None
    ) -> None:
        meta = dict(schema.metadata or {})
        for key, value in (metadata or {}).items():
            meta[key.encode()] = value.encode()
        self.uri = uri
        self.schema = schema.with_metadata(meta)
        self.rows = 0
        if s3.is_s3(uri):
            s3.split(uri)  # a malformed URI fails now, not at commit
            self._path: Path | None = None
            self._tmp = _local_temp()
        else:
            self._path = local_path(uri)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = _temp_beside(self._path)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._tmp, self.schema)

    def write(self, rows: pa.RecordBatch | pa.Table) -> None:
        """Append rows (columns selected and cast to the schema)."""
        if rows.num_rows == 0:
            return
        if self._writer is None:
            raise ValueError(f"{self.uri}: writer already closed")
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        self._writer.write_table(table.select(self.schema.names).cast(self.schema))
        self.rows += rows.num_rows

    def close(self) -> None:
        """Finish the temporary file without moving it into place (see :meth:`commit`)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> str:
        """Finish the file and move it to ``uri``; returns ``uri``."""
        self.close()
        if self._path is None:
            try:
                _upload(self._tmp, self.uri)
            finally:
                self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self._path)
        return self.uri

    def abort(self) -> None:
        """Drop what was written; ``uri`` keeps its old content, if any."""
        try:
            self.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def read_metadata(uri: str) -> dict[str, str]:
    """The key-value metadata of a Parquet file (schema tag, run id, model id ...)."""
    if s3.is_s3(uri):
        with s3.errors(uri):
            meta = _parquet_file(uri).schema_arrow.metadata or {}
    else:
        meta = pq.read_schema(local_path(uri)).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def count_rows(uri: str) -> int:
    """Rows of the Parquet file at ``uri``, from its footer (no data read)."""
    return _parquet_file(uri).metadata.num_rows
