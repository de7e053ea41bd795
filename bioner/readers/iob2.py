"""IOB2 TSV: ``token<TAB>tag`` lines, a blank line after each sentence, ``-DOCSTART-`` lines.

Reading: one document per sentence, its text the tokens joined by single spaces (or, with
``join="natural"``, re-joined as running text: :func:`natural_join`), its id
``<prefix><doc>-<sentence>`` (both 0-based; ``<doc>`` counts ``-DOCSTART-`` groups, so a file
without them has ids ``0-0``, ``0-1`` ...). An ``I-`` tag that does not continue a span of the same
type is an error by default (IOB2 requires ``B-`` first; the real files never do it); pass
``stray_inside="begin"`` to read it as ``B-``, as conlleval does.

Writing: the text is tokenized so that every span boundary is a token boundary; IOB2 cannot nest,
so of nested or crossing spans only the outermost are written and the others are counted in the
report. Consecutive documents whose ids are ``<doc>-<n>`` with the same ``<doc>`` form one
``-DOCSTART-`` group (none is written when there is only one group), so ids survive a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport, map_label, note
from bioner.readers._tokens import SPACE_JOINED, is_space_joined, outermost, token_range, tokenize
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique

DOCSTART = "-DOCSTART-"
_SENTENCE_ID = re.compile(r"^(.*)-\d+$")


def read_iob2(
    source: str,
    *,
    dataset: DatasetSpec | None = None,
    id_prefix: str = "",
    stray_inside: Literal["error", "begin"] = "error",
    join: Literal["space", "natural"] = "space",
) -> list[AnnotatedDocument]:
    """Sentences of an IOB2 file as documents with their spans, one document per sentence.

    Spans of a raw label the dataset ignores (:attr:`DatasetSpec.ignored`) are left out.
    """
    if join not in ("space", "natural"):
        raise ValueError(f"join must be 'space' or 'natural', got {join!r}")
    docs: list[AnnotatedDocument] = []
    doc_index = sent_index = 0
    tokens: list[str] = []
    spans: list[Span] = []
    length = 0  # of the sentence text so far
    open_: tuple[int, str, int] | None = None  # (start, raw label, line) of the span being read
    labels: dict[str, str] = {}  # raw -> mapped, so each raw label is checked once

    def close() -> None:
        nonlocal open_
        if open_ is not None:
            start, raw_label, line = open_
            if dataset is None or raw_label not in dataset.ignored:
                if raw_label not in labels:
                    labels[raw_label] = map_label(raw_label, dataset, line=line)
                spans.append(Span(start, length, labels[raw_label]))
            open_ = None

    def finish() -> None:
        nonlocal sent_index, length
        close()
        if tokens:
            doc_id = f"{id_prefix}{doc_index}-{sent_index}"
            if join == "natural":
                text, starts = natural_join(tokens)
                # A span runs from a token's start to a token's end: move both bounds.
                spaced = spaced_starts(tokens)
                start_of = dict(zip(spaced, starts, strict=True))
                end_of = {
                    a + len(t): b + len(t) for a, b, t in zip(spaced, starts, tokens, strict=True)
                }
                moved = [Span(start_of[s.start], end_of[s.end], s.label) for s in spans]
                doc = Document(id=doc_id, text=text)
                docs.append(AnnotatedDocument(doc, sorted_unique(moved)))
            else:
                doc = Document(id=doc_id, text=" ".join(tokens), metadata=(SPACE_JOINED,))
                docs.append(AnnotatedDocument(doc, sorted_unique(spans)))
            sent_index += 1
        tokens.clear()
        spans.clear()
        length = 0

    for n, raw in enumerate(source.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            finish()
            continue
        cols = line.split("\t")
        if cols[0] == DOCSTART:
            finish()
            if sent_index > 0:
                doc_index += 1
                sent_index = 0
            continue
        if len(cols) != 2:
            raise InputError(f"expected 'token<TAB>tag', got {len(cols)} columns", line=n)
        token, tag = cols
        if not token or any(c.isspace() for c in token):
            raise InputError(f"token {token!r} is empty or contains whitespace", line=n)
        prefix, _, raw_label = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I") or not raw_label):
            raise InputError(f"expected tag 'O', 'B-TYPE' or 'I-TYPE', got {tag!r}", line=n)
        continues = prefix == "I" and open_ is not None and open_[1] == raw_label
        if prefix == "I" and not continues and stray_inside == "error":
            raise InputError(
                f"tag {tag!r} does not continue a {raw_label} span (IOB2 needs B- first)", line=n
            )
        if not continues:
            close()
        start = length + 1 if tokens else 0
        tokens.append(token)
        length = start + len(token)
        if tag != "O" and not continues:
            open_ = (start, raw_label, n)
    finish()
    return docs


#: No space before these tokens, after those, on either side of the joiners, when tokens are
#: re-joined as running text (the BioNLP corpora's tokens split every punctuation mark off:
#: "TGF - beta RII ( RER + )" reads "TGF-beta RII (RER+)").
_NO_SPACE_BEFORE = frozenset(",.;:)]}%?!'+")
_NO_SPACE_AFTER = frozenset("([{")
_JOINERS = frozenset("-/")


def natural_join(tokens: list[str]) -> tuple[str, list[int]]:
    """Tokens joined as running text, and the offset of each token in it.

    A token goes without a space before it when it is closing punctuation, a joiner (``-``,
    ``/``) or follows one, follows an opening bracket, or is a digit run after ``digits .``
    ("63 . 8" reads "63.8"). Every token keeps its characters, so spans keep their bounds.
    """
    text: list[str] = []
    starts: list[int] = []
    at = 0
    for i, token in enumerate(tokens):
        if i:
            before = tokens[i - 1]
            decimal = before == "." and i >= 2 and tokens[i - 2].isdigit() and token.isdigit()
            glued = (
                token in _NO_SPACE_BEFORE
                or token in _JOINERS
                or before in _JOINERS
                or before in _NO_SPACE_AFTER
                or decimal
            )
            if not glued:
                text.append(" ")
                at += 1
        starts.append(at)
        text.append(token)
        at += len(token)
    return "".join(text), starts


def spaced_starts(tokens: list[str]) -> list[int]:
    """The offset of each token in the tokens joined by single spaces."""
    out, at = [], 0
    for token in tokens:
        out.append(at)
        at += len(token) + 1
    return out


def sentence_group(doc_id: str) -> str:
    """The document part of a sentence id ``<doc>-<n>``; the id itself when it has no ``-<n>``."""
    m = _SENTENCE_ID.match(doc_id)
    return m.group(1) if m else doc_id


def iob2_tokens(
    doc: AnnotatedDocument,
    *,
    split_punctuation: bool | None = None,
    report: WriteReport | None = None,
) -> list[tuple[str, str]]:
    """``(token, tag)`` pairs of one document, nested spans reduced to the outermost.

    ``split_punctuation=None`` splits punctuation off unless the text came from a token format.
    """
    text = doc.text
    kept, dropped = outermost(doc.spans)
    note(report, "iob2: nested or crossing spans dropped (outermost kept)", dropped)
    split = not is_space_joined(doc.document) if split_punctuation is None else split_punctuation
    tokens = tokenize(text, (b for s in kept for b in (s.start, s.end)), split_punctuation=split)
    tags = ["O"] * len(tokens)
    for s in kept:
        i, j = token_range(tokens, s)
        if i == j:
            note(report, "iob2: spans over whitespace only dropped")
            continue
        if tokens[i][0] != s.start or tokens[j - 1][1] != s.end:
            note(report, "iob2: span edges on whitespace moved to the nearest token")
        tags[i] = f"B-{s.label}"
        for k in range(i + 1, j):
            tags[k] = f"I-{s.label}"
    return [(text[a:b], tag) for (a, b), tag in zip(tokens, tags, strict=True)]


def write_iob2(
    docs: Iterable[AnnotatedDocument],
    *,
    split_punctuation: bool | None = None,
    report: WriteReport | None = None,
) -> str:
    """IOB2 text of ``docs``, one sentence block per document (see the module doc for losses)."""
    docs = list(docs)
    groups = [sentence_group(d.id) for d in docs]
    docstarts = len(set(groups)) > 1
    out: list[str] = []
    previous: str | None = None
    for doc, group in zip(docs, groups, strict=True):
        if docstarts and group != previous:
            out.append(f"{DOCSTART}\tO\n\n")
        previous = group
        pairs = iob2_tokens(doc, split_punctuation=split_punctuation, report=report)
        if not pairs:
            note(report, "iob2: documents without tokens skipped")
            continue
        out.extend(f"{token}\t{tag}\n" for token, tag in pairs)
        out.append("\n")
    return "".join(out)
