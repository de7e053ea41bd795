"""The decode rules stage: named rules, switches, and the spans it keeps, gives and drops."""

from __future__ import annotations

import pytest

from bioner.labels import get_schema
from bioner.lexicon import Annotated, Entry, Lexicon, build_lexicons
from bioner.records import Span
from bioner.rules import (
    ABBREVIATION,
    ABBREVIATION_RULES,
    LEXICON_RULES,
    RULES_VERSION,
    TAGGER,
    DecodeRules,
    Sourced,
    apply_to_document,
    apply_to_passage,
)

GENERAL = get_schema("general")


def test_rules_parse_switches_over_the_schemas_defaults():
    assert DecodeRules.parse("").off == frozenset()
    assert DecodeRules.parse("-lexicon").off == frozenset(LEXICON_RULES)
    rules = DecodeRules.parse("-abbreviations,+abbreviation-uses,-veto")
    assert rules.off == {"abbreviation-redefined", "abbreviation-labels", "veto"}
    assert rules.lexicon and rules.abbreviations
    assert not DecodeRules.parse("-abbreviations").abbreviations
    assert DecodeRules.parse("-veto").setting() == f"{RULES_VERSION} off=veto"


def test_the_unified_schemas_leave_off_the_rules_measured_to_gain_nothing():
    assert DecodeRules.parse("", "general").off == {"foreign", "shape-code"}
    assert DecodeRules.parse("", "general[Gene]").off == {"foreign", "shape-code"}
    assert DecodeRules.parse("+foreign", "general").off == {"shape-code"}
    zh = DecodeRules.parse("", "general-zh")
    assert not zh.abbreviations and "suffix" in zh.off and "veto" not in zh.off
    assert DecodeRules.parse("", "ncbi").off == frozenset()


@pytest.mark.parametrize(
    ("spec", "message"),
    [("-nosuch", "unknown decode rule 'nosuch'"), ("veto", "write -NAME or \\+NAME")],
)
def test_a_bad_rule_spec_names_the_known_rules(spec, message):
    with pytest.raises(ValueError, match=message):
        DecodeRules.parse(spec)


def test_spans_that_are_not_entity_shaped_are_dropped_unless_switched_off():
    text = "Aspirin (5 mg) and K."
    spans = [Span(0, 7, "Chemical"), Span(9, 10, "Chemical"), Span(19, 20, "Chemical")]
    result = apply_to_passage(text, spans, GENERAL, {}, DecodeRules())
    assert result.kept == [Span(0, 7, "Chemical")]
    assert result.dropped == spans[1:]
    kept = apply_to_passage(text, spans, GENERAL, {}, DecodeRules.parse("-shape")).kept
    assert kept == spans


def _lexicon() -> Lexicon:
    entries = {
        "cisplatin": Entry("cisplatin", "Chemical", 5, 5),
        "BRCA1": Entry("BRCA1", "Gene", 4, 4),
    }
    return Lexicon("general", entries, unseen={"patients": 9})


def test_the_lexicon_gives_only_the_labels_asked():
    text = "BRCA1 and cisplatin in patients"
    lexicons = {"general": _lexicon()}
    every = apply_to_passage(text, [], GENERAL, lexicons, DecodeRules())
    assert {text[s.start : s.end] for s in every.added} == {"BRCA1", "cisplatin"}
    chemicals = apply_to_passage(text, [], get_schema("general[Chemical]"), lexicons, DecodeRules())
    assert [text[s.start : s.end] for s in chemicals.added] == ["cisplatin"]
    none = apply_to_passage(text, [], GENERAL, lexicons, DecodeRules.parse("-fill"))
    assert none.added == []
    vetoed = apply_to_passage(text, [Span(23, 31, "Species")], GENERAL, lexicons, DecodeRules())
    assert vetoed.dropped == [Span(23, 31, "Species")]
    kept = apply_to_passage(
        text, [Span(23, 31, "Species")], GENERAL, lexicons, DecodeRules.parse("-veto,-unit-veto")
    ).kept
    assert kept == [Span(23, 31, "Species")]


def test_partial_annotation_vetoes_only_where_the_label_was_asked():
    """A gene name in passages never asked for genes is no evidence against a Gene span."""
    passages = [
        Annotated("general", "ACE inhibitors lower blood pressure.", (), ("Disease",)),
        Annotated("general", "ACE inhibitors and ACE levels.", (), ("Disease",)),
        Annotated("general", "The study of aspirin.", ((13, 20, "Chemical"),), ("Chemical",)),
        Annotated("general", "The study of heparin.", ((13, 20, "Chemical"),), ("Chemical",)),
    ]
    lexicon = build_lexicons(passages)["general"]
    assert lexicon.vetoes("ACE", "Disease") and not lexicon.vetoes("ACE", "Gene")
    assert lexicon.vetoes("study", "Chemical") and not lexicon.vetoes("study", "Species")
    # Entry occurrences count only passages that asked the entry's label.
    assert lexicon.entries["aspirin"] == Entry("aspirin", "Chemical", 1, 1)


def test_the_document_rules_label_spread_and_drop_abbreviations():
    text = "adenomatous polyposis coli (APC) is mutated; APC loss. Hormone therapy (HT) and HT."
    found = [
        Sourced(Span(0, 26, "Disease"), TAGGER),
        Sourced(Span(45, 48, "Gene"), TAGGER),  # a use tagged with another label
        Sourced(Span(80, 82, "Disease"), TAGGER),  # "HT", defined on no mention
    ]
    result = apply_to_document(text, found, DecodeRules())
    assert result.redefined == 1
    spans = sorted((f.span.start, f.span.end, f.span.label, f.source) for f in result.spans)
    assert spans == [
        (0, 26, "Disease", TAGGER),
        (28, 31, "Disease", ABBREVIATION),  # the short form itself, a use no span covered
        (45, 48, "Disease", ABBREVIATION),  # tagged a Gene: relabelled by the definition
    ]  # and "HT", defined on no mention, lost its span
    off = apply_to_document(text, found, DecodeRules.parse("-abbreviations"))
    assert off.spans == found and off.redefined == 0
    assert set(ABBREVIATION_RULES) <= DecodeRules.parse("-abbreviations").off


def test_a_span_of_words_training_holds_often_outside_mentions_goes():
    """unit-veto: every unit common in training and (almost) never inside a mention."""
    lexicon = Lexicon(
        "general",
        {"cisplatin": Entry("cisplatin", "Chemical", 5, 5)},
        unseen={"time": 40, "series": 12, "Time": 6},
        inside={"cells": (50, 60), "time": (0, 40)},
    )
    assert lexicon.common_words("Time series")
    assert not lexicon.common_words("T cells")  # "cells" is inside mentions, "T" unknown
    assert not lexicon.common_words("OXCT1")  # never seen: a new name stands
    text = "Time series of OXCT1."
    result = apply_to_passage(
        text, [Span(0, 11, "Gene"), Span(15, 20, "Gene")], GENERAL, {"general": lexicon},
        DecodeRules(),
    )  # fmt: skip
    assert result.dropped == [Span(0, 11, "Gene")] and result.kept == [Span(15, 20, "Gene")]
    off = DecodeRules.parse("-unit-veto")
    assert apply_to_passage(text, [Span(0, 11, "Gene")], GENERAL, {"general": lexicon}, off).kept
