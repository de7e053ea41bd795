"""Over-long passages: windows cover the text with overlap; merged spans are each mention once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bioner.records import Span
from bioner.windows import merge_window_spans, split_windows

TEXT = " ".join(f"word{i}" for i in range(200))


def test_short_text_is_one_window():
    assert split_windows("short text", 50, 10) == [(0, 10)]


def test_windows_cover_overlap_and_keep_words_whole():
    windows = split_windows(TEXT, 120, 30)
    assert windows[0][0] == 0 and windows[-1][1] == len(TEXT)
    for (a0, a1), (b0, b1) in itertools.pairwise(windows):
        assert a1 - a0 <= 120 and b0 < a1 <= b1  # overlapping, moving forward
        assert TEXT[b0 - 1] == " " and (a1 == len(TEXT) or TEXT[a1] == " ")


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        split_windows(TEXT, 100, 80)


@given(st.integers(24, 200), st.integers(0, 9), st.data())
def test_every_mention_comes_back_once(size, overlap_tenths, data):
    """Mentions up to half the overlap long are whole in the window that owns their middle."""
    overlap = size // 4 + size * overlap_tenths // 40
    windows = split_windows(TEXT, size, overlap)
    # Gold mentions: some words; each window "finds" the mentions wholly inside it.
    words = [(m, m + len(w)) for m, w in _words(TEXT)]
    picked = data.draw(st.lists(st.sampled_from(words), unique=True, max_size=20))
    gold = {Span(a, b, "Disease") for a, b in picked if b - a <= overlap // 2}
    found = [
        [Span(s.start - w0, s.end - w0, s.label) for s in gold if w0 <= s.start and s.end <= w1]
        for w0, w1 in windows
    ]
    assert set(merge_window_spans(windows, found)) == gold


def _words(text):
    pos = 0
    for w in text.split(" "):
        yield pos, w
        pos += len(w) + 1
