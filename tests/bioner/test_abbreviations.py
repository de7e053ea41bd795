"""Abbreviations defined on a found mention label their later uses."""

from __future__ import annotations

import pytest

from bioner.abbreviations import (
    abbreviates,
    definitions,
    long_form,
    propagate,
    redefined,
    relabelled,
)
from bioner.records import Span


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("APC", "adenomatous polyposis coli"),
        ("G6PD", "glucose-6-phosphate dehydrogenase"),
        ("VHL", "von Hippel-Lindau"),
        ("TfR", "transferrin receptor"),  # a letter inside a word
        ("5-FU", "5-fluorouracil"),
        ("A-T", "ataxia-telangiectasia"),
    ],
)
def test_schwartz_hearst_accepts_true_definitions(short, long):
    assert abbreviates(short, long)


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("XYZ", "adenomatous polyposis coli"),  # letters not in the long form
        ("PCA", "adenomatous polyposis coli"),  # not in order
        ("OLI", "polyposis coli"),  # first letter starts no word
        ("n", "nephropathy"),  # too short
        ("12", "twelve patients"),  # no letter
        ("-AB", "a b"),  # does not start with a letter or digit
        ("breast cancer", "cancer"),  # longer than the long form
        ("enalapril", "the enalapril group"),  # a word of the long form
        ("HIV", "HIV infection"),
        ("胃角", "取胃角活检"),  # Chinese: a parenthesis glosses
    ],
)
def test_schwartz_hearst_refuses_the_others(short, long):
    assert not abbreviates(short, long)


TEXT = (
    "Mutations of adenomatous polyposis coli (APC) cause tumours. "
    "APC carriers, unlike APCs or pAPC cells, develop APC early."
)


def test_later_uses_of_a_defined_short_form_take_the_long_forms_label():
    long = Span(13, 39, "Disease")
    added = propagate(TEXT, [long])
    # The definition's own "(APC)" and both later whole-word uses; not "APCs" or "pAPC".
    assert [(TEXT[s.start : s.end], s.label) for s in added] == [("APC", "Disease")] * 3
    assert [s.start for s in added] == [41, 61, 110]


def test_uses_a_span_already_covers_are_left_alone():
    long, tagged = Span(13, 39, "Disease"), Span(61, 73, "Disease")  # "APC carriers"
    assert [s.start for s in propagate(TEXT, [long, tagged])] == [41, 110]


def test_no_definition_no_spans_and_conflicting_labels_define_nothing():
    assert propagate(TEXT, []) == []
    assert propagate(TEXT, [Span(0, 9, "Disease")]) == []  # "Mutations" is followed by "of"
    text = "breast cancer (BC) and bladder carcinoma (BC)"
    both = [Span(0, 13, "Disease"), Span(23, 40, "Chemical")]
    assert definitions(text, both) == {}
    assert definitions(text, both[:1]) == {"BC": "Disease"}


def test_the_long_form_may_begin_before_the_mention_that_ends_it():
    text = (
        "Cases of contrast media-induced nephropathy (CIN) rose. CIN was rare. "
        "It was drug-induced. Later, nephropathy (CN) and renal failure (XQ) were seen."
    )
    mention = Span(32, 43, "Disease")  # "nephropathy": the gold mention, "CIN" its short form
    assert long_form(text, mention.start, mention.end, "CIN") == (
        9,
        43,
    )  # "contrast media-induced nephropathy"
    assert [(text[s.start : s.end], s.start) for s in propagate(text, [mention])] == [
        ("CIN", 45),
        ("CIN", 56),
    ]
    # The long form never reaches back over a sentence's end ("drug-induced. Later,
    # nephropathy" would give "CN") nor past Schwartz and Hearst's window of words.
    later = Span(text.index("nephropathy (CN)"), text.index(" (CN)"), "Disease")
    assert long_form(text, later.start, later.end, "CN") is None
    renal = Span(text.index("renal failure"), text.index(" (XQ)"), "Disease")
    assert long_form(text, renal.start, renal.end, "XQ") is None
    assert long_form("a b c d e f cin", 12, 15, "AC") is None
    assert long_form("a b cin", 4, 7, "AC") == (0, 7)


def test_a_short_form_defined_on_no_mention_is_redefined_in_that_document():
    text = "Hormone therapy (HT) and breast cancer (BC) in women(XY); HT again (no) (sic)."
    cancer = Span(text.index("breast"), text.index(" (BC)"), "Disease")
    # "BC" is defined on a mention; "XY" and "no" abbreviate nothing before them; "sic"
    # follows another parenthesis.
    assert redefined(text, [cancer]) == {"HT"}
    assert redefined(text, []) == {"HT", "BC"}
    # A definition inside a mention is part of it and redefines nothing.
    text = "The von Hippel-Lindau (VHL) disease gene. VHL mutations."
    assert redefined(text, []) == {"VHL"}
    assert redefined(text, [Span(4, text.index(" gene"), "Disease")]) == set()


def test_the_parenthesis_of_a_definition_may_go_on_after_the_short_form():
    text = "Rats got phenobarbital (PB: 15 mg per rat) or diethylnitrosamine (DEN, 200 mg/kg)."
    spans = [
        Span(text.index("phenobarbital"), text.index(" (PB"), "Chemical"),
        Span(text.index("diethylnitrosamine"), text.index(" (DEN"), "Chemical"),
    ]
    assert definitions(text, spans) == {"PB": "Chemical", "DEN": "Chemical"}
    # A word, not a token of its own, after the short form: no definition.
    assert definitions("phenobarbital (PB was given)", [Span(0, 13, "Chemical")]) == {}
    assert definitions("phenobarbital (PB)", [Span(0, 13, "Chemical")]) == {"PB": "Chemical"}


def test_a_span_on_a_defined_short_form_takes_the_label_of_its_definition():
    text = "overactive bladder (OAB) responds; OAB and OAB symptoms, not OABs."
    long = Span(0, 18, "Disease")
    first = Span(text.index("OAB", 30), text.index("OAB", 30) + 3, "Chemical")
    second = Span(text.index("OAB and") + 8, text.index("OAB and") + 11, "Disease")
    # The tagger called the first use a Chemical: the definition makes it a Disease; the
    # second already is one; "OAB symptoms" is another string.
    phrase = Span(second.start, second.end + 9, "Chemical")
    assert relabelled(text, [long, first, second]) == {first: "Disease"}
    assert relabelled(text, [long, phrase]) == {}
    # No definition (the long form is no span), or two that disagree: nothing changes.
    assert relabelled(text, [first]) == {}
    both = "breast cancer (BC) and bladder carcinoma (BC); BC"
    spans = [Span(0, 13, "Disease"), Span(23, 40, "Chemical"), Span(47, 49, "Chemical")]
    assert relabelled(both, spans) == {}
