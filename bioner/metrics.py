"""Span-level NER metrics: strict and overlap-relaxed precision, recall and F1.

Definitions, fixed here and relied on by the tests and the ``bioner eval`` command:

* **Spans** are ``(start, end, label)`` triples per document id; each side is a set, so a
  duplicate counts once. Nested or overlapping spans are distinct triples and all count.
* **Strict**: a prediction is a true positive iff the exact triple is in gold.
* **Relaxed**: a prediction matches a gold span of the same label if they share at least one
  character; matching is one-to-one and *maximum* (augmenting paths, per document and label),
  so the count is the largest possible and independent of span order. It is never below the
  strict count, because the exact matches are themselves a one-to-one matching.
* **0/0**: precision, recall and F1 are 0.0 whenever their denominator is 0 (no predictions,
  no gold, or both zero); ``support`` (gold count) is reported so such rows can be spotted.
* **Micro** pools tp/fp/fn over all types. **Macro** is the unweighted mean of the per-type
  precision, recall and F1 (each averaged on its own, not F1 of mean P and R) over the types
  present in gold or predictions, or over ``labels`` when given (as seqeval/scikit-learn do):
  a type that is only predicted scores 0 and pulls macro down; a listed type with no spans on
  either side scores 0 too.
* **Documents**: a gold document without predictions predicted no spans (its gold spans are
  false negatives). A predicted document absent from gold has no gold spans, so its spans are
  false positives; it never raises a score. Both lists of ids are in the result to warn about.
* **False-positive breakdown** (strict), each false positive in the first class that fits:
  ``wrong_type`` (a gold span has the same extent, other label), ``wrong_boundary`` (overlaps a
  gold span of the same label), ``wrong_both`` (overlaps only gold spans of other labels),
  ``spurious`` (overlaps no gold span).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bioner.records import AnnotatedDocument, Span

Triple = tuple[int, int, str]
SpanLike = Span | Triple


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


@dataclass(frozen=True, slots=True)
class Score:
    """Counts of one type (or pooled) with precision, recall and F1 derived from them."""

    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        """Number of gold spans."""
        return self.tp + self.fn

    @property
    def predicted(self) -> int:
        """Number of predicted spans."""
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        # 2tp / (2tp + fp + fn) equals the harmonic mean and avoids float round-off.
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios (fractions in [0, 1]) as plain JSON values."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True, slots=True)
class Average:
    """Macro average: unweighted means of per-type precision, recall and F1 over ``labels``."""

    precision: float
    recall: float
    f1: float
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Ratios and the averaged labels as plain JSON values."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class Scores:
    """Per-type scores (given labels first, then the rest sorted), micro and macro."""

    per_type: Mapping[str, Score]
    micro: Score
    macro: Average

    def to_dict(self) -> dict[str, Any]:
        """Nested plain JSON values."""
        return {
            "per_type": {k: v.to_dict() for k, v in self.per_type.items()},
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class FalsePositives:
    """Strict false positives split by what went wrong; the four counts sum to micro fp."""

    wrong_type: int = 0
    wrong_boundary: int = 0
    wrong_both: int = 0
    spurious: int = 0

    def to_dict(self) -> dict[str, int]:
        """Counts as plain JSON values."""
        return {
            "wrong_type": self.wrong_type,
            "wrong_boundary": self.wrong_boundary,
            "wrong_both": self.wrong_both,
            "spurious": self.spurious,
        }


@dataclass(frozen=True)
class Evaluation:
    """Strict and relaxed scores, the false-positive breakdown and the document accounting."""

    strict: Scores
    relaxed: Scores
    false_positives: FalsePositives
    n_gold_docs: int
    n_pred_docs: int
    missing_docs: tuple[str, ...]
    extra_docs: tuple[str, ...]

    @property
    def per_type(self) -> Mapping[str, Score]:
        return self.strict.per_type

    @property
    def micro(self) -> Score:
        return self.strict.micro

    @property
    def macro(self) -> Average:
        return self.strict.macro

    def to_dict(self) -> dict[str, Any]:
        """The whole result as nested plain JSON values (ratios as fractions, not percent)."""
        return {
            "documents": {
                "gold": self.n_gold_docs,
                "pred": self.n_pred_docs,
                "missing_in_pred": list(self.missing_docs),
                "extra_in_pred": list(self.extra_docs),
            },
            "strict": self.strict.to_dict(),
            "relaxed": self.relaxed.to_dict(),
            "false_positives": self.false_positives.to_dict(),
        }


def _triples(spans: Iterable[SpanLike]) -> set[Triple]:
    out: set[Triple] = set()
    for s in spans:
        if isinstance(s, Span):
            out.add((s.start, s.end, s.label))
        else:
            start, end, label = s
            out.add((start, end, label))
    return out


def _overlaps(a: Triple, b: Triple) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _max_matching(adjacency: list[list[int]], n_right: int) -> int:
    """Size of a maximum bipartite matching (Kuhn's augmenting paths, iterative DFS)."""
    owner = [-1] * n_right  # right vertex -> matched left vertex
    size = 0
    # A greedy first pass matches most vertices in linear time; augmenting paths are then
    # searched only from the rest (without it, dense overlap graphs take cubic time).
    unmatched = []
    for left, neighbours in enumerate(adjacency):
        free = next((r for r in neighbours if owner[r] == -1), None)
        if free is None:
            unmatched.append(left)
        else:
            owner[free] = left
            size += 1
    for root in unmatched:
        seen = [False] * n_right
        # Frames: (left vertex, iterator over its neighbours, right vertex that led here).
        stack: list[tuple[int, Iterable[int], int]] = [(root, iter(adjacency[root]), -1)]
        while stack:
            left, neighbours, _ = stack[-1]
            for right in neighbours:
                if seen[right]:
                    continue
                seen[right] = True
                if owner[right] == -1:
                    # Augment: each frame takes the right vertex that led to the frame above.
                    owner[right] = left
                    for i in range(len(stack) - 1, 0, -1):
                        owner[stack[i][2]] = stack[i - 1][0]
                    size += 1
                    stack.clear()
                else:
                    stack.append((owner[right], iter(adjacency[owner[right]]), right))
                break
            else:
                stack.pop()
    return size


def _relaxed_tp(gold: set[Triple], pred: set[Triple]) -> int:
    """Maximum one-to-one overlap matching between same-label gold and predicted spans."""
    golds = sorted(gold)
    starts = [g[0] for g in golds]
    adjacency = []
    for p in sorted(pred):
        # Only gold spans starting before p ends can overlap it.
        upto = bisect.bisect_left(starts, p[1])
        adjacency.append([j for j in range(upto) if golds[j][1] > p[0]])
    return _max_matching(adjacency, len(golds))


def _classify_fp(fp: Triple, gold: set[Triple], by_extent: set[tuple[int, int]]) -> str:
    if (fp[0], fp[1]) in by_extent:
        return "wrong_type"
    overlapping = [g for g in gold if _overlaps(fp, g)]
    if any(g[2] == fp[2] for g in overlapping):
        return "wrong_boundary"
    return "wrong_both" if overlapping else "spurious"


def _scores(counts: Mapping[str, Score], labels: Sequence[str] | None) -> Scores:
    order = list(dict.fromkeys(labels or ()))
    order += sorted(set(counts) - set(order))
    per_type = {k: counts.get(k, Score(0, 0, 0)) for k in order}
    micro = sum(per_type.values(), Score(0, 0, 0))
    averaged = tuple(dict.fromkeys(labels)) if labels is not None else tuple(order)
    n = len(averaged)
    macro = Average(
        precision=sum(per_type[k].precision for k in averaged) / n if n else 0.0,
        recall=sum(per_type[k].recall for k in averaged) / n if n else 0.0,
        f1=sum(per_type[k].f1 for k in averaged) / n if n else 0.0,
        labels=averaged,
    )
    return Scores(per_type, micro, macro)


def evaluate(
    gold: Mapping[str, Iterable[SpanLike]],
    pred: Mapping[str, Iterable[SpanLike]],
    *,
    labels: Sequence[str] | None = None,
) -> Evaluation:
    """Strict and relaxed P/R/F1 of ``pred`` against ``gold``, both keyed by document id.

    ``labels`` fixes the types macro averages over (and lists them first, even if unseen);
    without it macro covers every type seen in gold or predictions. See the module docstring.
    """
    strict: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    relaxed: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    kinds = {"wrong_type": 0, "wrong_boundary": 0, "wrong_both": 0, "spurious": 0}
    for doc_id in dict.fromkeys([*gold, *pred]):
        g = _triples(gold.get(doc_id, ()))
        p = _triples(pred.get(doc_id, ()))
        by_label: dict[str, tuple[set[Triple], set[Triple]]] = defaultdict(lambda: (set(), set()))
        for s in g:
            by_label[s[2]][0].add(s)
        for s in p:
            by_label[s[2]][1].add(s)
        for label, (gl, pl) in by_label.items():
            tp = len(gl & pl)
            c = strict[label]
            c[0], c[1], c[2] = c[0] + tp, c[1] + len(pl) - tp, c[2] + len(gl) - tp
            rtp = _relaxed_tp(gl, pl) if gl and pl else 0
            c = relaxed[label]
            c[0], c[1], c[2] = c[0] + rtp, c[1] + len(pl) - rtp, c[2] + len(gl) - rtp
        gold_extents = {(s[0], s[1]) for s in g}
        for fp in p - g:
            kinds[_classify_fp(fp, g, gold_extents)] += 1
    return Evaluation(
        strict=_scores({k: Score(*v) for k, v in strict.items()}, labels),
        relaxed=_scores({k: Score(*v) for k, v in relaxed.items()}, labels),
        false_positives=FalsePositives(**kinds),
        n_gold_docs=len(gold),
        n_pred_docs=len(pred),
        missing_docs=tuple(d for d in gold if d not in pred),
        extra_docs=tuple(d for d in pred if d not in gold),
    )


def evaluate_documents(
    gold: Iterable[AnnotatedDocument],
    pred: Iterable[AnnotatedDocument],
    *,
    labels: Sequence[str] | None = None,
) -> Evaluation:
    """:func:`evaluate` over annotated documents; raises ValueError on a repeated id or on
    texts that differ for one id (offsets would not be comparable)."""
    sides: list[dict[str, AnnotatedDocument]] = []
    for name, docs in (("gold", gold), ("pred", pred)):
        by_id: dict[str, AnnotatedDocument] = {}
        for d in docs:
            if d.id in by_id:
                raise ValueError(f"{name}: document {d.id!r} appears twice")
            by_id[d.id] = d
        sides.append(by_id)
    g, p = sides
    for doc_id, d in p.items():
        if doc_id in g and g[doc_id].text != d.text:
            raise ValueError(f"document {doc_id!r}: gold and predicted texts differ")
    return evaluate(
        {k: d.spans for k, d in g.items()}, {k: d.spans for k, d in p.items()}, labels=labels
    )


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def score_row(name: str, s: Score) -> tuple[str, ...]:
    """``(name, support, tp, fp, fn, P, R, F1)`` as strings, P/R/F1 in percent, 2 decimals."""
    return (
        name,
        str(s.support),
        str(s.tp),
        str(s.fp),
        str(s.fn),
        _pct(s.precision),
        _pct(s.recall),
        _pct(s.f1),
    )


def average_row(name: str, a: Average, support: int) -> tuple[str, ...]:
    """A macro row in the layout of :func:`score_row`; counts are left blank."""
    return (name, str(support), "", "", "", _pct(a.precision), _pct(a.recall), _pct(a.f1))


def table_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the report: one per type (strict), then micro and macro, strict and relaxed.

    Shared by the text table and the CLI's rich table so both show the same numbers.
    """
    rows = [score_row(label, s) for label, s in ev.strict.per_type.items()]
    for name, scores in (("", ev.strict), (" (relaxed)", ev.relaxed)):
        rows.append(score_row("micro" + name, scores.micro))
        rows.append(average_row("macro" + name, scores.macro, scores.micro.support))
    return rows


TABLE_HEADER = ("label", "support", "TP", "FP", "FN", "P", "R", "F1")


def render_table(ev: Evaluation) -> str:
    """A plain-text per-type table (strict) with micro/macro rows, strict and relaxed."""
    rows = [TABLE_HEADER, *table_rows(ev)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
