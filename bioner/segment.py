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
# Letters right before a period that make the word too long for an abbreviation or an initial.
_LONG_WORD = max(map(len, ABBREVIATIONS))

_HARD_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_ZH_END = "。！？；"
_EN_END = ".!?"
_CLOSERS = "\"'”’)]}）」』》】"
_OPENERS = "\"'“‘([{（「『《【"
_SOFT_BREAKS = ",;:，、；：)]}）" + _ZH_END + _EN_END
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+")
_HARD_BREAK = re.compile(f"[{re.escape(_HARD_BREAKS)}]")
# One pass finds every sentence end: ``。！？；`` (with closers) always; ``. ! ?`` (with closers)
# only before spaces, optional openers and a character (group 1) that must be a capital or a CJK
# ideograph (checked in Python, as is the abbreviation rule). The leading character class lets
# the regex engine skip to the next mark at C speed.
_SENTENCE_END = re.compile(
    f"[{_ZH_END}{re.escape(_EN_END)}]"
    f"(?:(?<=[{_ZH_END}])[{re.escape(_ZH_END + _CLOSERS)}]*"
    f"|(?<=[{re.escape(_EN_END)}])[{re.escape(_EN_END + _CLOSERS)}]*"
    f"(?=[ \\t\u00a0\u2009\u3000]+[{re.escape(_OPENERS)}]*(.)))",
    re.DOTALL,
)


def segment(doc: Document, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """Passages of ``doc`` in order: the title, then the sentences (windowed if too long)."""
    text = doc.text
    return [
        Passage(doc.id, i, start, end, text[start:end], doc.version, doc.language)
        for i, (start, end) in enumerate(passage_bounds(text, doc.title, max_chars))
    ]


def passage_bounds(
    text: str, title: str = "", max_chars: int = DEFAULT_MAX_CHARS
) -> list[tuple[int, int]]:
    """``[start, end)`` of each passage of a document's ``text`` (see :func:`segment`).

    The offsets alone, for callers that build columns rather than :class:`Passage` objects.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    title_end = len(title) if title and text.startswith(title) else 0
    pieces: list[tuple[int, int]] = []
    if title_end:
        for start, end in _lines(text, 0, title_end):
            _add_windows(pieces, text, start, end, max_chars)
    for start, end in sentence_bounds(text, title_end, len(text)):
        _add_windows(pieces, text, start, end, max_chars)
    return pieces


def sentence_bounds(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence ranges ``[s, e)`` of ``text[start:end]``, trimmed of whitespace, in order."""
    end = len(text) if end is None else end
    bounds: list[tuple[int, int]] = []
    for line_start, line_end in _lines(text, start, end):
        seg = line_start
        for m in _SENTENCE_END.finditer(text, line_start, line_end):
            after = m.group(1)
            if after is not None:  # . ! ?: a new sentence must follow, and no abbreviation
                if not (after.isupper() or "\u4e00" <= after <= "\u9fff"):
                    continue
                if text[m.start()] == "." and _is_abbreviation(text, seg, m.start()):
                    continue
            j = m.end()
            _emit(bounds, text, seg, j)
            seg = j
        _emit(bounds, text, seg, line_end)
    return bounds


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed non-empty ranges of ``text[start:end]`` between line breaks."""
    lines: list[tuple[int, int]] = []
    if _HARD_BREAK.search(text, start, end) is None:  # the usual case: one line
        _emit(lines, text, start, end)
        return lines
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


def _is_abbreviation(text: str, seg: int, period: int) -> bool:
    """Whether the word ending with the period at ``period`` is an abbreviation or initial."""
    if period - _LONG_WORD >= seg and text[period - _LONG_WORD : period].isalpha():
        return False  # the usual case: a long word, neither abbreviation nor initials
    word_start = period
    while word_start > seg and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : period + 1].lstrip(_OPENERS)
    return word.lower() in ABBREVIATIONS or _INITIALS.fullmatch(word) is not None


def _add_windows(
    windows: list[tuple[int, int]], text: str, start: int, end: int, max_chars: int
) -> None:
    """Append ``[start, end)`` (trimmed) cut into windows of at most ``max_chars`` characters."""
    if end - start <= max_chars:  # the usual case: a trimmed range that fits
        windows.append((start, end))
        return
    while end - start > max_chars:
        cut = _break(text, start, start + max_chars)
        _emit(windows, text, start, cut)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    _emit(windows, text, start, end)


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
