"""The encoder's input: the candidate's type, then its context with the span marked.

``"Disease | ... was treated for << breast cancer >> with ..."``: the span is put between
marker strings and the context is cut to a window of characters on each side (at token
boundaries), so every input is short whatever the passage length. The character ranges of
the markers and of the marked region are returned with the text: the encoder finds their
tokens through the tokenizer's offsets, whatever the tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bioner.selector.samples import Candidate

OPEN = "<<"
CLOSE = ">>"
TYPE_SEPARATOR = " | "
DEFAULT_WINDOW = 64
_WORD = re.compile(r"[^\W_\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class MarkedInput:
    """The encoder input of one candidate and where its parts are (character ranges)."""

    text: str
    open: tuple[int, int]  # the opening marker
    close: tuple[int, int]  # the closing marker

    @property
    def region(self) -> tuple[int, int]:
        """From the opening marker's start to the closing marker's end."""
        return self.open[0], self.close[1]


def _in_word(text: str, i: int) -> bool:
    """Whether position ``i`` falls between two characters of one word (CJK: never)."""
    return 0 < i < len(text) and bool(_WORD.match(text[i - 1])) and bool(_WORD.match(text[i]))


def _window(text: str, start: int, end: int, window: int) -> tuple[int, int]:
    """``[a, b)`` around ``[start, end)``: at most ``window`` characters each side, an edge
    that would cut a word moved towards the span."""
    a, b = max(0, start - window), min(len(text), end + window)
    while a < start and _in_word(text, a):
        a += 1
    while b > end and _in_word(text, b):
        b -= 1
    return a, b


def marked_input(
    candidate: Candidate, window: int = DEFAULT_WINDOW, open: str = OPEN, close: str = CLOSE
) -> MarkedInput:
    """The encoder input of ``candidate`` (see the module docstring)."""
    c = candidate
    a, b = _window(c.text, c.start, c.end, window)
    left, mention, right = c.text[a : c.start], c.text[c.start : c.end], c.text[c.end : b]
    head = f"{c.label}{TYPE_SEPARATOR}{left.lstrip()}"
    sep_left = "" if not head or head.endswith(" ") else " "
    text = f"{head}{sep_left}{open} {mention} {close}"
    open_at = len(head) + len(sep_left)
    close_at = len(text) - len(close)
    text += ("" if not right or right.startswith(" ") else " ") + right.rstrip()
    return MarkedInput(text, (open_at, open_at + len(open)), (close_at, close_at + len(close)))
