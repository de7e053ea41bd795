"""Readers of the other accepted inputs into documents: PubTator, BioC XML, JSON lines, Parquet.

All take the file's bytes or a binary stream and yield :class:`~bioner.records.Document` or
:class:`Quarantined` in file order, reading a stream in bounded memory (a record, a line, a
Parquet row group at a time). PubTator and BioC annotations are dropped (ingest wants the text).
Records are checked one by one: a PubTator record or BioC document that is malformed, a JSON
line or Parquet row without an id, with an empty text or a field of the wrong type, and an id
holding a control character are quarantined with the reason, never an exception; a BioC file
the XML breaks in resumes at the next ``<document>``.

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
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree

from bioner.errors import InputError
from bioner.ingest.cnki import RAW_LIMIT, iso_date
from bioner.ingest.detect import xml_root
from bioner.ingest.lang import detect_language
from bioner.ingest.types import Quarantined, id_problem, printable
from bioner.ingest.xmlstream import LINE_LIMIT, RecordSyntax, restart_prologue, xml_records
from bioner.readers.bioc import document_text
from bioner.records import Document, Section

_STRINGS = ("title", "language", "journal", "pub_date", "doi", "vernacular_title")
_LISTS = ("authors", "keywords", "mesh_headings", "publication_types")
#: The row fields that are read; the rest are ignored.
FIELDS = ("id", "text", "version", *_STRINGS, *_LISTS, "metadata")
PARQUET_BATCH_ROWS = 1_024


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


_BOM = b"\xef\xbb\xbf"
_PUBTATOR_PASSAGE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")


@dataclass
class _PubtatorRecord:
    """The lines of one PubTator record read so far: its PMID, title, abstract and problems."""

    pmid: str
    title: str
    line: int
    abstract: str | None = None
    problem: str = ""
    raw: list[str] = field(default_factory=list)
    raw_chars: int = 0

    def add(self, line: str) -> None:
        if self.raw_chars < RAW_LIMIT:
            self.raw.append(line)
            self.raw_chars += len(line) + 1

    def fail(self, problem: str) -> None:
        self.problem = self.problem or problem

    def item(self, position: int, source: str) -> Document | Quarantined:
        pmid = self.pmid
        problem = self.problem or id_problem(pmid)
        if not problem and self.abstract is None:
            problem = f"expected 'PMID|a|abstract' after the title of {pmid} (line {self.line})"
        text = f"{self.title} {self.abstract}" if self.abstract else self.title
        if not problem and not text.strip():
            problem = "empty text"
        if problem:
            raw = "\n".join(self.raw)[:RAW_LIMIT]
            return Quarantined(source, position, problem, printable(pmid), self.line, raw)
        return Document(
            id=pmid,
            text=text,
            title=self.title,
            language=detect_language(text),
            source=source,
            metadata=(("format", "pubtator"),),
            sections=_sections(text, self.title),
        )


def read_pubtator_documents(
    data: bytes | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Documents of a PubTator file (UTF-8), title from the ``|t|`` line; annotations dropped.

    Read a line at a time (memory holds one record, whatever the file's size). A record runs
    from its ``PMID|t|`` line to a blank line or the next title; one that is not a title, an
    abstract and annotation lines, holds undecodable bytes, or has an id with a control
    character is quarantined with its first line, and reading goes on. A PMID that occurs
    twice gives two records of that id: the ingest keeps the later one (a duplicate).
    """
    lines = _lines_of(io.BytesIO(data) if isinstance(data, bytes) else data)
    position = 0
    record: _PubtatorRecord | None = None
    for n, raw in enumerate(lines, start=1):
        raw = raw.removesuffix(b"\r")
        if n == 1:
            raw = raw.removeprefix(_BOM)
        try:
            line = raw.decode("utf-8")
            undecodable = ""
        except UnicodeDecodeError as e:
            line = raw.decode("utf-8", "replace")
            undecodable = f"not UTF-8: undecodable byte at line {n}, column {e.start + 1}"
        if not line.strip():
            if record is not None:
                position += 1
                yield record.item(position, source)
                record = None
            continue
        passage = _PUBTATOR_PASSAGE.match(line)
        if passage is not None and passage.group(2) == "t":
            if record is not None:
                position += 1
                yield record.item(position, source)
            record = _PubtatorRecord(passage.group(1), passage.group(3), n)
        elif record is None:
            record = _PubtatorRecord("", "", n)
            record.fail(f"expected 'PMID|t|title' at line {n}, got {line[:40]!r}")
        elif passage is not None:
            if passage.group(1) != record.pmid or record.abstract is not None:
                record.fail(f"unexpected {passage.group(1)}|a| line at line {n}")
            else:
                record.abstract = passage.group(3)
        elif record.abstract is None:
            record.fail(f"expected 'PMID|a|abstract' after the title of {record.pmid} (line {n})")
        record.add(line)
        if undecodable:
            record.fail(undecodable)
    if record is not None:
        yield record.item(position + 1, source)


