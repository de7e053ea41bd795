"""Defined behaviour of the symbolic tag codec, one case per rule of the format."""

from __future__ import annotations

import pytest

from bioner.codec.issues import IssueKind
from bioner.codec.symbolic import NO_ENTITIES, decode, encode
from bioner.labels import BC5CDR_SCHEMA, CMEEE_SCHEMA, JNLPBA_SCHEMA, NCBI_SCHEMA
from bioner.records import Span


def spans_of(text: str, *pairs: tuple[str, str], nth: int = 0) -> list[Span]:
    """Spans from (mention, label) pairs by their first occurrence (or ``nth``)."""
    out = []
    for mention, label in pairs:
        start = -1
        for _ in range(nth + 1):
            start = text.index(mention, start + 1)
        out.append(Span(start, start + len(mention), label))
    return out


def kinds(issues: list) -> list[str]:
    return [str(i.kind) for i in issues]


TEXT = "Famotidine-associated delirium."


def test_encode_one_line_per_type_in_schema_order() -> None:
    spans = spans_of(TEXT, ("delirium", "Disease"), ("Famotidine", "Chemical"))
    assert encode(TEXT, spans, BC5CDR_SCHEMA) == (
        "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium]."
    )


def test_encode_without_entities_and_decode_of_none() -> None:
    assert encode(TEXT, [], BC5CDR_SCHEMA) == NO_ENTITIES
    assert decode("None", TEXT, BC5CDR_SCHEMA) == ([], [])
    assert decode("无", "无异常。", CMEEE_SCHEMA) == ([], [])


def test_nested_same_type_brackets_and_adjacent_spans() -> None:
    text = "breast cancer type 1 gene"
    spans = [Span(0, 13, "DNA"), Span(0, 25, "DNA"), Span(0, 6, "DNA"), Span(14, 20, "DNA")]
    out = encode(text, spans, JNLPBA_SCHEMA)
    assert out == "DNA: [[[breast] cancer] [type 1] gene]"
    assert decode(out, text, JNLPBA_SCHEMA) == (sorted(spans), [])
    adjacent = [Span(0, 6, "DNA"), Span(6, 13, "DNA")]
    out = encode(text, adjacent, JNLPBA_SCHEMA)
    assert out == "DNA: [breast][ cancer] type 1 gene"
    assert decode(out, text, JNLPBA_SCHEMA)[0] == adjacent


def test_crossing_spans_of_one_type_go_on_a_repeated_line() -> None:
    text = "acute lymphoblastic leukemia"
    spans = [Span(0, 19, "Disease"), Span(6, 28, "Disease")]
    out = encode(text, spans, NCBI_SCHEMA)
    assert out.splitlines() == [
        "Disease: [acute lymphoblastic] leukemia",
        "Disease: acute [lymphoblastic leukemia]",
    ]
    got, issues = decode(out, text, NCBI_SCHEMA)
    assert got == spans
    assert kinds(issues) == ["repeated_type"] and not issues[0].lossy


def test_source_brackets_are_escaped_and_restored() -> None:
    text = "[3H]thymidine uptake in cancer [12]."
    spans = spans_of(text, ("[3H]thymidine", "Chemical"), ("cancer", "Disease"))
    out = encode(text, spans, BC5CDR_SCHEMA)
    assert out.splitlines()[0] == r"Chemical: [\[3H\]thymidine] uptake in cancer \[12\]."
    assert decode(out, text, BC5CDR_SCHEMA) == (sorted(spans), [])
    inner = [Span(1, 3, "Chemical")]  # the label inside the isotope bracket
    out = encode(text, inner, BC5CDR_SCHEMA)
    assert out.startswith(r"Chemical: \[[3H]\]thymidine")
    assert decode(out, text, BC5CDR_SCHEMA)[0] == inner


