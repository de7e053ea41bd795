"""Span metrics against values computed by hand (as fractions) on tiny cases."""

from __future__ import annotations

import json
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioner.metrics import (
    Average,
    FalsePositives,
    Score,
    evaluate,
    evaluate_documents,
    render_table,
)
from bioner.records import AnnotatedDocument, Document, Span

approx = pytest.approx


def prf(s: Score | Average) -> tuple[float, float, float]:
    return (s.precision, s.recall, s.f1)


# --- strict ------------------------------------------------------------------------------


def test_mixed_case_per_type_micro_macro():
    gold = {"d": [(0, 4, "A"), (5, 9, "B"), (10, 14, "A")]}
    pred = {"d": [(0, 4, "A"), (5, 9, "A"), (10, 14, "A"), (20, 25, "B")]}
    ev = evaluate(gold, pred)
    a, b = ev.per_type["A"], ev.per_type["B"]
    assert (a.tp, a.fp, a.fn, a.support) == (2, 1, 0, 2)
    assert prf(a) == approx((2 / 3, 1, 4 / 5))
    assert (b.tp, b.fp, b.fn, b.support) == (0, 1, 1, 1)
    assert prf(b) == (0, 0, 0)
    assert (ev.micro.tp, ev.micro.fp, ev.micro.fn) == (2, 2, 1)
    assert prf(ev.micro) == approx((1 / 2, 2 / 3, 4 / 7))
    # Each of macro P, R, F1 is the mean of the per-type values, not F1 of mean P and R.
    assert prf(ev.macro) == approx((1 / 3, 1 / 2, 2 / 5))
    assert ev.macro.labels == ("A", "B")
    # (5, 9, A) has the extent of gold (5, 9, B); (20, 25, B) touches nothing.
    assert ev.false_positives == FalsePositives(wrong_type=1, spurious=1)


def test_nested_spans_are_distinct():
    gold = {"d": [(0, 4, "protein"), (0, 9, "DNA"), (0, 9, "protein")]}
    assert prf(evaluate(gold, gold).micro) == (1, 1, 1)
    ev = evaluate(gold, {"d": [(0, 9, "DNA"), (0, 4, "protein")]})
    assert (ev.micro.tp, ev.micro.fp, ev.micro.fn) == (2, 0, 1)
    assert prf(ev.micro) == approx((1, 2 / 3, 4 / 5))
    assert prf(ev.per_type["protein"]) == approx((1, 1 / 2, 2 / 3))
    assert prf(ev.per_type["DNA"]) == (1, 1, 1)


def test_duplicates_count_once_on_either_side():
    gold = {"d": [(0, 3, "A"), (0, 3, "A"), Span(0, 3, "A"), (5, 7, "A")]}
    pred = {"d": [Span(0, 3, "A"), (0, 3, "A"), (0, 3, "A"), (8, 9, "A"), (8, 9, "A")]}
    ev = evaluate(gold, pred)
    assert (ev.micro.tp, ev.micro.fp, ev.micro.fn) == (1, 1, 1)
    assert prf(ev.micro) == approx((1 / 2, 1 / 2, 1 / 2))


def test_empty_gold_scores_zero_not_nan():
    ev = evaluate({"d": []}, {"d": [(0, 1, "A")]})
    assert (ev.micro.tp, ev.micro.fp, ev.micro.fn, ev.micro.support) == (0, 1, 0, 0)
    assert prf(ev.micro) == (0, 0, 0)  # recall is 0/0, defined as 0
    assert ev.false_positives.spurious == 1


def test_empty_pred_scores_zero_not_nan():
    ev = evaluate({"d": [(0, 1, "A"), (2, 3, "B")]}, {"d": []})
    assert (ev.micro.tp, ev.micro.fp, ev.micro.fn, ev.micro.support) == (0, 0, 2, 2)
    assert prf(ev.micro) == (0, 0, 0)  # precision is 0/0, defined as 0
    assert prf(ev.macro) == (0, 0, 0)


def test_nothing_at_all():
    ev = evaluate({}, {})
    assert ev.per_type == {}
    assert prf(ev.micro) == (0, 0, 0)
    assert ev.macro == Average(0.0, 0.0, 0.0, ())
    assert ev.relaxed.micro == Score(0, 0, 0)


