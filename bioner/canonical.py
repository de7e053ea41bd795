"""The canonical JSON lines form of annotated documents, read and written exactly.

One object per line: ``{"id": str, "text": str, "spans": [{"start": int, "end": int,
"label": str}]}``. Offsets are code-point indices into ``text``, ``end`` exclusive. Blank
lines are skipped, other keys are ignored, duplicate spans collapse to one, and a document id
may appear only once per file. Every error is an :class:`InputError` with its line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from bioner.errors import InputError
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique


def _lines(text: str) -> Iterator[tuple[int, str]]:
    # Split on "\n" only: str.splitlines() would also break at U+2028 and friends, which JSON
    # allows unescaped inside strings (and json.dumps(ensure_ascii=False) writes them so).
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(obj: dict[str, Any], key: str, kind: type, what: str, line: int) -> Any:
    if key not in obj:
        raise InputError(f'{what}: missing key "{key}"', line=line)
    value = obj[key]
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if not ok:
        raise InputError(
            f'{what}: "{key}" must be {kind.__name__}, got {type(value).__name__}', line=line
        )
    return value


def _parse_span(obj: object, index: int, text: str, line: int) -> Span:
    what = f"span {index}"
    if not isinstance(obj, dict):
        raise InputError(f"{what}: expected an object, got {type(obj).__name__}", line=line)
    start = _field(obj, "start", int, what, line)
    end = _field(obj, "end", int, what, line)
    label = _field(obj, "label", str, what, line)
    if not label:
        raise InputError(f"{what}: empty label", line=line)
    if start < 0 or end <= start:
        raise InputError(
            f"{what}: invalid offsets [{start}, {end}), need 0 <= start < end", line=line
        )
    if end > len(text):
        raise InputError(
            f"{what}: [{start}, {end}) out of range of text of length {len(text)}", line=line
        )
    return Span(start, end, label)


def parse_line(line: str, number: int) -> AnnotatedDocument:
    """One canonical JSON line as a document; ``number`` is its 1-based line for errors."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", line=number) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", line=number)
    doc_id = _field(obj, "id", str, "document", number)
    if not doc_id:
        raise InputError('document: empty "id"', line=number)
    text = _field(obj, "text", str, "document", number)
    spans = _field(obj, "spans", list, "document", number)
    parsed = [_parse_span(s, i, text, number) for i, s in enumerate(spans)]
    return AnnotatedDocument(Document(doc_id, text), sorted_unique(parsed))


def iter_canonical(text: str) -> Iterator[tuple[int, AnnotatedDocument]]:
    """Documents of a canonical JSON lines text with their 1-based line numbers, in order.

    Line numbers let a caller point at a document it rejects later (a text mismatch, say).
    """
    first_line: dict[str, int] = {}
    for number, line in _lines(text):
        doc = parse_line(line, number)
        if doc.id in first_line:
            raise InputError(
                f"duplicate document id (first on line {first_line[doc.id]})",
                line=number,
                record=doc.id,
            )
        first_line[doc.id] = number
        yield number, doc


def parse_canonical(text: str) -> list[AnnotatedDocument]:
    """All documents of a canonical JSON lines text; raises InputError naming the line."""
    return [doc for _, doc in iter_canonical(text)]


def dump_canonical(docs: Iterable[AnnotatedDocument]) -> str:
    """Canonical JSON lines for ``docs``: one object per line, spans sorted, UTF-8 unescaped."""
    out = []
    for doc in docs:
        spans = [
            {"start": s.start, "end": s.end, "label": s.label} for s in sorted_unique(doc.spans)
        ]
        out.append(
            json.dumps({"id": doc.id, "text": doc.text, "spans": spans}, ensure_ascii=False) + "\n"
        )
    return "".join(out)