def test_unescaped_source_brackets_from_a_model() -> None:
    text = "[3H]thymidine uptake in cancer [12]."
    out = "Chemical: [[3H]thymidine] uptake in cancer [12].\nDisease: [3H]thymidine uptake in [cancer] [12]."
    got, issues = decode(out, text, BC5CDR_SCHEMA)
    assert [(s.text(text), s.label) for s in got] == [
        ("[3H]thymidine", "Chemical"),
        ("cancer", "Disease"),
    ]
    assert issues == []
    # Tag and literal bracket at the same place: the tag is the outer one.
    got, _ = decode("Chemical: [[3H]]thymidine uptake in cancer [12].", text, BC5CDR_SCHEMA)
    assert [s.text(text) for s in got] == ["[3H]"]


def test_citation_mark_after_an_entity() -> None:
    text = "Mutations cause Wilson disease [12,13]."
    out = "Disease: Mutations cause [Wilson disease] [12,13]."
    got, issues = decode(out, text, NCBI_SCHEMA)
    assert [s.text(text) for s in got] == ["Wilson disease"] and issues == []


def test_backslash_in_source_round_trips() -> None:
    text = r"C:\temp [x] ion\]"
    spans = [Span(0, 7, "Chemical"), Span(8, 11, "Chemical"), Span(12, 17, "Chemical")]
    out = encode(text, spans, BC5CDR_SCHEMA)
    assert decode(out, text, BC5CDR_SCHEMA) == (spans, [])


@pytest.mark.parametrize(
    "output",
    [
        "Disease: Famotidine-associated [delirium].",
        "Disease：Famotidine-associated [delirium].",
        "Disease:Famotidine-associated [delirium].",
        "disease :  Famotidine-associated [delirium].",
        "  Disease: Famotidine-associated [delirium].\r\n",
    ],
)
def test_header_separators_and_spacing(output: str) -> None:
    got, _ = decode(output, TEXT, BC5CDR_SCHEMA)
    assert [s.text(TEXT) for s in got] == ["delirium"]


def test_copy_alterations_are_aligned_back_to_exact_offsets() -> None:
    text = "Patients with  Type 2 diabetes (T2D), aged 40–60, were enrolled."
    out = "Disease: patients with type 2 [Diabetes] ( [t2d] ) , aged 40-60 , were enrolled ."
    got, issues = decode(out, text, NCBI_SCHEMA)
    assert [s.text(text) for s in got] == ["diabetes", "T2D"]
    assert kinds(issues) == ["copy_mismatch"] and not issues[0].lossy


def test_dropped_and_added_words() -> None:
    text = "Severe combined immunodeficiency is a rare inherited disorder of T cells."
    out = (
        "Disease: [Severe combined immunodeficiency] is a very rare [inherited disorder] of cells."
    )
    got, issues = decode(out, text, NCBI_SCHEMA)
    assert [s.text(text) for s in got] == [
        "Severe combined immunodeficiency",
        "inherited disorder",
    ]
    assert "copy_mismatch" in kinds(issues)


def test_entity_not_in_source_is_reported_not_invented() -> None:
    got, issues = decode("Disease: Famotidine-associated [psychosis].", TEXT, BC5CDR_SCHEMA)
    assert got == []
    assert "unaligned_span" in kinds(issues)


def test_full_width_punctuation_chinese() -> None:
    text = "患者（男，45岁）因发热、咳嗽3天入院。"
    spans = spans_of(text, ("发热", "Symptom"), ("咳嗽", "Symptom"))
    out = encode(text, spans, CMEEE_SCHEMA)
    assert out == "临床表现: 患者（男，45岁）因[发热]、[咳嗽]3天入院。"
    half = "临床表现：患者(男,45岁)因[发热],[咳嗽]3天入院."
    got, issues = decode(half, text, CMEEE_SCHEMA)
    assert got == spans and kinds(issues) == ["copy_mismatch"]
    assert decode("sym: 患者（男，45岁）因[发热]、[咳嗽]3天入院。", text, CMEEE_SCHEMA)[0] == spans


def test_unknown_type_line_is_skipped_with_an_issue() -> None:
    out = "Gene: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium]."
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert [s.label for s in got] == ["Disease"]
    assert kinds(issues) == ["unknown_type"] and issues[0].line == 1


def test_line_without_header() -> None:
    got, issues = decode("Famotidine-associated [delirium].", TEXT, BC5CDR_SCHEMA)
    assert got == [] and kinds(issues) == ["missing_header"]


