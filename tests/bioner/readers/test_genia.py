"""GENIA nested JSON lines: token-index mentions to character spans, nesting kept both ways."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers._tokens import SPACE_JOINED
from bioner.readers.genia import read_genia, write_genia
from bioner.records import AnnotatedDocument, Document, Span

TOKENS = [
    "Expression",
    "of",
    "c-fos",
    ",",
    "c-jun",
    "and",
    "jun",
    "B",
    "in",
    "peripheral",
    "blood",
    "lymphocytes",
    ".",
]
MENTIONS = [
    {"start": 2, "end": 3, "entity_type": "DNA", "text": "c-fos"},
    {"start": 4, "end": 5, "entity_type": "DNA", "text": "c-jun"},
    {"start": 6, "end": 8, "entity_type": "DNA", "text": "jun B"},
    {"start": 9, "end": 12, "entity_type": "cell_type", "text": "peripheral blood lymphocytes"},
    {"start": 11, "end": 12, "entity_type": "cell_type"},
]
RECORD = {
    "tokens": TOKENS,
    "doc_id": "MEDLINE:93061407",
    "sent_id": "MEDLINE:93061407-0",
    "entity_mentions": MENTIONS,
}


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_reads_nested_token_mentions_as_character_spans():
    (doc,) = read_genia(jsonl(RECORD))
    assert doc.id == "MEDLINE:93061407-0"
    assert doc.text == "Expression of c-fos , c-jun and jun B in peripheral blood lymphocytes ."
    assert doc.document.metadata == (SPACE_JOINED,)
    # c-fos 14-19, c-jun 22-27, jun B 32-37, peripheral 41 ... lymphocytes 58-69
    assert doc.spans == (
        Span(14, 19, "DNA"),
        Span(22, 27, "DNA"),
        Span(32, 37, "DNA"),
        Span(41, 69, "cell_type"),
        Span(58, 69, "cell_type"),
    )


def test_id_falls_back_to_prefix_and_index():
    record = {"tokens": ["a"], "entity_mentions": []}
    assert [d.id for d in read_genia(jsonl(record, record), id_prefix="dev-")] == ["dev-0", "dev-1"]


def test_tokens_holding_a_space_keep_their_offsets():
    record = {
        "tokens": ["ER- cells", "die"],
        "entity_mentions": [{"start": 0, "end": 1, "entity_type": "cell_line"}],
    }
    (doc,) = read_genia(jsonl(record))
    assert doc.text == "ER- cells die" and doc.spans == (Span(0, 9, "cell_line"),)


def test_dataset_labels():
    (doc,) = read_genia(jsonl(RECORD), dataset=DATASETS["genia"])
    assert {s.label for s in doc.spans} == {"DNA", "cell_type"}
    bad = {**RECORD, "entity_mentions": [{"start": 0, "end": 1, "entity_type": "other_name"}]}
    with pytest.raises(InputError, match="unknown label 'other_name' for dataset genia") as e:
        read_genia(jsonl(RECORD, bad), dataset=DATASETS["genia"])
    assert e.value.line == 2


@pytest.mark.parametrize(
    ("mention", "message"),
    [
        (
            {"start": 12, "end": 14, "entity_type": "DNA"},
            "token range 12-14 is not inside the 13 tokens",
        ),
        ({"start": 3, "end": 3, "entity_type": "DNA"}, "token range 3-3"),
        (
            {"start": 2, "end": 3, "entity_type": "DNA", "text": "c-jun"},
            "tokens 2-3 give 'c-fos' but the mention says 'c-jun'",
        ),
        ({"start": "2", "end": 3, "entity_type": "DNA"}, "'start' must be int"),
        ({"start": 2, "end": 3}, "missing field 'entity_type'"),
    ],
)
def test_bad_mentions_name_their_line(mention, message):
    with pytest.raises(InputError, match=message) as e:
        read_genia(jsonl(RECORD, {**RECORD, "entity_mentions": [mention]}))
    assert e.value.line == 2


def test_bad_records():
    with pytest.raises(InputError, match="invalid JSON") as e:
        read_genia(jsonl(RECORD) + '{"tokens": [\n')
    assert e.value.line == 2
    with pytest.raises(InputError, match="token '' is not a non-empty string"):
        read_genia(jsonl({"tokens": ["a", ""], "entity_mentions": []}))
    with pytest.raises(InputError, match="missing field 'tokens'"):
        read_genia(jsonl({"entity_mentions": []}))


def test_round_trip():
    docs = read_genia(jsonl(RECORD))
    written = write_genia(docs)
    first = json.loads(written)
    assert first["tokens"] == TOKENS and first["doc_id"] == "MEDLINE:93061407"
    assert read_genia(written) == docs


def test_writer_tokenizes_other_text_at_span_boundaries_and_keeps_nesting():
    text = "IL-2 gene expression."
    doc = AnnotatedDocument(Document("s1", text), (Span(0, 9, "DNA"), Span(0, 4, "protein")))
    report: Counter[str] = Counter()
    (record,) = [json.loads(line) for line in write_genia([doc], report=report).splitlines()]
    assert record["tokens"] == ["IL", "-", "2", "gene", "expression", "."]
    assert record["entity_mentions"] == [
        {"start": 0, "end": 4, "entity_type": "DNA", "text": "IL - 2 gene"},
        {"start": 0, "end": 3, "entity_type": "protein", "text": "IL - 2"},
    ]
    assert not report
