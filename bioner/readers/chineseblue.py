"""ChineseBLUE NER (cMedQANER, cEHRNER): JSON lines ``{text, mention_data: [...]}``.

Each mention is ``{mention, type|label, offset}`` (cMedQANER says ``type``, cEHRNER ``label``;
``offset`` is a string of digits). The span is ``[offset, offset + len(mention))`` and must hold
the mention; a mention that differs only in letter case is accepted, because cMedQANER's texts
are lower-cased while 75 of its mentions keep their capitals ("TCT" over "tct"). A mention
that is not at its offset is an error; ``misaligned="nearest"`` moves it to its nearest
occurrence instead (cMedQANER train line 367 has 15 mentions one character off). Ids are
``<prefix><index>`` (0-based record index, blank lines not counted); errors name the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import (
    WriteReport,
    check_offsets,
    dump_json_lines,
    json_lines,
    map_label,
    parse_int,
    require,
)
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique


def _holds(text: str, start: int, mention: str) -> bool:
    """True if ``mention`` is at ``start`` in ``text``, ignoring letter case."""
    found = text[start : start + len(mention)]
    return bool(mention) and (found == mention or found.lower() == mention.lower())


def _nearest(text: str, start: int, mention: str) -> int | None:
    """The occurrence of ``mention`` in ``text`` closest to ``start``, if there is one."""
    hits = [i for i in range(len(text) - len(mention) + 1) if _holds(text, i, mention)]
    return min(hits, key=lambda i: (abs(i - start), i)) if hits else None


def read_chineseblue(
    source: str,
    *,
    dataset: DatasetSpec | None = None,
    id_prefix: str = "",
    misaligned: Literal["error", "nearest"] = "error",
) -> list[AnnotatedDocument]:
    """Records of a ChineseBLUE NER file as documents with spans checked against the text."""
    docs = []
    for i, (n, rec) in enumerate(json_lines(source)):
        text = require(rec, "text", str, line=n)
        mentions = rec.get("mention_data", [])
        if not isinstance(mentions, list):
            raise InputError("field 'mention_data' must be a list", line=n)
        spans = []
        for m in mentions:
            if not isinstance(m, dict):
                raise InputError("each of 'mention_data' must be a JSON object", line=n)
            mention = require(m, "mention", str, line=n)
            key = "type" if "type" in m else "label"
            raw_label = require(m, key, str, line=n)
            start = parse_int(require(m, "offset", (str, int), line=n), "offset", line=n)
            end = start + len(mention)
            if not _holds(text, start, mention):
                moved = _nearest(text, start, mention) if misaligned == "nearest" else None
                if moved is None:
                    check_offsets(text, start, end, line=n)
                    raise InputError(
                        f"offset {start} gives {text[start:end]!r} but the mention is {mention!r}",
                        line=n,
                    )
                start, end = moved, moved + len(mention)
            spans.append(Span(start, end, map_label(raw_label, dataset, line=n)))
        doc = Document(id=f"{id_prefix}{i}", text=text, language="zh")
        docs.append(AnnotatedDocument(doc, sorted_unique(spans)))
    return docs


def write_chineseblue(
    docs: Iterable[AnnotatedDocument],
    *,
    label_key: Literal["type", "label"] = "type",
    report: WriteReport | None = None,
) -> str:
    """ChineseBLUE JSON lines of ``docs`` (label under ``label_key``); ids are not kept."""
    del report  # every span fits
    return dump_json_lines(
        [
            {
                "text": d.text,
                "mention_data": [
                    {"mention": s.text(d.text), label_key: s.label, "offset": str(s.start)}
                    for s in d.spans
                ],
            }
            for d in docs
        ]
    )
