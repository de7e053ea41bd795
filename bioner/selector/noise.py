"""A synthetic noisy tagger: gold spans with boundary, type and spurious errors at known rates.

It stands in for the reference tagger until one exists, so the selector's effect can be
measured on predictions whose errors are known: each gold span is, independently, missed
(``miss``), replaced by a boundary-shifted twin (``shift``: one boundary moved by
1..``max_shift`` tokens), or given another label of the schema (``retype``); otherwise it is
kept. ``spurious`` spans per gold span (on average) are added on 1..3 tokens that overlap no
gold span, with a random label. Everything is drawn from ``seed``: the same documents and
rates give the same predictions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from bioner.records import Span
from bioner.selector.samples import boundary_shifts, tokens_of


@dataclass(frozen=True)
class NoiseRates:
    """Error rates of the synthetic tagger (probabilities per gold span)."""

    miss: float = 0.05
    shift: float = 0.15
    retype: float = 0.05
    spurious: float = 0.10
    max_shift: int = 2

    def __post_init__(self) -> None:
        for name in ("miss", "shift", "retype", "spurious"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise rate {name} must be in [0, 1], got {value}")
        if self.miss + self.shift + self.retype > 1.0:
            raise ValueError("miss + shift + retype must not exceed 1")
        if self.max_shift < 1:
            raise ValueError(f"max_shift must be >= 1, got {self.max_shift}")


def noisy_predictions(
    text: str,
    gold: Sequence[Span],
    labels: Sequence[str],
    rates: NoiseRates,
    rng: random.Random,
) -> list[Span]:
    """The synthetic tagger's spans on one text (see the module docstring), sorted."""
    tokens = tokens_of(text)
    out: set[Span] = set()
    for s in sorted(set(gold)):
        r = rng.random()
        if r < rates.miss:
            continue
        if r < rates.miss + rates.shift:
            shifts = boundary_shifts(tokens, s.start, s.end, rates.max_shift)
            if shifts:
                a, b = rng.choice(shifts)
                out.add(Span(a, b, s.label))
                continue
        elif r < rates.miss + rates.shift + rates.retype:
            others = [label for label in labels if label != s.label]
            if others:
                out.add(Span(s.start, s.end, rng.choice(others)))
                continue
        out.add(s)
    free = [
        i for i, (a, b) in enumerate(tokens) if not any(a < g.end and g.start < b for g in gold)
    ]
    is_free = set(free)
    wanted = _count(rates.spurious * len(gold), rng)
    for _ in range(wanted if free else 0):
        i = rng.choice(free)
        n = rng.randint(1, 3)
        j = i
        while j + 1 < min(len(tokens), i + n) and j + 1 in is_free:
            j += 1
        out.add(Span(tokens[i][0], tokens[j][1], rng.choice(list(labels))))
    return sorted(out)


def _count(mean: float, rng: random.Random) -> int:
    """A whole number with expectation ``mean`` (floor plus a Bernoulli of the rest)."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)
