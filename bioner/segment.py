"""Split documents into passages (sentences, or windows of long ones) with exact offsets.

A passage is the unit a model tags, so it must be short enough for the output budget and must
never contain a line break (the symbolic format is line-based). Every passage satisfies
``passage.text == document.text[passage.start:passage.end]``; whitespace between passages
belongs to none of them. The title is always a passage of its own.

Rules, for English and Chinese in the same text:

* a line break always ends a passage;
* ``。！？；`` end a sentence, with any closing quotes or brackets after them;
* ``. ! ?`` end a sentence when followed by whitespace and a capital letter or a CJK ideograph
  (an opening quote or bracket may come between), except after a known abbreviation
  (``e.g.``, ``et al.``, ``Fig.`` ...) or an initial (``J. Smith``, ``E. coli``, ``U.S.``);
  decimals never match;
* a sentence longer than ``max_chars`` is cut into windows at the last whitespace, else the last
  punctuation mark, else hard at ``max_chars``.
"""

from __future__ import annotations

import re

from bioner.records import Document, Passage

DEFAULT_MAX_CHARS = 500

# Words whose final period is not a sentence end even before a capital ("Fig. S1", "et al. Smith").
# Left out on purpose: "etc.", "min.", "no." and the like, which end sentences as often as not.
_ABBREVIATIONS_TEXT = """
    e.g. i.e. al. cf. vs. viz. approx. ca. fig. figs. tab. eq. eqs. ref. refs. vol. pp. ch.
    sect. sec. dr. mr. mrs. ms. prof. st. jr. sr. inc. ltd. co. corp. dept. univ. resp. sp.
    spp. subsp. ssp. var. cv. est. mol. wt.
"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())

_HARD_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_ZH_END = "。！？；"
_EN_END = ".!?"
_CLOSERS = "\"'”’)]}）」』》】"
_OPENERS = "\"'“‘([{（「『《【"
_SOFT_BREAKS = ",;:，、；：)]}）" + _ZH_END + _EN_END
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+")
_HARD_BREAK = re.compile(f"[{re.escape(_HARD_BREAKS)}]")
_CANDIDATE = re.compile(
    f"([{_ZH_END}][{re.escape(_ZH_END + _CLOSERS)}]*)"
    f"|([{re.escape(_EN_END)}][{re.escape(_EN_END + _CLOSERS)}]*)"
)


def segment(doc: Document, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """Passages of ``doc`` in order: the title, then the sentences (windowed if too long)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    text = doc.text
    title_end = len(doc.title) if doc.title and text.startswith(doc.title) else 0
    pieces: list[tuple[int, int]] = []
    if title_end:
        for start, end in _lines(text, 0, title_end):
            pieces.extend(_windows(text, start, end, max_chars))
    for start, end in sentence_bounds(text, title_end, len(text)):
        pieces.extend(_windows(text, start, end, max_chars))
    return [
        Passage(doc.id, i, start, end, text[start:end], doc.version, doc.language)
        for i, (start, end) in enumerate(pieces)
    ]


def sentence_bounds(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence ranges ``[s, e)`` of ``text[start:end]``, trimmed of whitespace, in order."""
    end = len(text) if end is None else end
    bounds: list[tuple[int, int]] = []
    for line_start, line_end in _lines(text, start, end):
        seg = line_start
        # Only sentence-final marks (and the closers after them) are candidates.
        for m in _CANDIDATE.finditer(text, line_start, line_end):
            j = m.end()
            # 。！？； always end a sentence; . ! ? only before a new one and not after an
            # abbreviation or initial.
            ends = m.group(1) is not None or (
                _starts_sentence(text, j, line_end)
                and not (m.group(2)[0] == "." and _is_abbreviation(text, seg, m.start()))
            )
            if ends:
                _emit(bounds, text, seg, j)
                seg = j
        _emit(bounds, text, seg, line_end)
    return bounds


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed non-empty ranges of ``text[start:end]`` between line breaks."""
    lines: list[tuple[int, int]] = []
    seg = start
    for m in _HARD_BREAK.finditer(text, start, end):
        _emit(lines, text, seg, m.start())
        seg = m.end()
    _emit(lines, text, seg, end)
    return lines


def _emit(bounds: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        bounds.append((start, end))


def _skip(text: str, i: int, end: int, chars: str) -> int:
    while i < end and text[i] in chars:
        i += 1
    return i


def _starts_sentence(text: str, i: int, end: int) -> bool:
    """Whitespace at ``i``, then optional opening marks, then a capital or a CJK ideograph."""
    if i >= end or not text[i].isspace():
        return False
    i = _skip(text, i, end, " \t\u00a0\u2009\u3000")
    i = _skip(text, i, end, _OPENERS)
    return i < end and (text[i].isupper() or "\u4e00" <= text[i] <= "\u9fff")


def _is_abbreviation(text: str, seg: int, period: int) -> bool:
    """Whether the word ending with the period at ``period`` is an abbreviation or initial."""
    word_start = period
    while word_start > seg and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : period + 1].lstrip(_OPENERS)
    return word.lower() in ABBREVIATIONS or _INITIALS.fullmatch(word) is not None


def _windows(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into trimmed windows of at most ``max_chars`` characters."""
    windows: list[tuple[int, int]] = []
    while end - start > max_chars:
        cut = _break(text, start, start + max_chars)
        _emit(windows, text, start, cut)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    _emit(windows, text, start, end)
    return windows


def _break(text: str, start: int, limit: int) -> int:
    """Where to end a window that may span ``[start, limit)``: a position in (start, limit]."""
    # A whitespace at ``limit`` itself ends a window of exactly max_chars characters.
    for i in range(limit, start, -1):
        if text[i].isspace():
            return i
    for i in range(limit - 1, start, -1):
        if text[i] in _SOFT_BREAKS:
            return i + 1
    return limit