def test_repeated_type_line_merges_spans() -> None:
    out = "Disease: Famotidine-associated [delirium].\nDisease: [Famotidine-associated delirium]."
    got, issues = decode(out, TEXT, BC5CDR_SCHEMA)
    assert [s.text(TEXT) for s in got] == ["Famotidine-associated delirium", "delirium"]
    assert kinds(issues) == ["repeated_type"]


def test_unbalanced_brackets() -> None:
    got, issues = decode("Disease: Famotidine]-associated [delirium].", TEXT, BC5CDR_SCHEMA)
    assert [s.text(TEXT) for s in got] == ["delirium"]
    assert kinds(issues) == ["unbalanced_close"]
    got, issues = decode("Disease: [Famotidine-associated [delirium].", TEXT, BC5CDR_SCHEMA)
    assert [s.text(TEXT) for s in got] == ["delirium"]
    assert kinds(issues) == ["unclosed_open"]


def test_empty_brackets() -> None:
    got, issues = decode("Disease: Famotidine-associated []delirium.", TEXT, BC5CDR_SCHEMA)
    assert got == [] and kinds(issues) == ["empty_span"]


def test_truncated_output_keeps_closed_spans() -> None:
    text = "Famotidine-associated delirium and acute renal failure were seen."
    out = "Chemical: [Famotidine]-associated delirium and acute renal failure were seen.\nDisease: Famotidine-associated [delirium] and [acute ren"
    got, issues = decode(out, text, BC5CDR_SCHEMA, finish_reason="length")
    assert [(s.text(text), s.label) for s in got] == [
        ("Famotidine", "Chemical"),
        ("delirium", "Disease"),
    ]
    assert set(kinds(issues)) == {"truncated"}
    # Without the finish reason the same output is a model error, not a truncation.
    _, issues = decode(out, text, BC5CDR_SCHEMA)
    assert set(kinds(issues)) == {"incomplete_copy", "unclosed_open"}
    # Cut inside the header of the last line.
    got, issues = decode(out.split("\n")[0] + "\nDis", text, BC5CDR_SCHEMA, finish_reason="length")
    assert len(got) == 1 and kinds(issues) == ["truncated"]


def test_empty_output() -> None:
    assert kinds(decode("", TEXT, BC5CDR_SCHEMA)[1]) == ["empty_output"]
    assert kinds(decode("  \n ", TEXT, BC5CDR_SCHEMA, finish_reason="length")[1]) == [
        "empty_output",
        "truncated",
    ]


def test_newlines_in_the_source_are_copied_as_spaces() -> None:
    text = "Wilson disease.\nA copper disorder."
    spans = spans_of(text, ("Wilson disease", "Disease"), ("copper disorder", "Disease"))
    out = encode(text, spans, NCBI_SCHEMA)
    assert out == "Disease: [Wilson disease]. A [copper disorder]."
    assert decode(out, text, NCBI_SCHEMA) == (spans, [])


def test_whitespace_inside_a_gold_span_is_exact_on_an_exact_copy() -> None:
    text = 'seizures " plus "  and more'
    spans = [Span(0, 18, "Disease")]  # a real NCBI mention ends in two spaces
    assert decode(encode(text, spans, NCBI_SCHEMA), text, NCBI_SCHEMA) == (spans, [])


def test_encode_rejects_bad_gold() -> None:
    with pytest.raises(ValueError, match="outside"):
        encode("abc", [Span(0, 9, "Disease")], NCBI_SCHEMA)
    with pytest.raises(ValueError, match="not in schema"):
        encode("abc", [Span(0, 1, "Gene")], NCBI_SCHEMA)
    with pytest.raises(ValueError, match="whitespace"):
        encode("a  b", [Span(1, 3, "Disease")], NCBI_SCHEMA)


def test_issue_kinds_are_typed() -> None:
    _, issues = decode("Gene: x", TEXT, BC5CDR_SCHEMA)
    assert issues[0].kind is IssueKind.UNKNOWN_TYPE
    assert str(issues[0]).startswith("unknown_type: line 1:")
