"""Language of a text from its script: Chinese (Han characters) or English (Latin letters).

The corpora are Chinese or English literature, so the script decides; no statistical model is
needed. Chinese abstracts are full of Latin acronyms ("MicroRNA", "DCE-MRI"), so Han characters
are weighed against English *words* (about five letters each), not against single letters.
"""

from __future__ import annotations

import re

# CJK Unified Ideographs, Extension A, Compatibility Ideographs, Extensions B-G.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTERS_PER_WORD = 5
_SAMPLE = 20_000  # characters looked at: enough to decide, bounded for huge texts


def detect_language(text: str, default: str = "en") -> str:
    """``"zh"`` when Han characters are at least as many as English words, else ``"en"``.

    ``default`` is returned for a text with neither (empty, digits, symbols only).
    """
    sample = text[:_SAMPLE]
    if _HAN.search(sample) is None:  # the common case, decided without counting
        return "en" if _LATIN.search(sample) else default
    han = len(_HAN.findall(sample))
    latin = len(_LATIN.findall(sample))
    if han == 0 and latin == 0:
        return default
    return "zh" if han * _LETTERS_PER_WORD >= latin else "en"
