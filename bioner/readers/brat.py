"""brat standoff: ``<id>.txt`` holds the text, ``<id>.ann`` one annotation per line.

``T`` lines (``T1<TAB>type start end<TAB>mention``) are spans, checked against the text. A
discontinuous ``T`` line (``type 0 5;9 14``, mention = the pieces joined by a space) becomes by
default one span covering its pieces (``discontinuous="cover"``), or one span per piece
(``"split"``). ``R``, ``E``, ``A``/``M``, ``N``, ``#`` and ``*`` lines are kept as relations:
``Relation(type, (line id, *other fields[, text column]))``, e.g. ``R1<TAB>Part-of Arg1:T3 Arg2:T1``
gives ``Relation("Part-of", ("R1", "Arg1:T3", "Arg2:T1"))``. References to ``T`` ids are rewritten
to ``T<k>``, the k-th (1-based) of the document's sorted spans, which is how the writer numbers
``T`` lines, so relations survive a round trip. The writer writes a span that crosses a line break
as pieces between the breaks (read back, they cover the same span); relations that did not come
from brat cannot be written and are counted in the report.

A folder of brat files is a mapping ``{file name: content}``; document ids are file stems
(percent-escaped where a character cannot be in a file name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import quote, unquote

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport, check_offsets, map_label, note
from bioner.records import AnnotatedDocument, Document, Relation, Span, sorted_unique

_BRAT_ID = re.compile(r"^(?:[REAMN#]\d+|\*)$")
_T_REF = re.compile(r"^((?:[^:]*:)?)(T\d+)$")  # "T3", "Arg1:T3", "Binding:T3"
_WITH_TEXT = ("#", "N")  # kinds whose lines end with a text column
_SAFE = "-_.,:;+=@~()[]{}!$&' "


def _t_line(
    fields: list[str], text: str, n: int, dataset: DatasetSpec | None
) -> tuple[str, list[tuple[int, int]]]:
    """Label and pieces of a ``T`` line's fields, checked against the text."""
    if len(fields) != 3:
        raise InputError(
            f"expected 'T1<TAB>type start end<TAB>mention', got {len(fields)} columns", line=n
        )
    kind, _, where = fields[1].partition(" ")
    pieces: list[tuple[int, int]] = []
    for piece in where.split(";"):
        bounds = piece.split()
        if len(bounds) != 2 or not all(b.isascii() and b.isdigit() for b in bounds):
            raise InputError(f"expected 'type start end[;start end...]', got {fields[1]!r}", line=n)
        start, end = int(bounds[0]), int(bounds[1])
        check_offsets(text, start, end, line=n)
        pieces.append((start, end))
    found = " ".join(text[s:e] for s, e in pieces)
    if found != fields[2]:
        raise InputError(
            f"offsets {where} give {found!r} but the annotation says {fields[2]!r}", line=n
        )
    return map_label(kind, dataset, line=n), pieces


