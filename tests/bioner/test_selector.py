"""The selector's pure parts: samples and their twins, encoder inputs, kNN scores, thresholds."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bioner.records import Span
from bioner.selector import (
    Candidate,
    Kind,
    NoiseRates,
    Reason,
    best_threshold,
    boundary_shifts,
    candidate_in_passage,
    knn_scores,
    marked_input,
    noisy_predictions,
    samples_of_document,
    subsample,
    tokens_of,
    training_samples,
)

TEXT = "The patient had breast cancer today."
#       0123456789012345678901234567890123456
GOLD = Span(16, 29, "Disease")  # "breast cancer"


def test_tokens_are_words_symbols_and_single_cjk_characters():
    assert [TEXT[a:b] for a, b in tokens_of(TEXT)] == [
        "The", "patient", "had", "breast", "cancer", "today", ".",
    ]  # fmt: skip
    text = "患者有IL-2高血压。"
    assert [text[a:b] for a, b in tokens_of(text)] == [
        "患", "者", "有", "IL", "-", "2", "高", "血", "压", "。",
    ]  # fmt: skip


def test_boundary_shifts_move_one_boundary_by_one_to_k_tokens():
    shifts = {TEXT[a:b] for a, b in boundary_shifts(tokens_of(TEXT), 16, 29, 2)}
    assert shifts == {
        "had breast cancer",  # start - 1
        "patient had breast cancer",  # start - 2
        "cancer",  # start + 1 (the only shrink that leaves a token)
        "breast",  # end - 1
        "breast cancer today",  # end + 1
        "breast cancer today.",  # end + 2
    }
    assert len(boundary_shifts(tokens_of(TEXT), 16, 29, 1)) == 4
    # a single-token span cannot shrink; the first token cannot extend left
    assert {TEXT[a:b] for a, b in boundary_shifts(tokens_of(TEXT), 0, 3, 1)} == {"The patient"}


def test_boundary_shifts_of_a_span_inside_a_word():
    text = "anti-TNFalpha therapy"
    tokens = tokens_of(text)  # anti - TNFalpha therapy
    got = {text[a:b] for a, b in boundary_shifts(tokens, 5, 8, 1)}  # "TNF"
    assert got == {"-TNF", "TNFalpha"}


def test_samples_are_gold_positives_and_twin_negatives():
    samples = samples_of_document(TEXT, [GOLD], ["Disease", "Chemical"], max_shift=1)
    by_kind = {}
    for s in samples:
        by_kind.setdefault(s.kind, []).append((s.candidate.mention, s.candidate.label))
    assert by_kind[Kind.GOLD] == [("breast cancer", "Disease")]
    assert sorted(by_kind[Kind.BOUNDARY]) == sorted(
        [("had breast cancer", "Disease"), ("cancer", "Disease"), ("breast", "Disease"),
         ("breast cancer today", "Disease")]
    )  # fmt: skip
    assert by_kind[Kind.TYPE] == [("breast cancer", "Chemical")]
    assert all(s.group == 0 for s in samples)
    assert [s.positive for s in samples].count(True) == 1
    assert {s.contrastive_class for s in samples} == {"Disease", "not:Disease", "not:Chemical"}


def test_a_twin_that_is_gold_is_not_a_negative_and_tagger_errors_are():
    nested = [GOLD, Span(16, 22, "Disease")]  # "breast" is gold too
    preds = [Span(0, 3, "Disease"), GOLD, Span(23, 35, "Disease")]
    samples = samples_of_document(
        TEXT, nested, ["Disease"], max_shift=1, predictions=preds, first_group=7
    )
    negatives = {(s.candidate.start, s.candidate.end) for s in samples if not s.positive}
    assert (16, 22) not in negatives
    assert sum(s.positive for s in samples) == 2
    tagger = {(s.candidate.mention, s.group) for s in samples if s.kind is Kind.TAGGER}
    # a spurious span has no group; one overlapping a gold span joins that span's group
    # (groups follow sorted gold: 7 is "breast", 8 "breast cancer")
    assert tagger == {("The", -1), ("cancer today", 8)}


def test_training_samples_number_groups_across_documents():
    docs = [(TEXT, [GOLD]), ("Asthma and gout.", [Span(0, 6, "Disease"), Span(11, 15, "Disease")])]
    samples = training_samples(docs, ["Disease"], max_shift=1)
    assert sorted({s.group for s in samples}) == [0, 1, 2]
    groups = {s.candidate.mention: s.group for s in samples if s.positive}
    assert groups == {"breast cancer": 0, "Asthma": 1, "gout": 2}


def test_subsample_caps_negatives_per_gold_span():
    samples = samples_of_document(TEXT, [GOLD], ["Disease", "Chemical"], max_shift=2)
    kept = subsample(samples, 2, seed=0)
    assert sum(s.positive for s in kept) == 1 and len(kept) == 3
    assert subsample(samples, 2, seed=0) == kept  # seeded


def test_marked_input_marks_the_span_and_names_the_type():
    m = marked_input(Candidate(TEXT, 16, 29, "Disease"))
    assert m.text == "Disease | The patient had << breast cancer >> today."
    assert m.text[m.open[0] : m.open[1]] == "<<" and m.text[m.close[0] : m.close[1]] == ">>"
    assert m.text[m.region[0] : m.region[1]] == "<< breast cancer >>"


def test_marked_input_window_does_not_cut_words():
    text = "x" * 30 + " alpha beta gamma delta " + "y" * 30
    start = text.index("gamma")
    m = marked_input(Candidate(text, start, start + 5, "T"), window=9)
    # 9 characters to the left land inside "alpha": the window starts at the next word
    assert m.text == "T | beta << gamma >> delta"


def test_candidate_in_passage_reports_what_is_wrong():
    passage = "Famotidine-associated delirium."
    ok = candidate_in_passage(passage, 100, 122, 130, "delirium", "Disease")
    assert isinstance(ok, Candidate) and ok.mention == "delirium" and ok.start == 22
    assert candidate_in_passage(None, 0, 1, 2, "x", "D") == "no_passage"
    assert candidate_in_passage(passage, 100, 122, 140, "x", "D") == Reason.OUTSIDE_PASSAGE
    assert candidate_in_passage(passage, 100, 90, 95, "x", "D") == Reason.OUTSIDE_PASSAGE
    assert candidate_in_passage(passage, 100, 122, 130, "delirium!", "D") == Reason.TEXT_MISMATCH
    with pytest.raises(ValueError, match="outside its text"):
        Candidate("abc", 2, 5, "D")


# --------------------------------------------------------------------------- scores

BANK_LABELS = np.array(["Disease", "Disease", "Disease", "Chemical"], dtype=object)
BANK_POSITIVE = np.array([True, False, True, True])


def test_vote_is_the_softmax_weight_of_supporting_neighbours():
    ids = np.array([[0, 1, 3], [1, 3, -1]])
    sims = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, -1.0]])
    got = knn_scores(["Disease", "Disease"], ids, sims, BANK_LABELS, BANK_POSITIVE, temperature=1)
    e = np.exp
    # row 0: only neighbour 0 supports (1 is a negative, 3 is another type)
    assert got[0] == pytest.approx(e(0.9) / (e(0.9) + e(0.8) + e(0.1)), rel=1e-6)
    # row 1: no supporting neighbour; the -1 id is ignored
    assert got[1] == 0.0
    chem = knn_scores(["Chemical"], ids[:1], sims[:1], BANK_LABELS, BANK_POSITIVE, temperature=1)
    assert chem[0] == pytest.approx(e(0.1) / (e(0.9) + e(0.8) + e(0.1)), rel=1e-6)


def test_vote_with_a_low_temperature_is_the_nearest_neighbour():
    ids, sims = np.array([[0, 1, 2]]), np.array([[0.5, 0.49, 0.48]])
    hot = knn_scores(["Disease"], ids, sims, BANK_LABELS, BANK_POSITIVE, temperature=100)
    cold = knn_scores(["Disease"], ids, sims, BANK_LABELS, BANK_POSITIVE, temperature=1e-4)
    assert hot[0] == pytest.approx(2 / 3, abs=1e-3) and cold[0] == pytest.approx(1.0, abs=1e-6)


def test_margin_is_best_support_minus_best_opposition():
    ids = np.array([[1, 0, 3], [0, 2, -1], [3, -1, -1]])
    sims = np.array([[0.9, 0.6, 0.2], [0.8, 0.5, 0.0], [0.4, 0.0, 0.0]])
    got = knn_scores(["Disease"] * 3, ids, sims, BANK_LABELS, BANK_POSITIVE, method="margin")
    assert got.tolist() == pytest.approx([0.6 - 0.9, 0.8 - (-1.0), -1.0 - 0.4])


def test_knn_scores_refuse_bad_arguments():
    ids, sims = np.array([[0]]), np.array([[1.0]])
    with pytest.raises(ValueError, match="unknown scoring method"):
        knn_scores(["Disease"], ids, sims, BANK_LABELS, BANK_POSITIVE, method="mean")
    with pytest.raises(ValueError, match="do not match"):
        knn_scores(["Disease", "Disease"], ids, sims, BANK_LABELS, BANK_POSITIVE)


def test_best_threshold_on_hand_computed_values():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [True, True, False, True, False, False]
    # 5 gold spans (one never proposed). Accepting the top n gives F1 = 2tp / (n + 5):
    # n=1: 2/6=.333  n=2: 4/7=.571  n=3: 4/8=.5  n=4: 6/9=.667  n=5: 6/10  n=6: 6/11
    t = best_threshold(scores, correct, 5)
    assert t.accepted == 4 and t.true_positives == 3
    assert t.f1 == pytest.approx(6 / 9)
    assert t.precision == pytest.approx(3 / 4) and t.recall == pytest.approx(3 / 5)
    assert t.value == pytest.approx(0.55)  # between the last accepted (0.6) and the next (0.5)


def test_best_threshold_cuts_only_between_distinct_scores():
    # The tie at 0.5 is accepted or rejected as a whole: accepting it adds 1 tp and 1 fp.
    # top 1: 2/(1+2)=.667; with the tie: 4/(3+2)=.8; all four: 4/(4+2)=.667
    t = best_threshold([0.9, 0.5, 0.5, 0.1], [True, True, False, False], 2)
    assert (t.accepted, t.value) == (3, pytest.approx(0.3))
    # the lowest score accepted: the threshold is that score
    t = best_threshold([0.9, 0.5], [True, True], 2)
    assert (t.accepted, t.value, t.f1) == (2, 0.5, 1.0)


def test_best_threshold_accepts_nothing_when_nothing_is_right():
    t = best_threshold([0.3, 0.2], [False, False], 4)
    assert t.accepted == 0 and t.f1 == 0.0 and t.value > 0.3
    with pytest.raises(ValueError, match="below the 2 correct"):
        best_threshold([0.3, 0.2], [True, True], 1)


# --------------------------------------------------------------------------- the noisy tagger


def test_noisy_tagger_errors_follow_their_rates():
    words = [f"w{i}" for i in range(4000)]
    text = " ".join(words)
    gold, pos = [], 0
    for i, w in enumerate(words):
        if i % 4 == 0:
            gold.append(Span(pos, pos + len(w), "Disease"))
        pos += len(w) + 1
    rates = NoiseRates(miss=0.1, shift=0.2, retype=0.1, spurious=0.3)
    preds = noisy_predictions(text, gold, ["Disease", "Chemical"], rates, random.Random(0))
    truth = {(s.start, s.end) for s in gold}
    kept = sum(p in set(gold) for p in preds)
    retyped = sum((p.start, p.end) in truth and p.label == "Chemical" for p in preds)
    overlapping = [p for p in preds if (p.start, p.end) not in truth]
    n = len(gold)
    assert kept / n == pytest.approx(0.6, abs=0.04)
    assert retyped / n == pytest.approx(0.1, abs=0.03)
    spurious = [
        p for p in overlapping if not any(g.start < p.end and p.start < g.end for g in gold)
    ]
    assert len(spurious) / n == pytest.approx(0.3, abs=0.05)
    assert (len(overlapping) - len(spurious)) / n == pytest.approx(0.2, abs=0.04)
    again = noisy_predictions(text, gold, ["Disease", "Chemical"], rates, random.Random(0))
    assert again == preds


def test_noise_rates_are_checked():
    with pytest.raises(ValueError, match="must not exceed 1"):
        NoiseRates(miss=0.5, shift=0.5, retype=0.1)
    with pytest.raises(ValueError, match="spurious"):
        NoiseRates(spurious=1.5)
