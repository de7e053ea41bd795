"""ChineseBLUE reader and writer: type or label key, string offsets, case, misaligned mentions."""

from __future__ import annotations

import json

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.chineseblue import read_chineseblue, write_chineseblue
from bioner.records import Span

QA = "便秘两个多月，做了tct检查。"  # 便秘 at 0, tct at 9
QA_LINE = json.dumps(
    {
        "mention_data": [
            {"mention": "便秘", "guid": "g1", "type": "disease", "offset": "0"},
            {"mention": "TCT", "type": "test", "offset": "9"},
        ],
        "text": QA,
    },
    ensure_ascii=False,
)
EHR = "患者头痛3天。"
EHR_LINE = json.dumps(
    {"text": EHR, "mention_data": [{"mention": "头痛", "label": "症状", "offset": "2"}]},
    ensure_ascii=False,
)


def test_reads_type_and_label_keys_and_case_differences():
    docs = read_chineseblue(f"{QA_LINE}\n\n{EHR_LINE}\n")
    assert [d.id for d in docs] == ["0", "1"]
    # cMedQANER texts are lower-cased while mentions may keep capitals: "TCT" over "tct"
    assert docs[0].spans == (Span(0, 2, "disease"), Span(9, 12, "test"))
    assert docs[1].spans == (Span(2, 4, "症状"),)
    assert docs[1].document.language == "zh"


def test_dataset_maps_english_and_chinese_labels():
    (qa,) = read_chineseblue(QA_LINE, dataset=DATASETS["cmedqaner"])
    assert [s.label for s in qa.spans] == ["Disease", "Test"]
    (ehr,) = read_chineseblue(EHR_LINE, dataset=DATASETS["cehrner"])
    assert ehr.spans == (Span(2, 4, "Symptom"),)
    anatomy = EHR_LINE.replace("头痛", "头").replace("症状", "解剖部位")
    with pytest.raises(InputError, match="unknown label '解剖部位' for dataset cmedqaner") as e:
        read_chineseblue(f"{QA_LINE}\n{anatomy}\n", dataset=DATASETS["cmedqaner"])
    assert e.value.line == 2


def line_with(mention: dict) -> str:
    return json.dumps({"text": QA, "mention_data": [mention]}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("mention", "message"),
    [
        (
            {"mention": "便秘", "type": "disease", "offset": "1"},
            "offset 1 gives '秘两' but the mention is '便秘'",
        ),
        (
            {"mention": "便秘", "type": "disease", "offset": "x"},
            "offset must be an integer, got 'x'",
        ),
        ({"mention": "便秘", "type": "disease", "offset": "20"}, "not a non-empty range"),
        ({"mention": "便秘", "offset": "0"}, "missing field 'label'"),
        ({"mention": "", "type": "disease", "offset": "0"}, "not a non-empty range"),
        ({"type": "disease", "offset": "0"}, "missing field 'mention'"),
    ],
)
def test_bad_mentions_name_their_line(mention, message):
    with pytest.raises(InputError, match=message) as e:
        read_chineseblue(f"{QA_LINE}\n{line_with(mention)}\n")
    assert e.value.line == 2


def test_misaligned_mention_can_move_to_its_nearest_occurrence():
    text = "便秘，又便秘了。"  # 便秘 at 0 and 4
    line = json.dumps(
        {"text": text, "mention_data": [{"mention": "便秘", "type": "disease", "offset": "5"}]},
        ensure_ascii=False,
    )
    (doc,) = read_chineseblue(line, misaligned="nearest")
    assert doc.spans == (Span(4, 6, "disease"),)
    absent = line.replace('"便秘"', '"腹泻"')
    with pytest.raises(InputError, match="but the mention is '腹泻'"):
        read_chineseblue(absent, misaligned="nearest")


def test_bad_json_lines():
    with pytest.raises(InputError, match="invalid JSON") as e:
        read_chineseblue(f'{QA_LINE}\n{{"text": \n')
    assert e.value.line == 2
    with pytest.raises(InputError, match="expected a JSON object, got list") as e:
        read_chineseblue("[]\n")
    assert e.value.line == 1
    with pytest.raises(InputError, match="'mention_data' must be a list"):
        read_chineseblue('{"text": "a", "mention_data": 3}')


def test_round_trip_with_either_label_key():
    docs = read_chineseblue(f"{QA_LINE}\n{EHR_LINE}\n")
    written = write_chineseblue(docs)
    assert json.loads(written.splitlines()[0])["mention_data"][1] == {
        "mention": "tct",
        "type": "test",
        "offset": "9",
    }
    assert read_chineseblue(written) == docs
    assert '"label": "症状"' in write_chineseblue(docs, label_key="label")
    assert read_chineseblue(write_chineseblue(docs, label_key="label")) == docs
