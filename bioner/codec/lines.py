"""The JSON lines form of tagger outputs: ``{"id", "text", "output"[, "finish_reason"]}``.

``bioner convert --to symbolic|json-entities`` writes it (gold turned into training targets),
``bioner decode`` reads it (model outputs turned into spans), and ``bioner convert --from
symbolic|json-entities`` reads it back into gold documents, strictly: a record whose output
does not decode cleanly is an error there, since gold must not lose spans silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bioner.codec import TAG_FORMATS
from bioner.errors import InputError
from bioner.labels import EntitySchema
from bioner.readers._common import dump_json_lines, json_lines, require
from bioner.records import AnnotatedDocument, Document, sorted_unique


@dataclass(frozen=True, slots=True)
class TaggedLine:
    """One passage and the tagger's (or the encoder's) output for it."""

    id: str
    text: str
    output: str
    finish_reason: str | None = None
    line: int = 0  # where it was read, for error messages


def parse_tagged_lines(data: str) -> list[TaggedLine]:
    """Records of a JSON lines file; InputError naming the line for anything malformed."""
    out: list[TaggedLine] = []
    seen: dict[str, int] = {}
    for n, obj in json_lines(data):
        rid = require(obj, "id", str, line=n)
        if rid in seen:
            raise InputError(f"duplicate id {rid!r} (first on line {seen[rid]})", line=n)
        seen[rid] = n
        finish = obj.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            raise InputError("field 'finish_reason' must be str", line=n)
        text, output = require(obj, "text", str, line=n), require(obj, "output", str, line=n)
        out.append(TaggedLine(rid, text, output, finish, n))
    return out


def dump_tagged_lines(lines: Iterable[TaggedLine]) -> str:
    """JSON lines text of ``lines`` (UTF-8 characters kept, one object per line)."""
    rows = []
    for t in lines:
        obj = {"id": t.id, "text": t.text, "output": t.output}
        if t.finish_reason is not None:
            obj["finish_reason"] = t.finish_reason
        rows.append(obj)
    return dump_json_lines(rows)


def write_tagged(docs: Iterable[AnnotatedDocument], schema: EntitySchema, fmt: str) -> str:
    """Gold documents as tagger targets in format ``fmt`` (symbolic or json-entities)."""
    encode = TAG_FORMATS[fmt].encode
    return dump_tagged_lines(
        TaggedLine(d.id, d.text, encode(d.text, d.spans, schema)) for d in docs
    )


def read_tagged(data: str, schema: EntitySchema, fmt: str) -> list[AnnotatedDocument]:
    """Tagger targets back to gold documents; any lossy decode issue is an InputError."""
    decode = TAG_FORMATS[fmt].decode
    docs = []
    for t in parse_tagged_lines(data):
        spans, issues = decode(t.output, t.text, schema, finish_reason=t.finish_reason)
        lossy = [i for i in issues if i.lossy]
        if lossy:
            raise InputError(
                f"output does not decode cleanly: {lossy[0]}", line=t.line, record=t.id
            )
        docs.append(AnnotatedDocument(Document(id=t.id, text=t.text), sorted_unique(spans)))
    return docs
