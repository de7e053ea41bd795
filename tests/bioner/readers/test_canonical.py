"""Canonical JSON lines: the project's interchange form, lossless, every span checked."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.canonical import iter_canonical, read_canonical, write_canonical
from bioner.records import AnnotatedDocument, Document, Relation, Span

LINES = (
    '{"id": "227508", "text": "Naloxone reverses clonidine.", '
    '"spans": [{"start": 18, "end": 27, "label": "Chemical"}, '
    '{"start": 0, "end": 8, "label": "Chemical"}]}\n'
    '{"id": "x", "text": "", "spans": []}\n'
)


def line(doc_id: object = "d1", text: object = "aspirin", spans: object = None, **extra) -> str:
    """One canonical line, non-ASCII (U+2028 included) written unescaped as json.dumps does."""
    obj = {"id": doc_id, "text": text, "spans": [] if spans is None else spans, **extra}
    return json.dumps(obj, ensure_ascii=False)


def test_reads_sorted_spans():
    docs = read_canonical(LINES)
    assert [d.id for d in docs] == ["227508", "x"]
    assert docs[0].spans == (Span(0, 8, "Chemical"), Span(18, 27, "Chemical"))
    assert docs[0].document == Document("227508", "Naloxone reverses clonidine.")


def test_duplicate_spans_collapse_to_one():
    spans = [
        {"start": 12, "end": 17, "label": "Disease"},
        {"start": 0, "end": 7, "label": "Chemical"},
        {"start": 0, "end": 7, "label": "Chemical"},
    ]
    (doc,) = read_canonical(line("d1", "aspirin and fever", spans))
    assert doc.spans == (Span(0, 7, "Chemical"), Span(12, 17, "Disease"))


def test_blank_lines_crlf_and_line_numbers():
    text = "\r\n" + line("a", comment="x") + "\r\n\r\n   \n" + line("b") + "\r\n"
    assert [(n, d.id) for n, d in iter_canonical(text)] == [(2, "a"), (5, "b")]


def test_line_separator_inside_text_is_not_a_line_break():
    text = "one\u2028two\u0085three"
    first = line("d", text, [{"start": 4, "end": 7, "label": "X"}])
    assert "\u2028" in first and "\u0085" in first  # really unescaped in the input
    pairs = list(iter_canonical(first + "\n" + line("e") + "\n"))
    assert [(n, d.id) for n, d in pairs] == [(1, "d"), (2, "e")]
    doc = pairs[0][1]
    assert doc.text == text
    assert doc.spans[0].text(doc.text) == "two"


def test_empty_input():
    assert read_canonical("") == []
    assert read_canonical("\n\n") == []
    assert read_canonical("\r\n  \n") == []


def test_unknown_keys_are_ignored_and_span_text_is_checked():
    line = (
        '{"id": "a", "text": "fever", "issues": [], '
        '"spans": [{"start": 0, "end": 5, "label": "Disease", "text": "fever"}]}'
    )
    (doc,) = read_canonical(line, dataset=DATASETS["ncbi"])
    assert doc.spans == (Span(0, 5, "Disease"),)
    with pytest.raises(
        InputError, match="offsets 0-5 give 'fever' but the annotation says 'fevers'"
    ):
        read_canonical(line.replace('"text": "fever"}', '"text": "fevers"}'))


@pytest.mark.parametrize(
    ("line", "record", "message"),
    [
        ('{"id": "a", "text": "abc", "spans": [', None, "invalid JSON"),
        ("[1, 2]", None, "expected a JSON object, got list"),
        ('{"text": "abc", "spans": []}', None, "missing field 'id'"),
        ('{"id": "a", "spans": []}', None, "missing field 'text'"),
        ('{"id": "a", "text": "abc"}', None, "missing field 'spans'"),
        ('{"id": 3, "text": "abc", "spans": []}', None, "field 'id' must be str, got int"),
        ('{"id": "", "text": "abc", "spans": []}', None, "field 'id' must not be empty"),
        ('{"id": "a", "text": "abc", "spans": {}}', None, "field 'spans' must be list, got dict"),
        (
            '{"id": "a", "text": "abc", "spans": [], "version": 0}',
            None,
            "field 'version' must be an integer >= 1, got 0",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [], "metadata": {"k": 1}}',
            None,
            "field 'metadata' must be an object of strings",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [], "relations": [{"type": "R"}]}',
            None,
            "missing field 'args'",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [[0, 1, "X"]]}',
            "a, span 0",
            "a span must be a JSON object",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 0, "label": "X"}]}',
            "a, span 0",
            "missing field 'end'",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 1}]}',
            "a, span 0",
            "missing field 'label'",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 1.0, "label": "X"}]}',
            "a, span 0",
            "field 'end' must be int, got float",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": true, "end": 1, "label": "X"}]}',
            "a, span 0",
            "field 'start' must be int, got bool",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 1, "label": ""}]}',
            "a, span 0",
            "empty entity type",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 1, "end": 9, "label": "X"}]}',
            "a, span 0",
            "offsets 1-9 are not a non-empty range inside the text of length 3",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 2, "end": 1, "label": "X"}]}',
            "a, span 0",
            "offsets 2-1 are not a non-empty range",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": 2, "end": 2, "label": "X"}]}',
            "a, span 0",
            "offsets 2-2 are not a non-empty range",
        ),
        (
            '{"id": "a", "text": "abc", "spans": [{"start": -1, "end": 2, "label": "X"}]}',
            "a, span 0",
            "offsets -1-2 are not a non-empty range",
        ),
        (
            '{"id": "a", "text": "abc", "spans": '
            '[{"start": 0, "end": 1, "label": "X"}, {"start": 1, "end": 4, "label": "X"}]}',
            "a, span 1",
            "offsets 1-4 are not a non-empty range inside the text of length 3",
        ),
    ],
)
def test_bad_lines_name_their_line(line, record, message):
    # Line 3 is blank: blank lines are skipped but still counted.
    with pytest.raises(InputError) as e:
        read_canonical(LINES + "\n" + line + "\n" + '{"id": "last", "text": "", "spans": []}\n')
    err = e.value
    assert (err.line, err.record) == (4, record)
    assert message in err.message
    where = "line 4" if record is None else f"line 4, record {record}"
    located = err.located("f.jsonl")
    assert located.startswith(f"f.jsonl: {where}: ")
    assert message in located
    assert "\n" not in located


def test_duplicate_id_names_the_earlier_line():
    text = line("a") + "\n" + line("b") + "\n" + line("a") + "\n"
    with pytest.raises(InputError) as e:
        read_canonical(text)
    assert e.value.located("g.jsonl") == "g.jsonl: line 3: document id 'a' already on line 1"


def test_unknown_label_with_dataset():
    with pytest.raises(InputError, match="unknown label 'Chemical' for dataset ncbi") as e:
        read_canonical(LINES, dataset=DATASETS["ncbi"])
    assert (e.value.line, e.value.record) == (1, "227508, span 0")


def test_write_format():
    doc = AnnotatedDocument(
        Document("d", "阿司匹林 aspirin"), (Span(0, 4, "Drug"), Span(5, 12, "Drug"))
    )
    out = write_canonical([doc, AnnotatedDocument(Document("e", "x"))])
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
    assert write_canonical([]) == ""


def test_round_trip_is_lossless():
    rich = AnnotatedDocument(
        Document(
            "d1",
            "头痛\n三天",
            version=2,
            title="头痛",
            language="zh",
            source="cmeee",
            metadata=(("tokens", "space-joined"),),
        ),
        (Span(0, 2, "sym"),),
        (Relation("CID", ("D1", "D2")),),
    )
    docs = [*read_canonical(LINES), rich]
    written = write_canonical(docs)
    assert json.loads(written.splitlines()[0]) == {
        "id": "227508",
        "text": "Naloxone reverses clonidine.",
        "spans": [
            {"start": 0, "end": 8, "label": "Chemical"},
            {"start": 18, "end": 27, "label": "Chemical"},
        ],
    }
    assert "头痛" in written  # non-ASCII kept readable
    assert read_canonical(written) == docs


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
def test_round_trip_property(docs):
    assert read_canonical(write_canonical(docs)) == docs