def test_all_wrong_type():
    gold = {"d": [(0, 3, "A"), (4, 7, "B")]}
    pred = {"d": [(0, 3, "B"), (4, 7, "A")]}
    ev = evaluate(gold, pred)
    assert ev.per_type == {"A": Score(0, 1, 1), "B": Score(0, 1, 1)}
    assert prf(ev.micro) == (0, 0, 0)
    assert ev.false_positives == FalsePositives(wrong_type=2)
    # Relaxed matching still needs the label: no same-label overlap here.
    assert ev.relaxed.micro == Score(0, 2, 2)


def test_false_positive_breakdown_covers_every_class():
    gold = {"d": [(0, 5, "A"), (10, 15, "B"), (20, 25, "C")]}
    pred = {
        "d": [
            (0, 5, "A"),  # tp
            (20, 25, "A"),  # wrong type: same extent as the C span
            (2, 8, "A"),  # wrong boundary: overlaps (0, 5, A)
            (12, 18, "A"),  # wrong type and boundary: overlaps only (10, 15, B)
            (30, 31, "A"),  # spurious
        ]
    }
    ev = evaluate(gold, pred)
    assert ev.false_positives == FalsePositives(1, 1, 1, 1)
    assert ev.micro.fp == 4


def test_wrong_type_takes_precedence_over_wrong_boundary():
    # (0, 9, protein) has the extent of gold DNA and overlaps gold protein: counted once.
    ev = evaluate({"d": [(0, 4, "protein"), (0, 9, "DNA")]}, {"d": [(0, 9, "protein")]})
    assert ev.false_positives == FalsePositives(wrong_type=1)


# --- macro vs micro and the label list ------------------------------------------------------


def test_macro_differs_from_micro():
    gold = {"d": [(0, 1, "A")] + [(i, i + 1, "B") for i in range(10, 19)]}
    pred = {"d": [(0, 1, "A")]}
    ev = evaluate(gold, pred)
    assert prf(ev.micro) == approx((1, 1 / 10, 2 / 11))
    assert prf(ev.macro) == approx((1 / 2, 1 / 2, 1 / 2))


def test_type_only_predicted_counts_in_macro():
    ev = evaluate({"d": [(0, 1, "A")]}, {"d": [(0, 1, "A"), (2, 3, "Z")]})
    assert ev.macro.labels == ("A", "Z")
    assert prf(ev.micro) == approx((1 / 2, 1, 2 / 3))
    assert prf(ev.macro) == approx((1 / 2, 1 / 2, 1 / 2))


def test_given_labels_fix_macro_and_order():
    gold = {"d": [(0, 1, "A"), (2, 3, "B")]}
    pred = {"d": [(0, 1, "A")]}
    only_a = evaluate(gold, pred, labels=["A"])
    assert prf(only_a.macro) == (1, 1, 1)
    assert list(only_a.per_type) == ["A", "B"]  # other seen types still get rows
    assert prf(only_a.micro) == approx((1, 1 / 2, 2 / 3))  # and still count in micro
    with_unseen = evaluate(gold, pred, labels=["C", "A", "B"])
    assert list(with_unseen.per_type) == ["C", "A", "B"]
    assert with_unseen.per_type["C"] == Score(0, 0, 0)
    assert prf(with_unseen.macro) == approx((1 / 3, 1 / 3, 1 / 3))


# --- relaxed ---------------------------------------------------------------------------------


def test_relaxed_is_one_to_one():
    # Two predictions inside one gold span: only one may match it.
    ev = evaluate({"d": [(0, 10, "A")]}, {"d": [(0, 3, "A"), (5, 10, "A")]})
    assert ev.micro == Score(0, 2, 1)
    assert ev.relaxed.micro == Score(1, 1, 0)
    assert prf(ev.relaxed.micro) == approx((1 / 2, 1, 2 / 3))
    # One prediction over two gold spans: it matches one of them.
    ev = evaluate({"d": [(0, 3, "A"), (5, 10, "A")]}, {"d": [(0, 10, "A")]})
    assert ev.relaxed.micro == Score(1, 0, 1)


