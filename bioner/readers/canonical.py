"""The project's interchange form: JSON lines ``{"id", "text", "spans": [{start, end, label}]}``.

Offsets are code-point indices into ``text``, end exclusive. Optional keys carry the rest of a
record losslessly and are written only when they differ from the default: ``title``,
``language`` (default ``en``), ``version`` (1), ``source``, ``metadata`` (an object of strings)
and ``relations`` (``[{"type", "args": [...]}]``). A span may carry its ``text``, then checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import (
    WriteReport,
    check_mention,
    check_offsets,
    dump_json_lines,
    json_lines,
    map_label,
    require,
)
from bioner.records import AnnotatedDocument, Document, Relation, Span, sorted_unique


def _relations(rec: dict[str, Any], n: int) -> tuple[Relation, ...]:
    raw = rec.get("relations", [])
    if not isinstance(raw, list):
        raise InputError("field 'relations' must be a list", line=n)
    out = []
    for r in raw:
        if not isinstance(r, dict):
            raise InputError("each relation must be a JSON object", line=n)
        args = require(r, "args", list, line=n)
        if not all(isinstance(a, str) for a in args):
            raise InputError("relation args must be strings", line=n)
        out.append(Relation(require(r, "type", str, line=n), tuple(args)))
    return tuple(out)


def _document(rec: dict[str, Any], n: int) -> Document:
    doc_id = require(rec, "id", str, line=n)
    if not doc_id:
        raise InputError("field 'id' must not be empty", line=n)
    metadata = rec.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InputError("field 'metadata' must be an object of strings", line=n)
    version = rec.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"field 'version' must be an integer >= 1, got {version!r}", line=n)
    optional = {}
    for key in ("title", "language", "source"):
        if key in rec:
            optional[key] = require(rec, key, str, line=n)
    return Document(
        id=doc_id,
        text=require(rec, "text", str, line=n),
        version=version,
        metadata=tuple(metadata.items()),
        **optional,
    )


def iter_canonical(
    source: str, *, dataset: DatasetSpec | None = None
) -> Iterator[tuple[int, AnnotatedDocument]]:
    """(line number, document) of a canonical JSON-lines file; ids must be unique."""
    seen: dict[str, int] = {}
    for n, rec in json_lines(source):
        doc = _document(rec, n)
        if doc.id in seen:
            raise InputError(f"document id {doc.id!r} already on line {seen[doc.id]}", line=n)
        seen[doc.id] = n
        raw_spans = require(rec, "spans", list, line=n)
        spans = []
        for k, s in enumerate(raw_spans):
            at = f"{doc.id}, span {k}"
            if not isinstance(s, dict):
                raise InputError("a span must be a JSON object", line=n, record=at)
            start = require(s, "start", int, line=n, record=at)
            end = require(s, "end", int, line=n, record=at)
            if "text" in s:
                check_mention(doc.text, start, end, s["text"], line=n, record=at)
            check_offsets(doc.text, start, end, line=n, record=at)
            label = map_label(
                require(s, "label", str, line=n, record=at), dataset, line=n, record=at
            )
            spans.append(Span(start, end, label))
        yield n, AnnotatedDocument(doc, sorted_unique(spans), _relations(rec, n))


def read_canonical(source: str, *, dataset: DatasetSpec | None = None) -> list[AnnotatedDocument]:
    """Documents of a canonical JSON-lines file, every span checked to lie inside its text."""
    return [doc for _, doc in iter_canonical(source, dataset=dataset)]


def to_canonical(doc: AnnotatedDocument) -> dict[str, Any]:
    """The canonical JSON object of one document (optional keys only when not default)."""
    d = doc.document
    obj: dict[str, Any] = {
        "id": d.id,
        "text": d.text,
        "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in doc.spans],
    }
    if d.title:
        obj["title"] = d.title
    if d.language != "en":
        obj["language"] = d.language
    if d.version != 1:
        obj["version"] = d.version
    if d.source:
        obj["source"] = d.source
    if d.metadata:
        obj["metadata"] = dict(d.metadata)
    if doc.relations:
        obj["relations"] = [{"type": r.type, "args": list(r.args)} for r in doc.relations]
    return obj


def write_canonical(docs: Iterable[AnnotatedDocument], *, report: WriteReport | None = None) -> str:
    """Canonical JSON lines of ``docs``; nothing is lost."""
    del report
    return dump_json_lines([to_canonical(d) for d in docs])
