"""Tokens for the token-level formats (IOB2, GENIA): cut so that every span stays whole."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from bioner.records import Document, Span

#: Metadata a token-format reader puts on a document whose text is its tokens joined by single
#: spaces; a token-format writer then splits on whitespace only (not at punctuation), which
#: gives the same tokens back.
SPACE_JOINED = ("tokens", "space-joined")

# A run of word characters other than CJK ideographs, or any other single non-space character:
# "beta-catenin," -> beta | - | catenin | ,  and  "头痛3天" -> 头 | 痛 | 3 | 天 (the tokenization
# of the NCBI-disease and BC5CDR IOB files, and the usual one-character tokens of Chinese NER).
_PIECES = re.compile(r"[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+|\S")
_WORDS = re.compile(r"\S+")


def is_space_joined(doc: Document) -> bool:
    """True when ``doc`` came from a token format (its text is tokens joined by spaces)."""
    return SPACE_JOINED in doc.metadata


def tokenize(text: str, cuts: Iterable[int], *, split_punctuation: bool) -> list[tuple[int, int]]:
    """Token ``(start, end)`` offsets of ``text``, also cut at every offset in ``cuts``.

    Tokens are whitespace-separated; with ``split_punctuation`` each punctuation mark and each
    CJK character is a token of its own as well.
    """
    bounds = sorted(set(cuts))
    pattern = _PIECES if split_punctuation else _WORDS
    out: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        s, e = m.span()
        i = bisect_right(bounds, s)
        while i < len(bounds) and bounds[i] < e:
            out.append((s, bounds[i]))
            s = bounds[i]
            i += 1
        out.append((s, e))
    return out


def token_range(tokens: Sequence[tuple[int, int]], span: Span) -> tuple[int, int]:
    """The tokens ``[i, j)`` inside ``span``; ``i == j`` when it covers only whitespace."""
    i = bisect_left(tokens, span.start, key=lambda t: t[0])
    j = bisect_right(tokens, span.end, key=lambda t: t[1])
    return i, max(i, j)


def outermost(spans: Iterable[Span]) -> tuple[list[Span], int]:
    """A non-overlapping subset keeping the outermost (longest, then earliest) spans.

    Returns the kept spans in order and how many nested or crossing spans were dropped.
    """
    kept: list[Span] = []
    dropped = 0
    end = -1
    for s in sorted(spans, key=lambda s: (s.start, -s.end, s.label)):
        if s.start >= end:
            kept.append(s)
            end = s.end
        else:
            dropped += 1
    return kept, dropped
