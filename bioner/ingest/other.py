"""Readers of the other accepted inputs into documents: PubTator, BioC XML, JSON lines, Parquet.

All take the file's bytes and yield :class:`~bioner.records.Document` or :class:`Quarantined`
in file order. PubTator and BioC reuse the annotated-corpus readers of :mod:`bioner.readers` (the
gold spans are dropped: ingest wants the text); a malformed file is an :class:`InputError` there.
JSON lines and Parquet rows are checked one by one: a row without an id, with an empty text or a
field of the wrong type is quarantined, never an exception.

Rows (JSON objects, Parquet rows) have ``id`` and ``text``, optionally ``title``, ``version``,
``language``, ``journal``, ``pub_date``, ``doi``, ``vernacular_title``, ``authors``,
``keywords``, ``mesh_headings``, ``publication_types`` (lists of strings) and ``metadata`` (an
object of strings); other fields are ignored. The document text is ``title + " " + text`` when
the title is non-empty and the text does not already start with it (followed by a space or a
line break, or alone), else ``text`` as given; text and title are taken as they are.
The language is detected from the text when not given.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from bioner.errors import InputError
from bioner.ingest.cnki import RAW_LIMIT, iso_date
from bioner.ingest.lang import detect_language
from bioner.ingest.types import Quarantined, id_problem, printable
from bioner.readers import read_bioc, read_pubtator
from bioner.records import AnnotatedDocument, Document, Section

_STRINGS = ("title", "language", "journal", "pub_date", "doi", "vernacular_title")
_LISTS = ("authors", "keywords", "mesh_headings", "publication_types")
#: The row fields that are read; the rest are ignored.
FIELDS = ("id", "text", "version", *_STRINGS, *_LISTS, "metadata")
PARQUET_BATCH_ROWS = 1_024


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            f"undecodable bytes at byte offset {e.start}: {what} must be UTF-8",
            line=data.count(b"\n", 0, e.start) + 1,
        ) from None


def _sections(text: str, title: str) -> tuple[Section, ...]:
    """TITLE and ABSTRACT sections when ``text`` starts with ``title``; none otherwise."""
    if not title or not _includes_title(text, title):
        return ()
    sections = [Section("TITLE", 0, len(title))]
    start = len(title)
    while start < len(text) and text[start].isspace():
        start += 1
    if start < len(text):
        sections.append(Section("ABSTRACT", start, len(text)))
    return tuple(sections)


def _from_annotated(
    docs: Iterable[AnnotatedDocument], source: str, fmt: str
) -> Iterator[Document | Quarantined]:
    for position, annotated in enumerate(docs, start=1):
        doc = annotated.document
        if not doc.text.strip():
            yield Quarantined(source, position, "empty text", record_id=doc.id)
            continue
        # PubTator's text is title + " " + abstract; BioC's title passage comes first.
        yield Document(
            id=doc.id,
            text=doc.text,
            title=doc.title,
            language=detect_language(doc.text),
            source=source,
            metadata=(("format", fmt),),
            sections=_sections(doc.text, doc.title),
        )


def read_pubtator_documents(data: bytes, source: str = "") -> Iterator[Document | Quarantined]:
    """Documents of a PubTator file (UTF-8), title from the ``|t|`` line; annotations dropped."""
    return _from_annotated(read_pubtator(_utf8(data, "PubTator")), source, "pubtator")


def read_bioc_documents(data: bytes, source: str = "") -> Iterator[Document | Quarantined]:
    """Documents of a BioC XML collection (the XML declares its encoding); annotations dropped."""
    return _from_annotated(read_bioc(data), source, "bioc")


def _raw(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)[:RAW_LIMIT]


class _Reject(Exception):
    """A row that cannot become a document; the message is the quarantine reason."""


def _string(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, dt.date):  # a Parquet date column
        return value.isoformat()[:10]
    if not isinstance(value, str):
        raise _Reject(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _strings(row: dict[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Reject(f"field {key!r} must be a list of strings")
    return tuple(value)


def _metadata(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    value = row.get("metadata")
    if value is None:
        return ()
    # JSON gives an object; a Parquet map column gives a list of (key, value) pairs.
    pairs = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(pairs, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in pairs
    ):
        raise _Reject("field 'metadata' must be an object of strings")
    return tuple((k, v) for k, v in pairs)


def _includes_title(text: str, title: str) -> bool:
    """Whether ``text`` already starts with ``title`` as its own line or words."""
    return text.startswith(title) and (len(text) == len(title) or text[len(title)].isspace())


def _row_document(row: dict[str, Any], source: str, fmt: str) -> Document:
    """The document of one row; :class:`_Reject` with the reason when it cannot be one."""
    doc_id = row.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is None or doc_id == "":
        raise _Reject("missing id")
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise _Reject(f"field 'id' must be a non-blank string, got {doc_id!r}")
    if problem := id_problem(doc_id):
        raise _Reject(f"field 'id': {problem}")
    body = row.get("text")
    if body is not None and not isinstance(body, str):
        raise _Reject(f"field 'text' must be a string, got {type(body).__name__}")
    if not body or not body.strip():
        raise _Reject("empty text")
    version = row.get("version")
    if version is None:
        version = 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Reject(f"field 'version' must be a positive integer, got {version!r}")
    fields = {key: _string(row, key) for key in _STRINGS}
    title = fields["title"]
    text = body if not title or _includes_title(body, title) else f"{title} {body}"
    pub_date = fields["pub_date"]
    if pub_date and iso_date(pub_date) != pub_date:
        raise _Reject(
            f"field 'pub_date' must be an ISO date (2024, 2024-05, 2024-05-17), got {pub_date!r}"
        )
    return Document(
        id=doc_id,
        text=text,
        version=version,
        title=title,
        language=fields["language"] or detect_language(text),
        source=source,
        metadata=(("format", fmt), *_metadata(row)),
        journal=fields["journal"],
        pub_date=pub_date,
        doi=fields["doi"],
        authors=_strings(row, "authors"),
        mesh_headings=_strings(row, "mesh_headings"),
        keywords=_strings(row, "keywords"),
        publication_types=_strings(row, "publication_types"),
        vernacular_title=fields["vernacular_title"],
        sections=_sections(text, title),
    )


_READ_BYTES = 1 << 20


def _lines_of(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary stream read in 1 MiB blocks (any stream with ``read``)."""
    rest = b""
    while block := stream.read(_READ_BYTES):
        *lines, rest = (rest + block).split(b"\n")
        yield from lines
    if rest:
        yield rest


