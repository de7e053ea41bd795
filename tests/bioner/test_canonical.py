"""The canonical JSON lines form: exact parsing, one located error per bad line, round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioner.canonical import dump_canonical, iter_canonical, parse_canonical
from bioner.errors import InputError
from bioner.records import AnnotatedDocument, Document, Span


def line(doc_id: object = "d1", text: object = "aspirin", spans: object = None, **extra) -> str:
    obj = {"id": doc_id, "text": text, "spans": [] if spans is None else spans, **extra}
    return json.dumps(obj, ensure_ascii=False)


def test_parse_documents_and_spans():
    text = (
        line(
            "d1",
            "aspirin and fever",
            [
                {"start": 12, "end": 17, "label": "Disease"},
                {"start": 0, "end": 7, "label": "Chemical"},
                {"start": 0, "end": 7, "label": "Chemical"},
            ],
        )
        + "\n"
        + line("d2", "", [])
    )
    docs = parse_canonical(text)
    assert [d.id for d in docs] == ["d1", "d2"]
    assert docs[0].text == "aspirin and fever"
    # Sorted and unique, as AnnotatedDocument promises.
    assert docs[0].spans == (Span(0, 7, "Chemical"), Span(12, 17, "Disease"))
    assert docs[1].spans == ()


def test_blank_lines_crlf_and_extra_keys():
    text = "\r\n" + line("a", source="x") + "\r\n\r\n   \n" + line("b") + "\r\n"
    assert [(n, d.id) for n, d in iter_canonical(text)] == [(2, "a"), (5, "b")]


def test_line_separator_inside_text_is_not_a_line_break():
    text = "one\u2028two\u0085three"
    (doc,) = parse_canonical(line("d", text, [{"start": 4, "end": 7, "label": "X"}]) + "\n")
    assert doc.text == text
    assert doc.spans[0].text(doc.text) == "two"


def test_empty_input():
    assert parse_canonical("") == []
    assert parse_canonical("\n\n") == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"text": "x", "spans": []}', 'missing key "id"'),
        ('{"id": "d", "spans": []}', 'missing key "text"'),
        ('{"id": "d", "text": "x"}', 'missing key "spans"'),
        ('{"id": 3, "text": "x", "spans": []}', '"id" must be str, got int'),
        ('{"id": "", "text": "x", "spans": []}', 'empty "id"'),
        ('{"id": "d", "text": "x", "spans": {}}', '"spans" must be list'),
        (line(spans=[[0, 1, "A"]]), "span 0: expected an object, got list"),
        (line(spans=[{"start": 0, "label": "A"}]), 'span 0: missing key "end"'),
        (line(spans=[{"start": 0, "end": 1}]), 'span 0: missing key "label"'),
        (line(spans=[{"start": 0, "end": 1.0, "label": "A"}]), '"end" must be int, got float'),
        (line(spans=[{"start": False, "end": 1, "label": "A"}]), '"start" must be int, got bool'),
        (line(spans=[{"start": 0, "end": 1, "label": ""}]), "span 0: empty label"),
        (line(spans=[{"start": 3, "end": 3, "label": "A"}]), "invalid offsets [3, 3)"),
        (line(spans=[{"start": 4, "end": 2, "label": "A"}]), "invalid offsets [4, 2)"),
        (line(spans=[{"start": -1, "end": 2, "label": "A"}]), "invalid offsets [-1, 2)"),
        (
            line(
                text="abc",
                spans=[{"start": 0, "end": 1, "label": "A"}, {"start": 1, "end": 4, "label": "A"}],
            ),
            "span 1: [1, 4) out of range of text of length 3",
        ),
    ],
)
def test_bad_line_raises_with_its_line_number(bad, message):
    text = line("first") + "\n\n" + bad + "\n" + line("last") + "\n"
    with pytest.raises(InputError) as info:
        parse_canonical(text)
    assert info.value.line == 3
    assert message in info.value.message
    assert "\n" not in info.value.located("f.jsonl")
    assert info.value.located("f.jsonl").startswith("f.jsonl: line 3: ")


def test_duplicate_id_names_both_lines():
    with pytest.raises(InputError) as info:
        parse_canonical(line("a") + "\n" + line("b") + "\n" + line("a") + "\n")
    assert info.value.located("g.jsonl") == (
        "g.jsonl: line 3, record a: duplicate document id (first on line 1)"
    )


def test_dump_format():
    doc = AnnotatedDocument(
        Document("d", "阿司匹林 aspirin"), (Span(0, 4, "Drug"), Span(5, 12, "Drug"))
    )
    out = dump_canonical([doc, AnnotatedDocument(Document("e", "x"))])
    assert out.endswith("\n")
    first, second = out.splitlines()
    assert "阿司匹林" in first  # written as UTF-8, not \u escapes
    assert json.loads(first) == {
        "id": "d",
        "text": "阿司匹林 aspirin",
        "spans": [
            {"start": 0, "end": 4, "label": "Drug"},
            {"start": 5, "end": 12, "label": "Drug"},
        ],
    }
    assert json.loads(second) == {"id": "e", "text": "x", "spans": []}
    assert dump_canonical([]) == ""


@st.composite
def _documents(draw: st.DrawFn) -> list[AnnotatedDocument]:
    ids = draw(st.lists(st.text(min_size=1, max_size=5), max_size=4, unique=True))
    docs = []
    for doc_id in ids:
        text = draw(st.text(max_size=20))
        spans = []
        if text:
            for _ in range(draw(st.integers(0, 3))):
                start = draw(st.integers(0, len(text) - 1))
                end = draw(st.integers(start + 1, len(text)))
                spans.append(Span(start, end, draw(st.text(min_size=1, max_size=4))))
        docs.append(AnnotatedDocument(Document(doc_id, text), tuple(sorted(set(spans)))))
    return docs


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_round_trip(docs):
    parsed = parse_canonical(dump_canonical(docs))
    assert [(d.id, d.text, d.spans) for d in parsed] == [(d.id, d.text, d.spans) for d in docs]
