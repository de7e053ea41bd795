"""Sentence segmentation: exact offsets, English and Chinese rules, windows for long text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioner.records import Document
from bioner.segment import segment, sentence_bounds


def texts(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_bounds(text)]


def test_english_sentences():
    assert texts("It works. It also stops! Does it? Yes.") == [
        "It works.",
        "It also stops!",
        "Does it?",
        "Yes.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Drugs, e.g. Aspirin, help.",
        "Tumours (i.e. Carcinomas) grow.",
        "As Smith et al. Reported before.",
        "See Fig. S1 for details.",
        "Cells of E. Coli and J. Smith grew.",
        "Made in the U.S. Army labs.",
        "A dose of 3.5 mg. was given.",
        "The value was 0.05 in Group A.",
        "It rose vs. Baseline.",
    ],
)
def test_no_split_at_abbreviations_initials_decimals(text):
    assert texts(text) == [text]


def test_split_needs_space_and_capital():
    assert texts("p < 0.05. the next word is lower case.") == [
        "p < 0.05. the next word is lower case."
    ]
    assert texts('He said "Stop." (A) second. "Third" one.') == [
        'He said "Stop."',
        "(A) second.",
        '"Third" one.',
    ]


def test_chinese_sentences():
    assert texts("患者有高血压病史。给予阿司匹林治疗！是否有效？有效；继续观察。") == [
        "患者有高血压病史。",
        "给予阿司匹林治疗！",
        "是否有效？",
        "有效；",
        "继续观察。",
    ]
    assert texts("他说：“好。”然后离开。") == ["他说：“好。”", "然后离开。"]


def test_mixed_and_line_breaks():
    assert texts("Results were good. 结果良好。\n\n  Next line here") == [
        "Results were good.",
        "结果良好。",
        "Next line here",
    ]


def test_title_is_its_own_passage_and_offsets_are_exact():
    title = "Famotidine-associated delirium. A series of six cases."
    doc = Document("7", f"{title} Famotidine is a drug. It was given.", title=title, version=2)
    passages = segment(doc)
    assert [p.text for p in passages] == [title, "Famotidine is a drug.", "It was given."]
    assert [(p.index, p.doc_version) for p in passages] == [(0, 2), (1, 2), (2, 2)]
    for p in passages:
        assert doc.text[p.start : p.end] == p.text


def test_long_sentence_windows_break_at_whitespace_then_punctuation():
    doc = Document("1", "alpha beta gamma delta epsilon zeta")
    assert [p.text for p in segment(doc, max_chars=12)] == [
        "alpha beta",
        "gamma delta",
        "epsilon zeta",
    ]
    chinese = Document("2", "甲乙丙丁，戊己庚辛，壬癸子丑寅卯")
    assert [p.text for p in segment(chinese, max_chars=6)] == [
        "甲乙丙丁，",
        "戊己庚辛，",
        "壬癸子丑寅卯",
    ]
    assert [p.text for p in segment(Document("3", "x" * 10), max_chars=4)] == [
        "xxxx",
        "xxxx",
        "xx",
    ]


def test_empty_and_blank_documents_have_no_passages():
    assert segment(Document("1", "")) == []
    assert segment(Document("1", "  \n ")) == []


def test_max_chars_validated():
    with pytest.raises(ValueError):
        segment(Document("1", "text"), max_chars=0)


ALPHABET = st.sampled_from(
    [*"abcXYZ 。！？；，.?!\n\t\"'()[]3", "e.g. ", "et al. ", "Fig. ", "3.5", "J. ", "。”"]
)


@settings(max_examples=300, deadline=None)
@given(
    title=st.lists(ALPHABET, max_size=8).map("".join),
    body=st.lists(ALPHABET, max_size=60).map("".join),
    max_chars=st.integers(min_value=1, max_value=40),
)
def test_passages_tile_the_document(title, body, max_chars):
    text = f"{title} {body}" if title else body
    doc = Document("d", text, title=title)
    passages = segment(doc, max_chars=max_chars)
    covered = set()
    previous_end = 0
    for i, p in enumerate(passages):
        assert p.index == i
        assert p.start >= previous_end  # in order, no overlap
        assert p.text == text[p.start : p.end]
        assert p.text and not p.text[0].isspace() and not p.text[-1].isspace()
        assert "\n" not in p.text
        assert len(p.text) <= max_chars
        covered.update(range(p.start, p.end))
        previous_end = p.end
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())
    if title.strip():
        # No passage crosses the end of the title.
        assert not any(p.start < len(title) < p.end for p in passages)