def read_jsonl_documents(
    data: bytes | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Documents of JSON lines (UTF-8), one object a line; blank lines skipped, a bad line
    quarantined with its line number.

    ``data`` is the file's bytes or a binary stream, read a line at a time (memory stays at one
    line, whatever the file's size).
    """
    lines = data.split(b"\n") if isinstance(data, bytes) else _lines_of(data)
    position = 0
    for n, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if n == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        position += 1
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield Quarantined(
                source,
                position,
                f"not UTF-8: undecodable byte at column {e.start + 1}",
                line=n,
                raw=line.decode("utf-8", "replace")[:RAW_LIMIT],
            )
            continue
        except json.JSONDecodeError as e:
            yield Quarantined(
                source,
                position,
                f"invalid JSON: {e.msg} (column {e.colno})",
                line=n,
                raw=line.decode("utf-8")[:RAW_LIMIT],
            )
            continue
        if not isinstance(row, dict):
            yield Quarantined(
                source,
                position,
                f"expected a JSON object, got {type(row).__name__}",
                line=n,
                raw=_raw({"value": row}),
            )
            continue
        yield _row(row, source, "jsonl", position, n)


def _row(
    row: dict[str, Any], source: str, fmt: str, position: int, line: int | None
) -> Document | Quarantined:
    try:
        return _row_document(row, source, fmt)
    except _Reject as e:
        record_id = row.get("id")
        readable = isinstance(record_id, str | int) and not isinstance(record_id, bool)
        return Quarantined(
            source,
            position,
            str(e),
            record_id=printable(str(record_id)) if readable else "",
            line=line,
            raw=_raw(row),
        )


def read_parquet_documents(
    data: bytes | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Documents of a Parquet file's rows (columns ``id``, ``text``, optionally ``title`` ...),
    read batch by batch so memory stays bounded by a row group.

    ``data`` is the file's bytes or a seekable binary stream (Parquet's footer is at the end).
    """
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data) if isinstance(data, bytes) else data)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"not a Parquet file: {e}") from None
    names = parquet.schema_arrow.names
    missing = [c for c in ("id", "text") if c not in names]
    if missing:
        raise InputError(
            f"Parquet file has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(names) or 'none'})"
        )
    columns = [c for c in FIELDS if c in names]
    return _parquet_rows(parquet, columns, source)


def _parquet_rows(
    parquet: pq.ParquetFile, columns: list[str], source: str
) -> Iterator[Document | Quarantined]:
    position = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        for row in batch.to_pylist():
            position += 1
            yield _row(row, source, "parquet", position, None)
