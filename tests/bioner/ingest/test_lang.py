"""detect_language: Han characters against English words."""

from __future__ import annotations

import pytest

from bioner.ingest.lang import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("乳腺癌是我国女性常见的恶性肿瘤之一。", "zh"),
        ("Naloxone reverses the antihypertensive effect of clonidine.", "en"),
        # Chinese titles full of acronyms stay Chinese: 9 Han, 8 Latin letters
        ("MicroRNA在乳腺癌中的研究进展", "zh"),
        ("DNA甲基转移酶3b对乳腺癌细胞微小RNA表达的影响", "zh"),
        # a Chinese term in an English sentence does not make it Chinese: 2 Han, 41 letters
        ("Effects of Huangqi (黄芪) on renal fibrosis in diabetic rats", "en"),
        ("Ärztliche Versorgung in Ländern", "en"),  # Latin letters with diacritics count
        ("𠀀𠀁 test", "zh"),  # CJK Extension B
    ],
)
def test_detects_chinese_or_english(text, expected):
    assert detect_language(text) == expected


def test_threshold_is_one_han_character_per_five_letters():
    assert detect_language("中" + "a" * 5) == "zh"
    assert detect_language("中" + "a" * 6) == "en"


@pytest.mark.parametrize("text", ["", "   ", "12345 (2021) 3.5%", "，。；"])
def test_text_without_letters_gets_the_default(text):
    assert detect_language(text) == "en"
    assert detect_language(text, default="zh") == "zh"
