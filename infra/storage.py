"""Table storage behind URIs: local Parquet files now, object storage and Delta later.

Every stage writes through :func:`write_table` and reads through :func:`read_table`, so moving
to S3/Delta changes this module only. A URI is a local path or ``file://`` URL for now; other
schemes fail with a message saying so. Writes are atomic: a reader sees the old file or the
complete new one, never a partial file (temporary file in the same folder, then
``os.replace``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import SCHEMA_KEY, schema_version

_GZIP_MAGIC = b"\x1f\x8b"


def local_path(uri: str) -> Path:
    """The local file system path of ``uri``; a clear error for schemes not supported yet."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    scheme, sep, _ = uri.partition("://")
    if sep and len(scheme) > 1:
        raise NotImplementedError(f"{uri}: storage scheme {scheme!r} is not supported yet")
    return Path(uri)


def join(uri: str, *parts: str) -> str:
    """``uri`` with path segments appended, as a string URI."""
    base = uri.rstrip("/")
    return "/".join([base, *(p.strip("/") for p in parts)])


def exists(uri: str) -> bool:
    """Whether a file or folder exists at ``uri``."""
    return local_path(uri).exists()


def is_dir(uri: str) -> bool:
    """Whether ``uri`` is a folder."""
    return local_path(uri).is_dir()


def size(uri: str) -> int:
    """Bytes of the file at ``uri``."""
    return local_path(uri).stat().st_size


def files_under(uri: str) -> list[str]:
    """Every file below the folder ``uri``, recursively, sorted by path (hidden ones too)."""
    root = local_path(uri)
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file()]


def list_dir(uri: str) -> list[str]:
    """Names of the entries of folder ``uri``, sorted; empty if it does not exist."""
    path = local_path(uri)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def remove_tree(uri: str) -> None:
    """Delete the folder ``uri`` and everything in it, if it exists."""
    shutil.rmtree(local_path(uri), ignore_errors=True)


def open_raw(uri: str) -> BinaryIO:
    """A binary stream of the file's bytes as stored (no decompression)."""
    return open(local_path(uri), "rb")


def read_text(uri: str) -> str:
    """A small UTF-8 text file (a config, a manifest)."""
    return local_path(uri).read_text(encoding="utf-8")


def append_line(uri: str, line: str) -> str:
    """Append one line to a log file, flushed to disk before returning.

    A crash can leave at most a partial last line, which readers of the log skip.
    """
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
    return uri


def open_input(uri: str) -> BinaryIO:
    """A binary stream of an input file, transparently gunzipped when it starts like gzip."""
    path = local_path(uri)
    with open(path, "rb") as f:
        packed = f.read(2) == _GZIP_MAGIC
    # Both close their file when the caller closes the stream.
    return gzip.open(path, "rb") if packed else open(path, "rb")


def write_table(
    table: pa.Table, uri: str, schema: pa.Schema, metadata: Mapping[str, str] | None = None
) -> str:
    """Write ``table`` as Parquet with exactly ``schema`` (plus ``metadata``) atomically.

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

    _atomic_write(local_path(uri), lambda tmp: pq.write_table(table, tmp))
    return uri


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, uri: str) -> str:
    """Write a small UTF-8 text file (a manifest, a summary) atomically; returns ``uri``."""
    _atomic_write(local_path(uri), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return uri


def write_rows(
    rows: list[dict[str, object]],
    uri: str,
    schema: pa.Schema,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Write ``rows`` (dicts keyed by column) with :func:`write_table`."""
    return write_table(pa.Table.from_pylist(rows, schema=schema), uri, schema, metadata)


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
    table = pq.read_table(local_path(uri), columns=columns, filters=filters)
    if schema is not None:
        _check_version(uri, table.schema, schema)
    return table


def iter_batches(
    uri: str,
    schema: pa.Schema | None = None,
    columns: list[str] | None = None,
    batch_size: int = 1024,
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file in batches of at most ``batch_size``, in file order.

    Memory stays bounded by a row group and a batch, whatever the file's size.
    """
    file = pq.ParquetFile(local_path(uri))
    if schema is not None:
        _check_version(uri, file.schema_arrow, schema)
    yield from file.iter_batches(batch_size=batch_size, columns=columns)


def _check_version(uri: str, found: pa.Schema, schema: pa.Schema) -> None:
    want = schema_version(schema)
    got = (found.metadata or {}).get(SCHEMA_KEY, b"").decode()
    if got != want:
        raise ValueError(f"{uri}: expected a {want} table, found {got or 'no schema tag'}")


class TableWriter:
    """Write a Parquet file batch by batch, so memory stays flat; it appears only on commit.

    Batches go to a temporary file beside ``uri``; :meth:`commit` renames it into place (a
    reader sees the old file or the complete new one), :meth:`abort` removes it. As a context
    manager it commits on success and aborts on an exception. Batches are cast to ``schema``.
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
        self._path = local_path(uri)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex}.tmp")
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
    meta = pq.read_schema(local_path(uri)).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def count_rows(uri: str) -> int:
    """Rows of the Parquet file at ``uri``, from its footer (no data read)."""
    return pq.ParquetFile(local_path(uri)).metadata.num_rows
