"""CMeEE reader and writer: inclusive end_idx, nested entities, record-level errors."""

from __future__ import annotations

import json

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.cmeee import read_cmeee, write_cmeee
from bioner.records import Span

TEXT = "患者出现急性肺损伤，给予阿莫西林治疗。"
RECORDS = [
    {
        "text": TEXT,
        "entities": [
            {"start_idx": 4, "end_idx": 8, "type": "dis", "entity": "急性肺损伤"},
            {"start_idx": 6, "end_idx": 6, "type": "bod", "entity": "肺"},
            {"start_idx": 12, "end_idx": 15, "type": "dru", "entity": "阿莫西林"},
        ],
    },
    {"text": "无明显不适。", "entities": []},
]


def dump(records: object) -> str:
    return json.dumps(records, ensure_ascii=False, indent=4)


def test_reads_inclusive_ends_as_exclusive_and_keeps_nesting():
    docs = read_cmeee(dump(RECORDS))
    assert [d.id for d in docs] == ["0", "1"]
    assert docs[0].document.language == "zh"
    assert docs[0].spans == (Span(4, 9, "dis"), Span(6, 7, "bod"), Span(12, 16, "dru"))
    assert [s.text(TEXT) for s in docs[0].spans] == ["急性肺损伤", "肺", "阿莫西林"]
    assert docs[1].spans == ()


def test_dataset_labels_and_id_prefix():
    docs = read_cmeee(dump(RECORDS), dataset=DATASETS["cmeee"], id_prefix="dev-")
    assert docs[0].id == "dev-0"
    assert [s.label for s in docs[0].spans] == ["Disease", "Body", "Drug"]
    bad = [
        {"text": TEXT, "entities": [{"start_idx": 6, "end_idx": 6, "type": "xyz", "entity": "肺"}]}
    ]
    with pytest.raises(InputError, match="unknown label 'xyz' for dataset cmeee") as e:
        read_cmeee(dump(bad), dataset=DATASETS["cmeee"])
    assert e.value.record == "0, entity 0"


def entity_error(entity: dict) -> InputError:
    records = [RECORDS[1], {"text": TEXT, "entities": [RECORDS[0]["entities"][0], entity]}]
    with pytest.raises(InputError) as e:
        read_cmeee(dump(records))
    assert e.value.record == "1, entity 1"
    return e.value


def test_exclusive_end_gets_a_hint():
    err = entity_error({"start_idx": 12, "end_idx": 16, "type": "dru", "entity": "阿莫西林"})
    assert err.message == (
        "start_idx-end_idx 12-16 give '阿莫西林治' but the entity says '阿莫西林' "
        "(end_idx is inclusive in CMeEE; this entity reads as exclusive)"
    )


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        ({"start_idx": 12, "end_idx": 15, "type": "dru", "entity": "阿莫西"}, "give '阿莫西林'"),
        ({"start_idx": 12, "end_idx": 30, "type": "dru", "entity": "x"}, "not a non-empty range"),
        ({"start_idx": 12, "end_idx": 11, "type": "dru", "entity": "x"}, "not a non-empty range"),
        (
            {"start_idx": "12", "end_idx": 15, "type": "dru", "entity": "x"},
            "'start_idx' must be int",
        ),
        ({"start_idx": 12, "end_idx": 15, "entity": "阿莫西林"}, "missing field 'type'"),
    ],
)
def test_bad_entities_name_record_and_entity(entity, message):
    assert message in entity_error(entity).message


def test_bad_json_and_shapes():
    with pytest.raises(InputError, match="invalid JSON") as e:
        read_cmeee('[\n  {"text": "a",\n  "entities": [}\n]')
    assert e.value.line == 3
    with pytest.raises(InputError, match="expected a JSON array of records, got dict"):
        read_cmeee('{"text": "a"}')
    with pytest.raises(InputError, match="missing field 'text'") as e:
        read_cmeee('[{"text": "a"}, {"entities": []}]')
    assert e.value.record == "1"
    with pytest.raises(InputError, match="'entities' must be a list"):
        read_cmeee('[{"text": "a", "entities": {}}]')


def test_round_trip():
    docs = read_cmeee(dump(RECORDS))
    written = write_cmeee(docs)
    assert json.loads(written)[0]["entities"][0] == RECORDS[0]["entities"][0]
    assert read_cmeee(written) == docs
