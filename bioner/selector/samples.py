"""Candidates and the contrastive training samples made from gold spans.

A :class:`Candidate` is a labelled span in its context (a passage, or a document); a
:class:`Sample` is a candidate with its truth for training: a gold span is a positive, the same
span with one boundary moved by 1..k tokens, with another type, or a tagger's false positive is
a negative. Negatives keep the index of the gold span they were made from (``group``), so a
training batch can hold a span together with its boundary-shifted twins.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bioner.records import Span

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: One CJK character, a run of letters/digits, or one other visible character.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|[^\w\s]|_")


class Kind(StrEnum):
    """Where a sample comes from."""

    GOLD = "gold"
    BOUNDARY = "boundary"  # a gold span with one boundary moved by 1..k tokens
    TYPE = "type"  # a gold extent with another label
    TAGGER = "tagger"  # a tagger's prediction that is not gold


@dataclass(frozen=True, slots=True)
class Candidate:
    """A labelled span ``text[start:end]`` in its context ``text``."""

    text: str
    start: int
    end: int
    label: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= len(self.text):
            raise ValueError(
                f"candidate [{self.start}, {self.end}) {self.label!r} outside its text "
                f"of length {len(self.text)}"
            )
        if not self.label:
            raise ValueError("candidate label must not be empty")

    @property
    def mention(self) -> str:
        """The covered text."""
        return self.text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class Sample:
    """A candidate with its truth: ``positive`` for a gold span, else a negative of ``kind``."""

    candidate: Candidate
    positive: bool
    kind: Kind
    group: int  # the gold span it was made from; -1 for a tagger's spurious span

    @property
    def contrastive_class(self) -> str:
        """The class of the supervised contrastive loss: the type, or not-the-type."""
        return self.candidate.label if self.positive else f"not:{self.candidate.label}"


def tokens_of(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of the tokens of ``text``: words, numbers, CJK characters, symbols."""
    return [m.span() for m in _TOKEN.finditer(text)]


def boundary_shifts(
    tokens: Sequence[tuple[int, int]], start: int, end: int, max_shift: int
) -> list[tuple[int, int]]:
    """Extents made by moving one boundary of ``[start, end)`` by 1..``max_shift`` tokens.

    The start moves to the m-th token start before it (extend) or after it (shrink); the end
    to the m-th token end after it (extend) or before it (shrink). A shrink never empties the
    span. Boundaries need not be on token boundaries (a gold span inside a word). Unique,
    in a fixed order.
    """
    starts = sorted({a for a, _ in tokens})
    ends = sorted({b for _, b in tokens})
    before_start = [a for a in starts if a < start][::-1]
    after_start = [a for a in starts if start < a < end]
    before_end = [b for b in ends if start < b < end][::-1]
    after_end = [b for b in ends if b > end]
    out: dict[tuple[int, int], None] = {}
    for m in range(max_shift):
        if m < len(before_start):
            out[(before_start[m], end)] = None
        if m < len(after_start):
            out[(after_start[m], end)] = None
        if m < len(before_end):
            out[(start, before_end[m])] = None
        if m < len(after_end):
            out[(start, after_end[m])] = None
    out.pop((start, end), None)
    return list(out)


def samples_of_document(
    text: str,
    gold: Iterable[Span],
    labels: Sequence[str],
    *,
    max_shift: int = 2,
    wrong_types: bool = True,
    predictions: Iterable[Span] = (),
    first_group: int = 0,
) -> list[Sample]:
    """Positives and boundary-sensitive negatives of one text (see the module docstring).

    A shifted or retyped extent that is itself gold with that label is not a negative. Groups
    are numbered from ``first_group`` in gold order.
    """
    spans = sorted(set(gold))
    truth = {(s.start, s.end, s.label) for s in spans}
    tokens = tokens_of(text)
    out: list[Sample] = []
    seen: set[tuple[int, int, str]] = set()

    def add(start: int, end: int, label: str, kind: Kind, group: int) -> None:
        key = (start, end, label)
        if key in seen or (kind is not Kind.GOLD and key in truth):
            return
        seen.add(key)
        out.append(Sample(Candidate(text, start, end, label), kind is Kind.GOLD, kind, group))

    for g, s in enumerate(spans, start=first_group):
        add(s.start, s.end, s.label, Kind.GOLD, g)
    for g, s in enumerate(spans, start=first_group):
        for a, b in boundary_shifts(tokens, s.start, s.end, max_shift):
            add(a, b, s.label, Kind.BOUNDARY, g)
        if wrong_types:
            for label in labels:
                if label != s.label:
                    add(s.start, s.end, label, Kind.TYPE, g)
    for p in sorted(set(predictions)):
        if (p.start, p.end, p.label) not in truth:
            group = next(
                (
                    g
                    for g, s in enumerate(spans, start=first_group)
                    if s.start < p.end and p.start < s.end
                ),
                -1,
            )
            add(p.start, p.end, p.label, Kind.TAGGER, group)
    return out


def training_samples(
    documents: Iterable[tuple[str, Sequence[Span]]],
    labels: Sequence[str],
    *,
    max_shift: int = 2,
    wrong_types: bool = True,
    predictions: Mapping[int, Iterable[Span]] | None = None,
) -> list[Sample]:
    """:func:`samples_of_document` over ``(text, gold spans)`` pairs, groups numbered across
    documents; ``predictions`` maps a document's position to a tagger's spans on it."""
    out: list[Sample] = []
    next_group = 0
    for i, (text, gold) in enumerate(documents):
        found = samples_of_document(
            text,
            gold,
            labels,
            max_shift=max_shift,
            wrong_types=wrong_types,
            predictions=(predictions or {}).get(i, ()),
            first_group=next_group,
        )
        out.extend(found)
        next_group += len(set(gold))
    return out


def subsample(
    samples: Sequence[Sample], negatives_per_positive: int, seed: int = 0
) -> list[Sample]:
    """Every positive with at most ``negatives_per_positive`` of its group's negatives, drawn
    with ``seed``; of the negatives without a group (spurious tagger spans), at most
    ``negatives_per_positive`` times the number of positives."""
    rng = random.Random(seed)
    by_group: dict[int, list[Sample]] = {}
    loose: list[Sample] = []
    out: list[Sample] = []
    for s in samples:
        if s.positive:
            out.append(s)
        elif s.group < 0:
            loose.append(s)
        else:
            by_group.setdefault(s.group, []).append(s)
    for group in sorted(by_group):
        negatives = by_group[group]
        out.extend(rng.sample(negatives, min(negatives_per_positive, len(negatives))))
    n_positive = sum(s.positive for s in samples)
    keep = min(len(loose), negatives_per_positive * max(n_positive, 1))
    out.extend(rng.sample(loose, keep))
    return out


def candidate_in_passage(
    passage: str | None, passage_start: int, start: int, end: int, text: str, label: str
) -> Candidate | str:
    """The candidate a table row describes (document offsets ``[start, end)`` in a passage
    starting at ``passage_start``), or why it cannot be one: ``"no_passage"``,
    ``"offsets_outside_passage"`` or ``"text_mismatch"`` (values of
    :class:`bioner.selector.scoring.Reason`)."""
    if passage is None:
        return "no_passage"
    a, b = start - passage_start, end - passage_start
    if not 0 <= a < b <= len(passage):
        return "offsets_outside_passage"
    if passage[a:b] != text:
        return "text_mismatch"
    return Candidate(passage, a, b, label or "?")
