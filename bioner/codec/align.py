"""Align a model's copy of a passage back to the source text.

Models do not copy perfectly: they change whitespace, write half-width punctuation for
full-width (or the reverse), change case, drop or add a word. Both strings are normalised
character by character (NFKC, case folded, a few punctuation equivalences, whitespace
removed) while remembering where each normalised character came from; the normalised
strings are then matched (exact or prefix in the common case, ``difflib`` otherwise) and
the matches are mapped back to original indices.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property

# Equivalences NFKC does not make but models do: curly quotes, dashes, CJK full stop/comma.
_EQUIV = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "−": "-",
        "。": ".",
        "、": ",",
    }
)
_CHAR_CACHE: dict[str, str] = {}


def norm_char(c: str) -> str:
    """The normalised form of one character ("" for whitespace); cached."""
    n = _CHAR_CACHE.get(c)
    if n is None:
        if c.isspace():
            n = ""
        else:
            n = unicodedata.normalize("NFKC", c).translate(_EQUIV).casefold()
            n = "".join(ch for ch in n if not ch.isspace())
        _CHAR_CACHE[c] = n
    return n


def normalize(s: str, skip: str = "") -> tuple[str, list[int]]:
    """``s`` normalised, and for each normalised character the index it came from in ``s``.

    Characters in ``skip`` are left out (the symbolic decoder skips literal brackets).
    """
    out: list[str] = []
    idx: list[int] = []
    for i, c in enumerate(s):
        if c in skip:
            continue
        n = norm_char(c)
        if n:
            out.append(n)
            idx.extend([i] * len(n))
    return "".join(out), idx


@dataclass
class Source:
    """A source text with the derived forms decoders need, each computed once on demand."""

    text: str
    _skip: str = field(default="[]", repr=False)

    @cached_property
    def has_brackets(self) -> bool:
        return any(c in self.text for c in self._skip)

    @cached_property
    def flat(self) -> tuple[str, list[int]]:
        """The text without literal brackets, whitespace as single spaces, with indices."""
        if not self.has_brackets:
            return flat_copy(self.text), list(range(len(self.text)))
        idx = [i for i, c in enumerate(self.text) if c not in self._skip]
        return flat_copy("".join(self.text[i] for i in idx)), idx

    @cached_property
    def norm_no_brackets(self) -> tuple[str, list[int]]:
        return normalize(self.text, self._skip)

    @cached_property
    def norm(self) -> tuple[str, list[int]]:
        return normalize(self.text)

    @cached_property
    def last_content(self) -> int:
        """Index of the last character that is neither whitespace nor a bracket (-1 if none)."""
        for i in range(len(self.text) - 1, -1, -1):
            c = self.text[i]
            if not c.isspace() and c not in self._skip:
                return i
        return -1


_SPACE = re.compile(r"\s")


def flat_copy(copy: str) -> str:
    """A copy with every whitespace character as a space, comparable with ``Source.flat``."""
    return _SPACE.sub(" ", copy)


def align_fuzzy(copy: str, source: Source) -> tuple[list[int | None], int]:
    """Map each character of ``copy`` to a source index (None where it has no counterpart).

    Whitespace is never mapped. Returns the map and the number of normalised characters
    of the copy that matched nothing in the source (0 when only case/width/space changed).
    """
    nc, ic = normalize(copy)
    ns, is_ = source.norm_no_brackets
    mapping: list[int | None] = [None] * len(copy)
    if ns.startswith(nc):
        blocks = [(0, 0, len(nc))]
    else:
        blocks = SequenceMatcher(None, nc, ns, autojunk=False).get_matching_blocks()
    matched = 0
    for a, b, size in blocks:
        matched += size
        for k in range(size):
            ci = ic[a + k]
            if mapping[ci] is None:
                mapping[ci] = is_[b + k]
    return mapping, len(nc) - matched


def find_all(haystack: str, needle: str) -> list[int]:
    """Start indices of every occurrence of ``needle``, overlapping ones included."""
    out = []
    i = haystack.find(needle)
    while i != -1:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def find_normalized(source: Source, needle: str) -> list[tuple[int, int]]:
    """Source ranges whose normalised form equals the normalised ``needle`` (e.g. case)."""
    nn, _ = normalize(needle)
    if not nn:
        return []
    ns, idx = source.norm
    return [(idx[p], idx[p + len(nn) - 1] + 1) for p in find_all(ns, nn)]