def _check_collection(tree: etree._ElementTree) -> None:
    """A BioC file's root is ``collection``, and its DOCTYPE declares no entity."""
    dtd = tree.docinfo.internalDTD
    if dtd is not None and next(iter(dtd.iterentities()), None) is not None:
        raise InputError("the DOCTYPE declares entities: refused (entities are never expanded)")
    root = tree.getroot()
    if root is None or root.tag != "collection":
        found = "nothing" if root is None else f"<{root.tag}>"
        raise InputError(f"expected a BioC <collection>, got {found}")


_BIOC = RecordSyntax(
    tags=("document",),
    starts=re.compile(rb"<document[\s>/]"),
    id_pattern=re.compile(rb"<id>\s*([^<\s]{1,40})"),
    id_name="id",
    check=_check_collection,
)
_BIOC_HEAD_BYTES = 1 << 16


def read_bioc_documents(
    data: bytes | BinaryIO, source: str = ""
) -> Iterator[Document | Quarantined]:
    """Documents of a BioC XML collection (the XML declares its encoding); annotations dropped.

    Read as a stream (:func:`~bioner.ingest.xmlstream.xml_records`): memory holds one
    document. A document without an id, with an id holding a control character, with
    passages that overlap, without text, or that the XML breaks in is quarantined, and
    reading goes on at the next ``<document>``.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    head = stream.read(_BIOC_HEAD_BYTES)
    if not head.strip():
        raise InputError("empty file")
    root = xml_root(head)
    if root is not None and root != "collection":
        raise InputError(f"expected a BioC <collection>, got <{root}>")
    restart = restart_prologue(head, "collection")
    return _bioc_items(stream, head, source, restart)


def _bioc_items(
    stream: BinaryIO, head: bytes, source: str, restart: bytes | None
) -> Iterator[Document | Quarantined]:
    for position, record, shift in xml_records(stream, head, source, _BIOC, restart):
        if isinstance(record, Quarantined):
            yield record
        else:
            yield _bioc_document(record, position, source, shift)


def _bioc_document(
    elem: etree._Element, position: int, source: str, shift: int
) -> Document | Quarantined:
    line = elem.sourceline + shift if elem.sourceline else None
    doc_id = (elem.findtext("id") or "").strip()

    def quarantined(reason: str) -> Quarantined:
        raw = etree.tostring(elem, encoding="unicode", with_tail=False)[:RAW_LIMIT]
        known = line if line is not None and line < LINE_LIMIT else None
        return Quarantined(source, position, reason, printable(doc_id), known, raw)

    if not doc_id:
        return quarantined("document without an <id>")
    if problem := id_problem(doc_id):
        return quarantined(problem)
    entity = next(elem.iter(etree.Entity), None)
    if entity is not None:
        return quarantined(f"entity reference {entity.text} left unexpanded (no DTD is read)")
    try:
        text, title = document_text(elem, doc_id)
    except InputError as e:
        return quarantined(e.message)
    if not text.strip():
        return quarantined("empty text")
    return Document(
        id=doc_id,
        text=text,
        title=title,
        language=detect_language(text),
        source=source,
        metadata=(("format", "bioc"),),
        sections=_sections(text, title),
    )


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
