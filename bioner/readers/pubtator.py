"""PubTator: ``PMID|t|title``, ``PMID|a|abstract``, then one tab-separated line per annotation.

Annotation lines are ``PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id[<TAB>parts]]``, with
offsets into ``title + " " + abstract`` (just the title when the abstract is empty), end
exclusive; every mention is checked against the text (spaces around the stated mention
ignored). Lines whose second column is not an
offset, such as BC5CDR's ``PMID<TAB>CID<TAB>chemical<TAB>disease``, are kept as relations. The
concept ids (6th column) and composite parts (7th) are not kept: records have no place for them.

A PMID that occurs twice (NCBI-disease train has 8528200 twice) is kept twice by default, the
second copy with id ``<PMID>_2`` (then ``_3``...), so counts match the file; ``duplicates="merge"``
drops copies identical to the first and rejects ones that differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport, check_mention, map_label, note
from bioner.records import AnnotatedDocument, Document, Relation, Span, sorted_unique

_PASSAGE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")


def _int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


class _Builder:
    """The document being read: its PMID, title, abstract, spans and relations."""

    def __init__(self, pmid: str, title: str, line: int) -> None:
        self.pmid = pmid
        self.title = title
        self.line = line
        self.text: str | None = None  # set once the abstract line is read
        self.spans: list[Span] = []
        self.relations: list[Relation] = []

    def annotated(self, doc_id: str) -> AnnotatedDocument:
        return AnnotatedDocument(
            Document(id=doc_id, text=self.text or "", title=self.title),
            sorted_unique(self.spans),
            tuple(self.relations),
        )


def read_pubtator(
    source: str,
    *,
    dataset: DatasetSpec | None = None,
    duplicates: Literal["keep", "merge"] = "keep",
) -> list[AnnotatedDocument]:
    """Documents of a PubTator file with verified spans and their relation lines."""
    docs: list[AnnotatedDocument] = []
    seen: dict[str, int] = {}  # PMID -> index in docs of its first copy
    copies: dict[str, int] = {}
    current: _Builder | None = None

    def finish() -> None:
        nonlocal current
        if current is None:
            return
        b, current = current, None
        if b.text is None:
            raise InputError(
                f"expected 'PMID|a|abstract' after the title of {b.pmid}", line=b.line + 1
            )
        pmid = b.pmid
        if pmid not in seen:
            seen[pmid] = len(docs)
            docs.append(b.annotated(pmid))
            return
        if duplicates == "merge":
            first = docs[seen[pmid]]
            again = b.annotated(pmid)
            if again != first:
                raise InputError(
                    f"PMID {pmid} occurs again with a different text or annotations",
                    line=b.line,
                )
            return
        copies[pmid] = copies.get(pmid, 1) + 1
        docs.append(b.annotated(f"{pmid}_{copies[pmid]}"))

    for n, raw in enumerate(source.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            finish()
            continue
        m = _PASSAGE.match(line)
        if m:
            pmid, kind, body = m.groups()
            if kind == "t":
                finish()
                current = _Builder(pmid, body, n)
            elif current is None or current.pmid != pmid or current.text is not None:
                raise InputError(f"expected 'PMID|t|title' before {pmid}|a|", line=n)
            else:
                current.text = f"{current.title} {body}" if body else current.title
            continue
        cols = line.split("\t")
        if current is None or current.text is None:
            expected = "PMID|t|title" if current is None else "PMID|a|abstract"
            raise InputError(f"expected {expected!r}, got {line[:40]!r}", line=n)
        if cols[0] != current.pmid:
            raise InputError(f"PMID {cols[0]!r} does not match the document {current.pmid}", line=n)
        if len(cols) < 3:
            raise InputError(
                "expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>id' "
                f"or a relation line, got {len(cols)} columns",
                line=n,
            )
        start, end = _int(cols[1]), _int(cols[2])
        if start is None:  # a relation line: PMID, type, arguments
            if not cols[1]:
                raise InputError("relation line with an empty type in column 2", line=n)
            current.relations.append(Relation(cols[1], tuple(cols[2:])))
            continue
        if not 5 <= len(cols) <= 7:
            raise InputError(
                "expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>id', "
                f"got {len(cols)} columns",
                line=n,
            )
        if end is None:
            raise InputError(f"end offset {cols[2]!r} is not a number", line=n)
        # NCBI-disease train has one mention column with two stray trailing spaces: the
        # offsets are right, so spaces around the stated mention are not held against it (a
        # mention whose own text ends in a space, as written by our exporter, matches as is)
        stated = cols[3] if current.text[start:end] == cols[3] else cols[3].strip(" ")
        check_mention(current.text, start, end, stated, line=n)
        current.spans.append(Span(start, end, map_label(cols[4], dataset, line=n)))
    finish()
    return docs


def split_title(doc: Document) -> tuple[str, str]:
    """``(title, abstract)`` such that ``title + " " + abstract`` has the offsets of the text.

    The title is ``doc.title`` when the text starts with it and a space or line break, else the
    first line of the text, else the whole text with an empty abstract.
    """
    text, title = doc.text, doc.title
    if title and text == title:
        return title, ""
    if title and text.startswith(title) and text[len(title)].isspace():
        return title, text[len(title) + 1 :]
    nl = text.find("\n")
    if nl >= 0:
        return text[:nl], text[nl + 1 :]
    return text, ""


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def _flat(s: str) -> tuple[str, int]:
    """``s`` with tabs and line breaks turned into spaces (same length), and how many."""
    changed = sum(s.count(c) for c in "\t\n\r")
    if changed:
        s = s.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return s, changed


def _no_controls(s: str) -> tuple[str, int]:
    """``s`` with the other control characters (NUL ...) turned into spaces, and how many."""
    return (s, 0) if s.isprintable() else _CONTROL.subn(" ", s)


def write_pubtator(docs: Iterable[AnnotatedDocument], *, report: WriteReport | None = None) -> str:
    """PubTator text of ``docs``; tabs and line breaks in the text become spaces (counted)."""
    out: list[str] = []
    for doc in docs:
        pmid = doc.id
        if "|" in pmid or not pmid.isprintable():
            raise ValueError(f"document id {pmid!r} cannot be written as a PubTator PMID")
        title, abstract = split_title(doc.document)
        title, n_title = _flat(title)
        abstract, n_abstract = _flat(abstract)
        note(
            report, "pubtator: tabs and line breaks in text written as spaces", n_title + n_abstract
        )
        title, c_title = _no_controls(title)
        abstract, c_abstract = _no_controls(abstract)
        note(report, "pubtator: control characters in text written as spaces", c_title + c_abstract)
        text = f"{title} {abstract}" if abstract else title
        if len(text) != len(doc.text):
            note(report, "pubtator: whitespace after a title without abstract dropped")
        out.append(f"{pmid}|t|{title}\n{pmid}|a|{abstract}\n")
        for s in doc.spans:
            if not s.label.isprintable():
                raise ValueError(f"document {pmid}: label {s.label!r} cannot be written")
            out.append(f"{pmid}\t{s.start}\t{s.end}\t{s.text(text)}\t{s.label}\t-1\n")
        for r in doc.relations:
            fields = [r.type, *r.args]
            if r.type.isdigit() or any(c in f for f in fields for c in "\t\n\r"):
                note(report, "pubtator: relations not representable as a line dropped")
                continue
            out.append("\t".join([pmid, *fields]) + "\n")
        out.append("\n")
    return "".join(out)