def test_relaxed_matching_is_maximum_not_greedy():
    # Greedy in span order would give (0, 8) the first gold (0, 5), leaving (2, 4) unmatched.
    gold = {"d": [(0, 5, "A"), (6, 10, "A")]}
    pred = {"d": [(0, 8, "A"), (2, 4, "A")]}
    assert evaluate(gold, pred).relaxed.micro == Score(2, 0, 0)


def test_relaxed_needs_a_shared_character():
    # End is exclusive: [0, 3) and [3, 6) are adjacent, not overlapping.
    ev = evaluate({"d": [(0, 3, "A")]}, {"d": [(3, 6, "A")]})
    assert ev.relaxed.micro == Score(0, 1, 1)


def test_relaxed_per_type_and_macro():
    gold = {"d": [(0, 4, "A"), (10, 14, "B")]}
    pred = {"d": [(0, 3, "A"), (10, 14, "B"), (20, 22, "B")]}
    ev = evaluate(gold, pred)
    assert ev.relaxed.per_type == {"A": Score(1, 0, 0), "B": Score(1, 1, 0)}
    assert prf(ev.relaxed.macro) == approx(((1 + 1 / 2) / 2, 1, (1 + 2 / 3) / 2))


# --- documents ------------------------------------------------------------------------------


def test_missing_and_extra_documents():
    gold = {"d1": [(0, 1, "A")], "d2": [(0, 1, "A")]}
    pred = {"d1": [(0, 1, "A")], "d3": [(0, 1, "A")]}
    ev = evaluate(gold, pred)
    # d2 predicted nothing (one fn), d3's span has no gold (one fp).
    assert ev.micro == Score(1, 1, 1)
    assert ev.missing_docs == ("d2",)
    assert ev.extra_docs == ("d3",)
    assert (ev.n_gold_docs, ev.n_pred_docs) == (2, 2)


def test_spans_in_different_documents_never_match():
    ev = evaluate({"d1": [(0, 1, "A")]}, {"d2": [(0, 1, "A")]})
    assert ev.micro == Score(0, 1, 1)
    assert ev.relaxed.micro == Score(0, 1, 1)


def _doc(doc_id: str, text: str, *spans: Span) -> AnnotatedDocument:
    return AnnotatedDocument(Document(doc_id, text), spans)


def test_evaluate_documents():
    gold = [_doc("a", "aspirin and fever", Span(0, 7, "Chemical"), Span(12, 17, "Disease"))]
    pred = [_doc("a", "aspirin and fever", Span(0, 7, "Chemical"))]
    ev = evaluate_documents(gold, pred)
    assert prf(ev.micro) == approx((1, 1 / 2, 2 / 3))


def test_evaluate_documents_rejects_different_texts_and_repeated_ids():
    with pytest.raises(ValueError, match="texts differ"):
        evaluate_documents([_doc("a", "abc")], [_doc("a", "abd")])
    with pytest.raises(ValueError, match="appears twice"):
        evaluate_documents([_doc("a", "x")], [_doc("a", "x"), _doc("a", "x")])


# --- output ---------------------------------------------------------------------------------


def test_to_dict_is_json_and_complete():
    ev = evaluate({"d1": [(0, 4, "A")], "d2": []}, {"d1": [(0, 4, "A"), (5, 6, "B")]})
    d = json.loads(json.dumps(ev.to_dict()))
    assert d["strict"]["per_type"]["A"] == {
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "support": 1,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }
    assert d["strict"]["micro"]["precision"] == 0.5
    assert d["strict"]["macro"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "labels": ["A", "B"],
    }
    assert d["relaxed"]["micro"]["tp"] == 1
    assert d["false_positives"]["spurious"] == 1
    assert d["documents"] == {"gold": 2, "pred": 1, "missing_in_pred": ["d2"], "extra_in_pred": []}


