"""Copy-constrained decoding of the symbolic format: what a valid answer to one passage can be.

The symbolic answer is the passage itself with brackets and type headers inserted, so at every
point only a few continuations are valid: the next character of the (escaped) passage, ``[``,
``]``, the end of a type line, a type header, or the end. :class:`SymbolicTarget` describes the
answers valid for one passage; :class:`CopyAutomaton` walks them byte by byte (UTF-8), so a
backend can check any token's bytes, whatever the tokenizer's boundaries, and restrict the
model to valid answers. The valid answers are:

* ``None`` alone (no entity), or
* one or more lines ``Header: copy`` joined by ``\\n``, headers in schema order (a type may
  repeat, up to ``max_lines_per_type`` lines, for spans that cross each other), where ``copy``
  is the escaped passage with balanced brackets inserted at character boundaries (never inside
  an escape such as ``\\[``, nor inside a run of ASCII letters and digits unless
  ``whole_words`` is off), nested at most ``max_depth`` deep, no entity empty or with a space
  at either end, every entity with a letter (a CJK character is one) and, unless it holds a
  CJK character, at least two characters (no ``[.]``, ``[5]``, ``[(]`` or ``[K]``; a lone
  ``[血]`` is a mention in Chinese), and at least one bracketed entity per line.

Every valid answer decodes exactly (no alignment needed), and the set is finite, so a
constrained model always stops.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from bioner.codec.symbolic import NO_ENTITIES, escape_passage
from bioner.labels import EntitySchema

HEADER_SEPARATOR = ": "
#: Version of the set of valid answers (an engine's settings name it: cached constrained
#: generations depend on it). Bump on any change to what the automaton accepts.
CONSTRAINT_VERSION = "copy-v4"


@dataclass(frozen=True, slots=True)
class SymbolicTarget:
    """The valid symbolic answers for one passage: its text and the schema's headers, in order."""

    passage: str
    headers: tuple[str, ...]
    #: Nesting: the training data here nests at most 2 deep (27 of 73,000 lines, cMedQANER).
    max_depth: int = 2
    #: Lines per type: a second line is only needed for spans of one type that cross each
    #: other, which no training example here has (0 of 41,638); allowing it lets a weak model
    #: copy the passage again instead of stopping.
    max_lines_per_type: int = 1
    #: Brackets may not split a run of ASCII letters and digits ("[BRCA]1"): gold boundaries
    #: do so in at most 0.13% of the mentions of the English and Chinese sets here.
    whole_words: bool = True

    def __post_init__(self) -> None:
        if not self.headers:
            raise ValueError("a symbolic target needs at least one header")
        if self.max_depth < 1 or self.max_lines_per_type < 1:
            raise ValueError("max_depth and max_lines_per_type must be >= 1")

    @classmethod
    def of(cls, passage: str, schema: EntitySchema, **options: Any) -> SymbolicTarget:
        """The target for ``passage`` tagged with ``schema``'s types."""
        return cls(passage, tuple(t.header for t in schema.types), **options)

    @property
    def copy(self) -> str:
        """The passage as an answer line copies it: escaped, on one line."""
        return escape_passage(self.passage)

    @property
    def none(self) -> str:
        return NO_ENTITIES


# A state is a plain tuple (hashable, cheap): (phase, a, b, c, d, e, f, g)
#   _LINE: a = bytes of the line start typed so far (bytes), b = index of the last line's header
#          (-1 before the first line), c = lines of that header so far
#   _COPY: a = bytes of the copy consumed, b = bracket depth, c = 1 if a bracket was just opened,
#          d = 1 if the line has an entity, e = header index, f = lines of that header so far,
#          g = the position after which each open bracket's content may close (see _ok_from),
#          a tuple, innermost last
#   _NONE_DONE: the answer ``None`` is complete; only the end may follow
State = tuple
_LINE, _COPY, _NONE_DONE = 0, 1, 2
_OPEN, _CLOSE, _NEWLINE, _SPACE = ord("["), ord("]"), ord("\n"), ord(" ")
_CJK = (
    ("\u3400", "\u4dbf"),
    ("\u4e00", "\u9fff"),
    ("\uf900", "\ufaff"),
    ("\U00020000", "\U0002ffff"),
)


def _is_cjk(char: str) -> bool:
    return any(lo <= char <= hi for lo, hi in _CJK)


