"""Passages longer than a model's context: overlapping windows, and their spans merged back.

A passage whose prompt and answer do not fit the model's context is never cut silently: it is
tagged as overlapping windows (cut at whitespace where possible), and the spans of the windows
are merged into passage offsets. Each window owns the part of the passage between the middles
of its overlaps with its neighbours; a span is kept from the window that owns its middle, so
a mention cut by one window's edge comes whole from the other, and none is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bioner.records import Span


def split_windows(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows of at most ``size`` characters covering ``text``.

    Consecutive windows overlap by about ``overlap`` characters; ends move back to the last
    whitespace in the window's last quarter when there is one, so words stay whole.
    """
    if size < 2 or not 0 <= overlap < size // 2 + 1:
        raise ValueError(f"need size >= 2 and 0 <= overlap <= size / 2, got {size}, {overlap}")
    n = len(text)
    if n <= size:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, n)
        if end < n:
            cut = text.rfind(" ", start + (3 * size) // 4, end)
            if cut > start:
                end = cut
        out.append((start, end))
        if end >= n:
            return out
        nxt = max(end - overlap, start + 1)
        # Start the next window on a word: after the first whitespace at or past ``nxt``.
        space = text.find(" ", nxt, end)
        start = space + 1 if space != -1 and space + 1 < end else nxt


def merge_window_spans(
    windows: Sequence[tuple[int, int]], spans: Sequence[Iterable[Span]]
) -> list[Span]:
    """Spans of each window (window offsets) as passage offsets, each mention once.

    ``windows[k]`` is window k's ``[start, end)`` in the passage (as :func:`split_windows`
    gives) and ``spans[k]`` its spans relative to the window's start.
    """
    if len(windows) != len(spans):
        raise ValueError(f"{len(windows)} windows but {len(spans)} span lists")
    bounds = []
    for k, (start, end) in enumerate(windows):
        lo = start if k == 0 else (start + windows[k - 1][1]) // 2
        hi = end if k == len(windows) - 1 else (windows[k + 1][0] + end) // 2
        bounds.append((lo, hi))
    merged: set[Span] = set()
    for (start, _), (lo, hi), found in zip(windows, bounds, spans, strict=True):
        for s in found:
            shifted = s.shifted(start)
            middle = (shifted.start + shifted.end) / 2
            if lo <= middle < hi or (middle == hi == windows[-1][1]):
                merged.add(shifted)
    return sorted(merged, key=lambda s: (s.start, -s.end, s.label))