def test_render_table():
    gold = {"d": [(0, 4, "A"), (5, 9, "B"), (10, 14, "A")]}
    pred = {"d": [(0, 4, "A"), (5, 9, "A"), (10, 14, "A"), (20, 25, "B")]}
    lines = render_table(evaluate(gold, pred)).splitlines()
    assert lines[0].split() == ["label", "support", "TP", "FP", "FN", "P", "R", "F1"]
    assert lines[1].split() == ["A", "2", "2", "1", "0", "66.67", "100.00", "80.00"]
    assert lines[2].split() == ["B", "1", "0", "1", "1", "0.00", "0.00", "0.00"]
    assert lines[3].split() == ["micro", "3", "2", "2", "1", "50.00", "66.67", "57.14"]
    assert lines[4].split() == ["macro", "3", "33.33", "50.00", "40.00"]
    assert lines[5].split()[:2] == ["micro", "(relaxed)"]
    assert len({len(line) for line in lines[:4]}) == 1  # columns aligned


# --- properties -----------------------------------------------------------------------------

_spans = st.builds(
    lambda start, length, label: (start, start + length, label),
    st.integers(0, 20),
    st.integers(1, 6),
    st.sampled_from("ABC"),
)
_docs = st.dictionaries(st.sampled_from(["d1", "d2", "d3"]), st.lists(_spans, max_size=6))


def _all_scores(ev: object) -> list[Score]:
    return [
        s for scores in (ev.strict, ev.relaxed) for s in (*scores.per_type.values(), scores.micro)
    ]


@settings(max_examples=300, deadline=None)
@given(_docs)
def test_gold_against_itself_is_perfect(gold):
    ev = evaluate(gold, gold)
    assert ev.micro.fp == ev.micro.fn == 0
    assert ev.relaxed.micro == ev.micro
    if any(gold.values()):
        assert prf(ev.micro) == (1, 1, 1)
        assert prf(ev.macro) == (1, 1, 1)
        assert prf(ev.relaxed.macro) == (1, 1, 1)


@settings(max_examples=300, deadline=None)
@given(_docs, _docs)
def test_swapping_gold_and_pred_swaps_precision_and_recall(gold, pred):
    ev, swapped = evaluate(gold, pred), evaluate(pred, gold)
    for a, b in ((ev.strict, swapped.strict), (ev.relaxed, swapped.relaxed)):
        assert a.per_type.keys() == b.per_type.keys()
        for label in a.per_type:
            x, y = a.per_type[label], b.per_type[label]
            assert (x.precision, x.recall, x.f1) == (y.recall, y.precision, y.f1)
        assert (a.micro.precision, a.micro.f1) == (b.micro.recall, b.micro.f1)
        assert a.macro.precision == approx(b.macro.recall)


@settings(max_examples=300, deadline=None)
@given(_docs, _docs)
def test_invariants(gold, pred):
    ev = evaluate(gold, pred)
    for s in _all_scores(ev):
        assert all(0 <= v <= 1 for v in prf(s))
        assert min(s.precision, s.recall) <= s.f1 + 1e-12
        assert s.f1 <= max(s.precision, s.recall) + 1e-12
    for scores in (ev.strict, ev.relaxed):
        assert all(0 <= v <= 1 for v in prf(scores.macro))
        assert sum(scores.per_type.values(), Score(0, 0, 0)) == scores.micro
        n_gold = sum(len(set(v)) for v in gold.values())
        n_pred = sum(len(set(v)) for v in pred.values())
        assert (scores.micro.support, scores.micro.predicted) == (n_gold, n_pred)
    assert ev.relaxed.micro.tp >= ev.micro.tp
    fp = ev.false_positives
    assert fp.wrong_type + fp.wrong_boundary + fp.wrong_both + fp.spurious == ev.micro.fp


def _brute_force_matching(gold: list, pred: list) -> int:
    """Largest one-to-one overlap matching by trying every assignment (tiny inputs only)."""
    best = 0
    small, large = sorted((gold, pred), key=len)
    for chosen in permutations(large, len(small)):
        best = max(
            best, sum(a[0] < b[1] and b[0] < a[1] for a, b in zip(small, chosen, strict=True))
        )
    return best


_a_spans = st.lists(
    st.builds(lambda s, n: (s, s + n, "A"), st.integers(0, 12), st.integers(1, 5)),
    max_size=5,
    unique=True,
)


@settings(max_examples=300, deadline=None)
@given(_a_spans, _a_spans)
def test_relaxed_matching_is_maximum(gold, pred):
    ev = evaluate({"d": gold}, {"d": pred})
    assert ev.relaxed.micro.tp == _brute_force_matching(gold, pred)
