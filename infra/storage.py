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
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

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
    uri: str, schema: pa.Schema | None = None, columns: list[str] | None = None
) -> pa.Table:
    """The table at ``uri`` (a file, or a folder of parts); checks the schema version if given."""
    table = pq.read_table(local_path(uri), columns=columns)
    if schema is not None:
        want = schema_version(schema)
        got = (table.schema.metadata or {}).get(SCHEMA_KEY, b"").decode()
        if got != want:
            raise ValueError(f"{uri}: expected a {want} table, found {got or 'no schema tag'}")
    return table


def read_metadata(uri: str) -> dict[str, str]:
    """The key-value metadata of a Parquet file (schema tag, run id, model id ...)."""
    meta = pq.read_schema(local_path(uri)).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def count_rows(uri: str) -> int:
    """Rows of the Parquet file at ``uri``, from its footer (no data read)."""
    return pq.ParquetFile(local_path(uri)).metadata.num_rows
