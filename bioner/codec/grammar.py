"""The copy constraint as one regular expression, for engines with regex-structured outputs.

vLLM's structured outputs (xgrammar, guidance, outlines) take a regular expression that the whole
answer must match. :func:`symbolic_regex` writes one for a :class:`SymbolicTarget`: its language
contains every valid answer for the passage (see :mod:`bioner.constraint`) and little more.

What the regex enforces exactly:

* ``None`` alone, or one or more lines ``Header: copy`` joined by ``\\n``;
* headers in schema order, each type on at most ``max_lines_per_type`` lines;
* ``copy`` is the escaped passage, character for character (escapes such as ``\\[`` are
  atomic: no bracket can be inserted inside one), so every answer is an exact, alignable copy;
* at each character boundary a run of at most ``max_depth`` ``]`` then at most ``max_depth``
  ``[`` (closes before opens, as the encoder writes them, so no empty ``[]`` at one boundary);
  no ``]`` before the first character, no ``[`` after the last; the language is finite, so a
  constrained model always stops.

What it does not enforce (a regular expression of linear size cannot count across the line):
bracket balance and nesting depth over the whole line, and "at least one entity per line".
The decoder reports unbalanced brackets as issues and drops them, so a constrained answer still
decodes to exact offsets. :class:`bioner.constraint.CopyAutomaton` enforces all of it where an
engine can run a logits processor.

Portability: only literals, ``\\`` escapes of the metacharacters, ``\\t``/``\\uXXXX``, groups
``( )``, ``|``, ``?`` and ``{0,n}``: no lookarounds, backreferences, anchors, flags or
non-capturing groups. Non-ASCII characters (CJK) are written literally.

Size: the copy pattern is linear in the passage (about 16 characters of regex per passage
character); it appears ``max_lines_per_type + 1`` times per type, since the header order needs a
copy of it per place in the order: ``O(types x lines per type x passage)``.
"""

from __future__ import annotations

import unicodedata

from bioner.codec.symbolic import NO_ENTITIES, escape_passage
from bioner.constraint import HEADER_SEPARATOR, SymbolicTarget

#: Version of the regex's language: part of what a cached constrained generation depends on.
GRAMMAR_VERSION = "symbolic-regex-v1"

_META = frozenset("\\.^$|?*+()[]{}")
_OPEN, _CLOSE = r"\[", r"\]"


def regex_literal(text: str) -> str:
    """``text`` as a regex matching exactly it, in the syntax every backend accepts."""
    return "".join(_literal_char(c) for c in text)


def _literal_char(c: str) -> str:
    if c in _META:
        return "\\" + c
    if c == "\t":
        return r"\t"
    if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") and ord(c) <= 0xFFFF:
        return f"\\u{ord(c):04x}"
    return c


def _repeat(unit: str, n: int) -> str:
    """``unit`` repeated 0 to ``n`` times."""
    return f"{unit}?" if n == 1 else f"{unit}{{0,{n}}}"


def _copy_units(passage: str) -> list[str]:
    """The escaped copy as atomic units: one per source character (``\\[`` is one unit)."""
    return [escape_passage(c) for c in passage]


def copy_regex(target: SymbolicTarget) -> str:
    """The regex of one line's copy: the escaped passage, brackets at character boundaries."""
    units = _copy_units(target.passage)
    depth = target.max_depth
    opens, closes = _repeat(_OPEN, depth), _repeat(_CLOSE, depth)
    gap = closes + opens
    parts = [opens]
    for i, unit in enumerate(units):
        if i:
            parts.append(gap)
        parts.append(regex_literal(unit))
    parts.append(closes)
    return "".join(parts)


def symbolic_regex(target: SymbolicTarget) -> str:
    """A regular expression whose language holds every valid symbolic answer for ``target``.

    Anchors are implicit: structured outputs match the whole answer (use ``re.fullmatch``).
    A passage with no visible character has only ``None`` as a valid answer.
    """
    none = regex_literal(NO_ENTITIES)
    if not target.passage.strip():
        return none
    copy = copy_regex(target)
    sep = regex_literal(HEADER_SEPARATOR)

    # G_i, the answers using types i.. only, from G_{i+1} and L_i, one line of type i:
    #   P_1 = (L_i\n)?(G_{i+1})|L_i,   P_j = (L_i\n)?(P_{j-1}),   G_i = P_k
    # with k = max_lines_per_type: up to k lines of type i, then either the later types or
    # the end. The copy appears k + 1 times per type and the nesting depth is types x k.
    lines = ""
    for header in reversed(target.headers):
        line = f"{regex_literal(header)}{sep}{copy}"
        lines = f"({line}\\n)?({lines})|{line}" if lines else line
        for _ in range(target.max_lines_per_type - 1):
            lines = f"({line}\\n)?({lines})"
    return f"{none}|{lines}"
