"""The format registry: every format converts to every other without losing a mention."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from typing import Any

import pytest

from bioner.readers import FORMATS, Format, get_format
from bioner.readers.canonical import read_canonical, write_canonical
from bioner.records import AnnotatedDocument, Document, Span

TITLE = "Naloxone reverses the antihypertensive effect of alpha-methyldopa."
TEXT = TITLE + " Clonidine-induced hypotension was seen in rats."
DOCS = [
    AnnotatedDocument(
        Document("227508", TEXT, title=TITLE),
        (
            Span(0, 8, "Chemical"),
            Span(49, 65, "Chemical"),  # alpha-methyldopa
            Span(67, 76, "Chemical"),  # Clonidine
            Span(85, 96, "Disease"),  # hypotension
        ),
    ),
    AnnotatedDocument(
        Document("c1", "便秘两个多月，做了tct检查。", language="zh"), (Span(0, 2, "Disease"),)
    ),
]


def mentions(docs: list[AnnotatedDocument]) -> list[list[tuple[str, str]]]:
    """Per document, (mention without whitespace, label): what every format must preserve."""
    return [[(re.sub(r"\s", "", s.text(d.text)), s.label) for s in d.spans] for d in docs]


def through(fmt: Format, docs: list[AnnotatedDocument]) -> list[AnnotatedDocument]:
    report: Counter[str] = Counter()
    written: Any = fmt.write(docs, report=report)
    assert not report, f"{fmt.name} lost something: {report}"
    if fmt.layout == "bytes":
        written = written.encode("utf-8")
    return fmt.read(written)


def test_registry_names():
    assert list(FORMATS) == [
        "iob2",
        "pubtator",
        "bioc",
        "brat",
        "cmeee",
        "chineseblue",
        "genia",
        "canonical",
    ]
    assert all(f.description and f.name == name for name, f in FORMATS.items())
    assert get_format("PubTator") is FORMATS["pubtator"]
    with pytest.raises(KeyError, match="unknown format 'conll'; known: bioc, brat"):
        get_format("conll")


def test_mention_offsets_of_the_fixture():
    assert [s.text(TEXT) for s in DOCS[0].spans] == [
        "Naloxone",
        "alpha-methyldopa",
        "Clonidine",
        "hypotension",
    ]


@pytest.mark.parametrize(("source", "target"), list(itertools.product(FORMATS, repeat=2)))
def test_every_format_converts_to_every_other(source, target):
    docs = through(FORMATS[source], DOCS)
    assert mentions(through(FORMATS[target], docs)) == mentions(DOCS)


def test_a_new_format_plugs_in():
    """The shape the tag codecs (symbolic, json-entities) take: a reader and a writer."""

    def read_upper(source: str, *, dataset: object = None) -> list[AnnotatedDocument]:
        return read_canonical(source.lower(), dataset=None)

    def write_upper(docs: list[AnnotatedDocument], *, report: object = None) -> str:
        return write_canonical(docs).upper()

    fmt = Format("upper", "canonical, shouted", read_upper, write_upper)
    doc = AnnotatedDocument(Document("a", "fever"), (Span(0, 5, "disease"),))
    assert fmt.read(fmt.write([doc])) == [doc]
