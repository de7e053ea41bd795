"""CMeEE (CBLUE): a JSON array of ``{text, entities: [{start_idx, end_idx, type, entity}]}``.

``end_idx`` is INCLUSIVE in CMeEE; spans get the exclusive ``end_idx + 1``. Records have no ids:
a document's id is ``<prefix><index>`` (0-based position in the array), which is also the
``record`` an error names. Entities may nest (V2 has 4,522 nested pairs) and all are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport, check_offsets, map_label, require
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique


def read_cmeee(
    source: str, *, dataset: DatasetSpec | None = None, id_prefix: str = ""
) -> list[AnnotatedDocument]:
    """Records of a CMeEE JSON file as documents with verified spans (inclusive ends fixed)."""
    try:
        records = json.loads(source)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    if not isinstance(records, list):
        raise InputError(f"expected a JSON array of records, got {type(records).__name__}")
    docs = []
    for i, rec in enumerate(records):
        where = str(i)
        if not isinstance(rec, dict):
            raise InputError(f"expected a JSON object, got {type(rec).__name__}", record=where)
        text = require(rec, "text", str, record=where)
        entities = rec.get("entities", [])
        if not isinstance(entities, list):
            raise InputError("field 'entities' must be a list", record=where)
        spans = []
        for k, ent in enumerate(entities):
            at = f"{i}, entity {k}"
            if not isinstance(ent, dict):
                raise InputError("an entity must be a JSON object", record=at)
            start = require(ent, "start_idx", int, record=at)
            last = require(ent, "end_idx", int, record=at)
            mention = require(ent, "entity", str, record=at)
            check_offsets(text, start, last + 1, record=at)
            found = text[start : last + 1]
            if found != mention:
                hint = (
                    " (end_idx is inclusive in CMeEE; this entity reads as exclusive)"
                    if text[start:last] == mention
                    else ""
                )
                raise InputError(
                    f"start_idx-end_idx {start}-{last} give {found!r} "
                    f"but the entity says {mention!r}{hint}",
                    record=at,
                )
            label = map_label(require(ent, "type", str, record=at), dataset, record=at)
            spans.append(Span(start, last + 1, label))
        doc = Document(id=f"{id_prefix}{i}", text=text, language="zh")
        docs.append(AnnotatedDocument(doc, sorted_unique(spans)))
    return docs


def write_cmeee(docs: Iterable[AnnotatedDocument], *, report: WriteReport | None = None) -> str:
    """CMeEE JSON of ``docs``, one record per line inside the array; ids are not kept."""
    del report  # ids aside (CMeEE has none), every span fits
    lines = [
        json.dumps(
            {
                "text": d.text,
                "entities": [
                    {
                        "start_idx": s.start,
                        "end_idx": s.end - 1,
                        "type": s.label,
                        "entity": s.text(d.text),
                    }
                    for s in d.spans
                ],
            },
            ensure_ascii=False,
        )
        for d in docs
    ]
    return "[\n" + ",\n".join(lines) + "\n]\n"