def entity_shaped(text: str) -> bool:
    """Whether ``text`` may be an entity: it has a letter (a CJK character is one) and, unless
    it holds a CJK character, at least two characters. Punctuation, numbers and lone Latin
    letters are not mentions (``.``, ``5``, ``K``); a lone CJK character may be (``血``)."""
    if not any(c.isalpha() for c in text):
        return False
    return len(text) >= 2 or any(_is_cjk(c) for c in text)


def _word_byte(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


class CopyAutomaton:
    """The valid answers of one :class:`SymbolicTarget`, walked one UTF-8 byte at a time.

    ``start`` is the state before any output; ``allowed(state)`` the bytes that may come next;
    ``step(state, byte)`` the state after one (None if the byte is not allowed);
    ``accepting(state)`` whether the answer may end there. With ``leading_space`` the answer
    may open with one space (SentencePiece tokenizers write a word's space into its token).
    """

    def __init__(self, target: SymbolicTarget, *, leading_space: bool = False) -> None:
        self.target = target
        self.copy = target.copy.encode("utf-8")
        self.headers = [(h + HEADER_SEPARATOR).encode("utf-8") for h in target.headers]
        self.none = NO_ENTITIES.encode("utf-8")
        self.leading_space = leading_space
        n = len(self.copy)
        # Where a bracket may stand before byte i: a character boundary outside an escape.
        self._boundary = [True] * (n + 1)
        i = 0
        text = self.copy
        while i < n:
            byte = text[i]
            if byte == ord("\\"):  # an escape pair: nothing may come between its two bytes
                self._boundary[i + 1] = False
                i += 2
                continue
            length = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            for k in range(i + 1, min(i + length, n)):
                self._boundary[k] = False
            if target.whole_words and i > 0 and _word_byte(text[i - 1]) and _word_byte(byte):
                self._boundary[i] = False
            i += length
        # Look-ahead so that no walk dead-ends: the last position where an entity may close,
        # and the last where one may open and still close.
        closes = [k for k in range(1, n + 1) if self._boundary[k] and text[k - 1] != _SPACE]
        self._last_close = closes[-1] if closes else -1
        # An entity opened before byte j may close at k only when the characters between are
        # entity-shaped; that holds from _ok_from[j] on (content only grows), -1: never.
        self._ok_from = self._entity_ends(closes)
        opens = [
            j
            for j in range(n)
            if self._boundary[j] and text[j] != _SPACE and 0 <= self._ok_from[j] <= self._last_close
        ]
        self._last_open = opens[-1] if opens else -1
        self.start: State = (_LINE, b"", -1, 0, 0, 0, 0, ())

    def _entity_ends(self, closes: list[int]) -> list[int]:
        """Per byte j, the first close position k after j where the characters of
        ``copy[j:k]`` are entity-shaped (:func:`entity_shaped`; an escape is one character),
        or -1 when there is none."""
        n, text = len(self.copy), self.copy
        chars: list[tuple[int, int, str]] = []  # (byte start, byte end, character)
        j = 0
        while j < n:
            byte = text[j]
            escape = byte == ord("\\")
            length = (
                2 if escape else 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            )
            piece = text[j + 1 : j + 2] if escape else text[j : j + length]
            chars.append((j, j + length, piece.decode("utf-8", "replace")))
            j += length
        out = [-1] * (n + 1)
        letter = -1  # index of the first letter at or after ci, scanning from the right
        for ci in range(len(chars) - 1, -1, -1):
            if chars[ci][2].isalpha():
                letter = ci
            if letter < 0:
                continue
            # A CJK character is a letter: if the first letter is one, it suffices alone.
            last = letter if _is_cjk(chars[letter][2]) else max(letter, ci + 1)
            if last >= len(chars):
                continue
            k = bisect.bisect_left(closes, chars[last][1])
            out[chars[ci][0]] = closes[k] if k < len(closes) else -1
        return out

    # ----------------------------------------------------------------- line starts

    def _candidates(self, last: int, count: int) -> list[tuple[bytes, int]]:
        """Line starts possible after a line of header ``last`` (``count`` lines of it)."""
        found = [(self.none, -1)] if last < 0 else []
        if self._last_open < 0:
            return found  # no entity fits this passage: only ``None``
        for k in range(max(last, 0), len(self.headers)):
            if k == last and count >= self.target.max_lines_per_type:
                continue
            found.append((self.headers[k], k))
        return found

    def _line_bytes(self, state: State) -> set[int]:
        typed, last, count = state[1], state[2], state[3]
        out = {c[len(typed)] for c, _ in self._candidates(last, count) if c.startswith(typed)}
        if self.leading_space and last == -1 and typed == b"":
            out.add(_SPACE)
        return out

    def _step_line(self, state: State, byte: int) -> State | None:
        typed, last, count = state[1], state[2], state[3]
        if self.leading_space and last == -1 and typed == b"" and byte == _SPACE:
            return (_LINE, b"", -2, 0, 0, 0, 0, ())  # -2: the space is used up
        typed += bytes((byte,))
        for candidate, k in self._candidates(max(last, -1), count):
            if not candidate.startswith(typed):
                continue
            if candidate != typed:
                return (_LINE, typed, last, count, 0, 0, 0, ())
            if k < 0:
                return (_NONE_DONE, b"", 0, 0, 0, 0, 0, ())
            lines = count + 1 if k == last else 1
            return (_COPY, 0, 0, 0, 0, k, lines, ())
        return None

    # ----------------------------------------------------------------- the copy

    def _more_lines(self, header: int, lines: int) -> bool:
        return bool(self._candidates(header, lines))

    def _copy_bytes(self, state: State) -> set[int]:
        _, i, depth, just_opened, has_entity, header, lines, ok_from = state
        n, text = len(self.copy), self.copy
        out: set[int] = set()
        if i < n:
            # Copy on only while the line can still get its entity and close what is open.
            if (i + 1 <= self._last_close) if depth else (has_entity or i < self._last_open):
                out.add(text[i])
            # No entity starts with a space or at the end, nor where no entity-shaped content
            # can follow before the last close; none is empty or ends with a space.
            if (
                self._boundary[i]
                and depth < self.target.max_depth
                and text[i] != _SPACE
                and 0 <= self._ok_from[i] <= self._last_close
            ):
                out.add(_OPEN)
        if (
            self._boundary[i]
            and depth > 0
            and not just_opened
            and i > 0
            and text[i - 1] != _SPACE
            and 0 <= ok_from[-1] <= i
        ):
            out.add(_CLOSE)
        if i == n and depth == 0 and has_entity and self._more_lines(header, lines):
            out.add(_NEWLINE)
        return out

    def _step_copy(self, state: State, byte: int) -> State | None:
        if byte not in self._copy_bytes(state):
            return None
        _, i, depth, _just_opened, has_entity, header, lines, ok_from = state
        if i < len(self.copy) and byte == self.copy[i]:
            # The copy first: its own brackets are escaped, so a copy byte ``[`` follows ``\``
            # where no tag bracket may stand, and a tag bracket is never a copy byte.
            return (_COPY, i + 1, depth, 0, has_entity, header, lines, ok_from)
        if byte == _OPEN:
            return (_COPY, i, depth + 1, 1, has_entity, header, lines, (*ok_from, self._ok_from[i]))
        if byte == _CLOSE:
            return (_COPY, i, depth - 1, 0, 1, header, lines, ok_from[:-1])
        return (_LINE, b"", header, lines, 0, 0, 0, ())  # the line break after a whole copy

    # ----------------------------------------------------------------- interface

    def allowed(self, state: State) -> set[int]:
        """The bytes that may follow ``state``."""
        phase = state[0]
        if phase == _COPY:
            return self._copy_bytes(state)
        if phase == _LINE:
            return self._line_bytes(state)
        return set()

    def step(self, state: State, byte: int) -> State | None:
        """The state after ``byte``, or None when ``byte`` may not follow ``state``."""
        phase = state[0]
        if phase == _COPY:
            return self._step_copy(state, byte)
        if phase == _LINE:
            return self._step_line(state, byte)  # None when no line start continues so
        return None

    def walk(self, data: bytes, state: State | None = None) -> State | None:
        """The state after all of ``data`` (from ``start`` by default); None if it is invalid."""
        state = self.start if state is None else state
        for byte in data:
            state = self.step(state, byte)
            if state is None:
                return None
        return state

    def accepting(self, state: State) -> bool:
        """Whether the answer may end in ``state``."""
        if state[0] == _NONE_DONE:
            return True
        if state[0] == _COPY:
            _, i, depth, _, has_entity, _, _, _ = state
            return i == len(self.copy) and depth == 0 and bool(has_entity)
        return False

    def accepts(self, answer: str) -> bool:
        """Whether ``answer`` is one of the valid answers."""
        state = self.walk(answer.encode("utf-8"))
        return state is not None and self.accepting(state)