def read_brat(
    text: str,
    ann: str,
    doc_id: str,
    *,
    dataset: DatasetSpec | None = None,
    discontinuous: Literal["cover", "split"] = "cover",
) -> list[AnnotatedDocument]:
    """The brat document of a ``.txt`` and ``.ann`` pair (a list of one, like every reader)."""
    spans_of: dict[str, list[Span]] = {}
    others: list[list[str]] = []
    for n, raw in enumerate(ann.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t", 2)  # a text column may itself hold tabs
        ident = fields[0]
        if ident[:1] == "T" and ident[1:].isascii() and ident[1:].isdigit():
            label, pieces = _t_line(fields, text, n, dataset)
            if discontinuous == "cover":
                pieces = [(min(s for s, _ in pieces), max(e for _, e in pieces))]
            spans_of[ident] = [Span(s, e, label) for s, e in pieces]
        elif _BRAT_ID.match(ident):
            if len(fields) < 2 or not fields[1].strip():
                raise InputError(f"expected '{ident}<TAB>type arguments...'", line=n)
            if len(fields) > 2 and fields[2] and ident[0] not in _WITH_TEXT:
                raise InputError(f"unexpected text column after {ident}", line=n)
            others.append(fields)
        else:
            raise InputError(f"unknown brat annotation id {ident!r}", line=n)
    spans = sorted_unique(s for group in spans_of.values() for s in group)
    number = {s: f"T{k}" for k, s in enumerate(spans, start=1)}
    renumber = {t: number[group[0]] for t, group in spans_of.items()}

    def ref(token: str) -> str:
        m = _T_REF.match(token)
        return m.group(1) + renumber[m.group(2)] if m and m.group(2) in renumber else token

    relations = []
    for fields in others:
        kind, *args = (ref(t) for t in fields[1].split())
        text_col = [fields[2] if len(fields) > 2 else ""] if fields[0][0] in _WITH_TEXT else []
        relations.append(Relation(kind, (fields[0], *args, *text_col)))
    return [AnnotatedDocument(Document(id=doc_id, text=text), spans, tuple(relations))]


def file_stem(doc_id: str) -> str:
    """The file name stem for a document id (``/``, ``%`` and controls percent-escaped)."""
    return quote(doc_id, safe=_SAFE)


def read_brat_files(
    files: Mapping[str, str],
    *,
    dataset: DatasetSpec | None = None,
    discontinuous: Literal["cover", "split"] = "cover",
) -> list[AnnotatedDocument]:
    """Documents of a brat folder given as ``{file name: content}``, in file name order.

    Errors name the ``.ann`` file as their ``record``; other files are ignored and a ``.txt``
    without an ``.ann`` is a document without annotations.
    """
    docs = []
    for name in sorted(files):
        if name.endswith(".ann") and name[:-4] + ".txt" not in files:
            raise InputError("no .txt file next to this .ann file", record=name)
        if not name.endswith(".txt"):
            continue
        stem = name[:-4]
        ann_name = stem + ".ann"
        try:
            docs.extend(
                read_brat(
                    files[name],
                    files.get(ann_name, ""),
                    unquote(stem),
                    dataset=dataset,
                    discontinuous=discontinuous,
                )
            )
        except InputError as e:
            raise InputError(e.message, line=e.line, record=ann_name) from None
    return docs


def _pieces(text: str, span: Span) -> list[tuple[int, int]]:
    """``span`` cut at line breaks, empty pieces left out."""
    pieces = []
    start = span.start
    for m in re.finditer(r"[\r\n]+", text[span.start : span.end]):
        if m.start() > 0 and span.start + m.start() > start:
            pieces.append((start, span.start + m.start()))
        start = span.start + m.end()
    if start < span.end:
        pieces.append((start, span.end))
    return pieces


def write_brat(
    docs: Iterable[AnnotatedDocument], *, report: WriteReport | None = None
) -> list[tuple[str, str]]:
    """``(txt, ann)`` contents for each document, ``T`` lines numbered in span order."""
    out = []
    for doc in docs:
        lines = []
        for k, s in enumerate(doc.spans, start=1):
            label = s.label
            if re.search(r"\s", label):
                label = re.sub(r"\s", "_", label)
                note(report, "brat: whitespace in labels written as underscores")
            pieces = _pieces(doc.text, s)
            if not pieces:
                note(report, "brat: spans over line breaks only dropped")
                continue
            if (pieces[0][0], pieces[-1][1]) != (s.start, s.end):
                note(report, "brat: span edges on line breaks moved")
            where = ";".join(f"{a} {b}" for a, b in pieces)
            mention = " ".join(doc.text[a:b] for a, b in pieces)
            lines.append(f"T{k}\t{label} {where}\t{mention}\n")
        for r in doc.relations:
            ident = r.args[0] if r.args else ""
            with_text = ident[:1] in _WITH_TEXT
            if not _BRAT_ID.match(ident) or (with_text and len(r.args) < 2):
                note(report, "brat: relations that do not come from brat dropped")
                continue
            middle = [r.type, *r.args[1 : -1 if with_text else None]]
            lines.append(
                f"{ident}\t{' '.join(middle)}" + (f"\t{r.args[-1]}" if with_text else "") + "\n"
            )
        out.append((doc.text, "".join(lines)))
    return out


def write_brat_files(
    docs: Iterable[AnnotatedDocument], *, report: WriteReport | None = None
) -> dict[str, str]:
    """A brat folder as ``{file name: content}``: ``<id>.txt`` and ``<id>.ann`` per document."""
    docs = list(docs)
    files: dict[str, str] = {}
    for doc, (txt, ann) in zip(docs, write_brat(docs, report=report), strict=True):
        stem = file_stem(doc.id)
        if stem + ".txt" in files:
            raise ValueError(f"two documents are both written to {stem}.txt")
        files[stem + ".txt"] = txt
        files[stem + ".ann"] = ann
    return files
