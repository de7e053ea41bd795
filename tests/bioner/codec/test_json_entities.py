"""Defined behaviour of BioSelectTune's JSON format, placement of repeated mentions first."""

from __future__ import annotations

import json

from bioner.codec.json_entities import decode, encode
from bioner.labels import BC5CDR_SCHEMA, CMEEE_SCHEMA
from bioner.records import Span

TEXT = "Cancer risk: aspirin lowers cancer risk; cancer and aspirin."
#       0         1         2         3         4         5
#       0123456789012345678901234567890123456789012345678901234567890


def items(output: str) -> list[dict]:
    return json.loads(output)["entities"]


def kinds(issues: list) -> list[str]:
    return [str(i.kind) for i in issues]


def test_encode_lists_items_in_text_order_with_type_headers() -> None:
    spans = [Span(28, 34, "Disease"), Span(13, 20, "Chemical")]
    assert items(encode(TEXT, spans, BC5CDR_SCHEMA)) == [
        {"text": "aspirin", "type": "Chemical"},
        {"text": "cancer", "type": "Disease"},
    ]


def test_kth_listing_goes_to_kth_occurrence() -> None:
    out = '{"entities": [{"text": "cancer", "type": "Disease"}, {"text": "cancer", "type": "Disease"}]}'
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert got == [Span(28, 34, "Disease"), Span(41, 47, "Disease")] and issues == []


def test_occurrence_field_written_only_when_needed() -> None:
    second_only = [Span(41, 47, "Disease")]
    out = encode(TEXT, second_only, BC5CDR_SCHEMA)
    assert items(out) == [{"text": "cancer", "type": "Disease", "occurrence": 2}]
    assert decode(out, TEXT, BC5CDR_SCHEMA) == (second_only, [])
    text = "pain, pain, pain"
    first_and_third = [Span(0, 4, "Disease"), Span(12, 16, "Disease")]
    out = encode(text, first_and_third, BC5CDR_SCHEMA)
    assert items(out) == [
        {"text": "pain", "type": "Disease"},
        {"text": "pain", "type": "Disease", "occurrence": 3},
    ]
    assert decode(out, text, BC5CDR_SCHEMA) == (first_and_third, [])
    both = [Span(13, 20, "Chemical"), Span(52, 59, "Chemical")]
    assert items(encode(TEXT, both, BC5CDR_SCHEMA)) == [{"text": "aspirin", "type": "Chemical"}] * 2


def test_placement_all_tags_every_occurrence() -> None:
    out = '{"entities": [{"text": "cancer", "type": "Disease"}]}'
    got, _ = decode(out, TEXT, BC5CDR_SCHEMA, placement="all")
    assert got == [Span(28, 34, "Disease"), Span(41, 47, "Disease")]


def test_case_insensitive_fallback_and_not_found() -> None:
    out = '{"entities": [{"text": "CANCER RISK", "type": "Disease"}, {"text": "tumour", "type": "Disease"}]}'
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert got == [Span(0, 11, "Disease")]
    assert kinds(issues) == ["unaligned_span"]


def test_listed_more_often_than_it_occurs() -> None:
    one = '{"text": "aspirin", "type": "Chemical"}'
    got, issues = decode(f'{{"entities": [{one}, {one}, {one}]}}', TEXT, BC5CDR_SCHEMA)
    assert len(got) == 2 and kinds(issues) == ["bad_occurrence"]


def test_code_fence_and_chatter_around_json() -> None:
    out = 'Here you go:\n```json\n{"entities": [{"text": "aspirin", "type": "chemical"}]}\n```'
    assert decode(out, TEXT, BC5CDR_SCHEMA)[0] == [Span(13, 20, "Chemical")]


def test_truncated_json_recovers_complete_items() -> None:
    out = '{"entities": [{"text": "aspirin", "type": "Chemical"}, {"text": "can'
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA, finish_reason="length")
    assert got == [Span(13, 20, "Chemical")] and kinds(issues) == ["truncated"]
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert kinds(issues) == ["invalid_json"]


def test_bad_shapes_unknown_types_and_empty() -> None:
    out = '{"entities": [{"text": "aspirin"}, "cancer", {"text": "", "type": "Disease"}, {"text": "cancer", "type": "Gene"}, {"text": "cancer", "type": "Disease", "occurrence": 9}]}'
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert got == []
    assert kinds(issues) == [
        "unknown_type",
        "invalid_json",
        "empty_span",
        "unknown_type",
        "bad_occurrence",
    ]
    assert kinds(decode("", TEXT, BC5CDR_SCHEMA)[1]) == ["empty_output"]
    assert kinds(decode("no entities here", TEXT, BC5CDR_SCHEMA)[1]) == ["invalid_json"]
    assert decode('{"entities": []}', TEXT, BC5CDR_SCHEMA) == ([], [])


def test_chinese_types_by_header_or_code() -> None:
    text = "患者发热、咳嗽。"
    out = encode(text, [Span(2, 4, "Symptom")], CMEEE_SCHEMA)
    assert items(out) == [{"text": "发热", "type": "临床表现"}]
    assert decode('{"entities":[{"text":"咳嗽","type":"sym"}]}', text, CMEEE_SCHEMA)[0] == [
        Span(5, 7, "Symptom")
    ]
