"""GENIA nested NER JSON lines: ``{tokens, entity_mentions: [{start, end, entity_type}], ...}``.

Mention ``start``/``end`` are token indices, end exclusive; the text is the tokens joined by
single spaces and a mention's optional ``text`` is checked against its tokens. The id is
``sent_id`` when present, else ``<prefix><index>``. Nesting is kept both ways; the writer
tokenizes like the IOB2 writer (every span boundary is a token boundary).
"""

from __future__ import annotations

from collections.abc import Iterable

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import (
    WriteReport,
    dump_json_lines,
    json_lines,
    map_label,
    note,
    require,
)
from bioner.readers._tokens import SPACE_JOINED, is_space_joined, token_range, tokenize
from bioner.readers.iob2 import sentence_group
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique


def read_genia(
    source: str, *, dataset: DatasetSpec | None = None, id_prefix: str = ""
) -> list[AnnotatedDocument]:
    """Sentences of a GENIA nested-NER JSON-lines file as documents with (nested) spans."""
    docs = []
    for i, (n, rec) in enumerate(json_lines(source)):
        tokens = require(rec, "tokens", list, line=n)
        starts = []
        length = 0
        for t in tokens:
            # a few real tokens hold a space ("ER- cells"): harmless, offsets come from tokens
            if not isinstance(t, str) or not t:
                raise InputError(f"token {t!r} is not a non-empty string", line=n)
            starts.append(length)
            length += len(t) + 1
        text = " ".join(tokens)
        mentions = rec.get("entity_mentions", [])
        if not isinstance(mentions, list):
            raise InputError("field 'entity_mentions' must be a list", line=n)
        spans = []
        for m in mentions:
            if not isinstance(m, dict):
                raise InputError("each of 'entity_mentions' must be a JSON object", line=n)
            start = require(m, "start", int, line=n)
            end = require(m, "end", int, line=n)
            if not 0 <= start < end <= len(tokens):
                raise InputError(
                    f"token range {start}-{end} is not inside the {len(tokens)} tokens", line=n
                )
            found = " ".join(tokens[start:end])
            if "text" in m and m["text"] != found:
                raise InputError(
                    f"tokens {start}-{end} give {found!r} but the mention says {m['text']!r}",
                    line=n,
                )
            label = map_label(require(m, "entity_type", str, line=n), dataset, line=n)
            spans.append(Span(starts[start], starts[end - 1] + len(tokens[end - 1]), label))
        sent_id = rec.get("sent_id")
        doc_id = sent_id if isinstance(sent_id, str) and sent_id else f"{id_prefix}{i}"
        doc = Document(id=doc_id, text=text, metadata=(SPACE_JOINED,))
        docs.append(AnnotatedDocument(doc, sorted_unique(spans)))
    return docs


def write_genia(
    docs: Iterable[AnnotatedDocument],
    *,
    split_punctuation: bool | None = None,
    report: WriteReport | None = None,
) -> str:
    """GENIA JSON lines of ``docs``: tokens, nested token-index mentions, ``sent_id`` = doc id."""
    out = []
    for doc in docs:
        text = doc.text
        split = (
            not is_space_joined(doc.document) if split_punctuation is None else split_punctuation
        )
        cuts = (b for s in doc.spans for b in (s.start, s.end))
        tokens = tokenize(text, cuts, split_punctuation=split)
        words = [text[a:b] for a, b in tokens]
        mentions = []
        for s in doc.spans:
            i, j = token_range(tokens, s)
            if i == j:
                note(report, "genia: spans over whitespace only dropped")
                continue
            if tokens[i][0] != s.start or tokens[j - 1][1] != s.end:
                note(report, "genia: span edges on whitespace moved to the nearest token")
            mentions.append(
                {"start": i, "end": j, "entity_type": s.label, "text": " ".join(words[i:j])}
            )
        out.append(
            {
                "tokens": words,
                "doc_id": sentence_group(doc.id),
                "sent_id": doc.id,
                "entity_mentions": mentions,
            }
        )
    return dump_json_lines(out)
