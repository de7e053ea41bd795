"""The training lexicon: counts, the rule, unit-bounded matching, how matches become spans."""

from __future__ import annotations

import pytest

from bioner.lexicon import (
    Annotated,
    Entry,
    Lexicon,
    build_lexicons,
    code_shape,
    lexicon_digest,
    units,
)
from bioner.records import Span


def at(text: str, mention: str, label: str, nth: int = 0) -> tuple[int, int, str]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return (start, start + len(mention), label)


def strings(text: str, spans: list[Span]) -> list[tuple[str, str]]:
    return [(s.text(text), s.label) for s in spans]


def test_units_are_words_cjk_characters_and_single_symbols():
    text = "HIV-1 infection, 患者CT检查"
    assert [text[a:b] for a, b in units(text)] == [
        "HIV", "-", "1", "infection", ",", "患", "者", "CT", "检", "查",
    ]  # fmt: skip


T1 = "Cisplatin caused nephrotoxicity in patients."
T2 = "Patients given cisplatin and cisplatin-free controls."
T3 = "The patients were fine."
PASSAGES = [
    Annotated("bc5cdr", T1, (at(T1, "Cisplatin", "Chemical"), at(T1, "nephrotoxicity", "Disease"))),
    Annotated("bc5cdr", T2, (at(T2, "cisplatin", "Chemical"), at(T2, "Patients", "Disease"))),
    Annotated("bc5cdr", T3, ()),
]


def test_entries_count_annotations_and_unit_bounded_occurrences():
    lexicon = build_lexicons(PASSAGES)["bc5cdr"]
    assert set(lexicon.entries) == {"Cisplatin", "nephrotoxicity", "cisplatin", "Patients"}
    # "cisplatin" occurs twice in T2 (once before "-free": a unit bound), annotated once.
    assert lexicon.entries["cisplatin"] == Entry("cisplatin", "Chemical", 1, 2)
    assert lexicon.entries["cisplatin"].ratio == 0.5
    assert lexicon.entries["nephrotoxicity"] == Entry("nephrotoxicity", "Disease", 1, 1)
    # Matching is case-sensitive: "patients" in T1 and T3 is another string.
    assert lexicon.entries["Patients"] == Entry("Patients", "Disease", 1, 1)


def test_the_rule_keeps_strings_annotated_in_enough_of_their_occurrences():
    lexicon = build_lexicons(PASSAGES)["bc5cdr"]
    assert lexicon.active == 4  # all ratios >= 0.5
    assert lexicon.with_rule(0.6, 1).active == 3  # "cisplatin" (1 of 2) drops
    assert lexicon.with_rule(0.5, 2).active == 0  # none annotated twice
    with pytest.raises(ValueError, match="min_ratio"):
        lexicon.with_rule(0.0, 1)
    with pytest.raises(ValueError, match="min_count"):
        lexicon.with_rule(0.5, 0)


def test_a_repeated_passage_is_counted_once():
    once = build_lexicons(PASSAGES)["bc5cdr"]
    twice = build_lexicons(PASSAGES + PASSAGES[:2])["bc5cdr"]
    assert once.entries == twice.entries


def test_the_majority_label_wins_ties_go_to_the_first_label_by_name():
    a = "Dopamine here."
    b = "Dopamine there."
    c = "Dopamine everywhere."
    lexicon = build_lexicons(
        [
            Annotated("s", a, (at(a, "Dopamine", "Gene"),)),
            Annotated("s", b, (at(b, "Dopamine", "Chemical"),)),
            Annotated("s", c, (at(c, "Dopamine", "Gene"),)),
        ]
    )["s"]
    assert lexicon.entries["Dopamine"] == Entry("Dopamine", "Gene", 2, 3)
    tie = build_lexicons(
        [Annotated("s", a, (at(a, "Dopamine", "Gene"),)), Annotated("s", b, (at(b, "Dopamine", "Chemical"),))]
    )["s"]  # fmt: skip
    assert tie.entries["Dopamine"].label == "Chemical"


def test_spans_inside_a_word_cannot_be_found_again_and_are_left_out():
    text = "Antiinflammatory drugs."
    lexicons = build_lexicons([Annotated("s", text, ((4, 16, "Chemical"),))])
    assert lexicons == {}  # "inflammatory" inside "Antiinflammatory": not an entry


def test_schemas_get_their_own_lexicons():
    zh = "患者出现发热。"
    lexicons = build_lexicons([*PASSAGES, Annotated("cmeee", zh, (at(zh, "发热", "sym"),))])
    assert sorted(lexicons) == ["bc5cdr", "cmeee"]
    assert lexicons["cmeee"].entries["发热"] == Entry("发热", "sym", 1, 1)


def test_find_takes_the_longest_match_then_the_leftmost_and_never_inside_a_word():
    entries = {
        "lung": Entry("lung", "Body", 5, 5),
        "lung cancer": Entry("lung cancer", "Disease", 5, 5),
        "cancer": Entry("cancer", "Disease", 5, 5),
        "cancer cell": Entry("cancer cell", "Cell", 5, 5),
        "rare": Entry("rare", "Disease", 1, 100),  # ratio 0.01: never a span
    }
    lexicon = Lexicon("s", entries)
    text = "rare lung cancer cell; lungs; cancer."
    assert strings(text, lexicon.find(text)) == [
        ("lung cancer", "Disease"),  # as long as "cancer cell": the leftmost wins
        ("cancer", "Disease"),  # "lungs" is one unit: no "lung" inside it
    ]


def test_a_capital_first_letter_training_never_writes_still_matches():
    entries = {
        "mannitol": Entry("mannitol", "Chemical", 4, 4),
        "lithium": Entry("lithium", "Chemical", 6, 6),
        "Lithium": Entry("Lithium", "Chemical", 1, 9),  # written so, and seldom a mention
        "Aids": Entry("Aids", "Disease", 2, 2),
        "aids": Entry("aids", "Chemical", 1, 2),  # its own capital entry wins
        "study": Entry("study", "Chemical", 1, 1),
    }
    lexicon = Lexicon("s", entries, unseen={"Study": 7})
    text = "Mannitol and Lithium; Aids. Study of MANNITOL."
    # Not "Lithium" (an entry the rule refuses), not "Study" (training writes it, never a
    # mention), not "MANNITOL" (only the first letter is folded).
    assert strings(text, lexicon.find(text)) == [("Mannitol", "Chemical"), ("Aids", "Disease")]
    assert lexicon.accepted("Mannitol") == entries["mannitol"]
    assert lexicon.accepted("mannitol") == entries["mannitol"]
    assert lexicon.accepted("Study") is None


def test_chinese_matches_character_by_character():
    lexicon = Lexicon(
        "cmeee", {"发热": Entry("发热", "sym", 3, 3), "头痛": Entry("头痛", "sym", 2, 2)}
    )
    text = "患者发热伴头痛，无发热。"
    assert [(s.start, s.end) for s in lexicon.find(text)] == [(2, 4), (5, 7), (9, 11)]


RENAL = {
    "cisplatin": Entry("cisplatin", "Chemical", 9, 10),
    "renal failure": Entry("renal failure", "Disease", 4, 4),
}


def test_apply_fills_gaps_and_leaves_the_taggers_spans_standing():
    # "acute" lies inside a mention in 6 of its 10 training occurrences: more than the trim
    # ratio, so "acute renal failure" (wider than the entry) stands.
    lexicon = Lexicon("s", RENAL, inside={"acute": (6, 10)})
    text = "cisplatin and acute renal failure after cisplatin"
    tagger = [
        Span(14, 33, "Disease"),
        Span(40, 49, "Chemical"),
    ]  # "acute renal failure", 2nd cisplatin
    kept, added, _ = lexicon.apply(text, tagger)
    assert kept == tagger
    assert added == [Span(0, 9, "Chemical")]


def test_apply_trims_a_span_to_the_mention_it_knows_when_the_rest_stays_outside_mentions():
    text = "Acute renal failure, and the renal failure score rose."
    tagger = [Span(0, 19, "Chemical"), Span(29, 48, "Disease")]
    # "acute" (lower-cased) inside a mention 1 time in 10, "score" never: both trimmed away,
    # and the part takes the lexicon's label.
    lexicon = Lexicon("s", RENAL, inside={"acute": (1, 10), "renal": (9, 9)})
    applied = lexicon.apply(text, tagger)
    assert applied.kept == [] and applied.dropped == []
    assert strings(text, applied.added) == [("renal failure", "Disease")] * 2
    assert lexicon.trims(text, tagger[0]) == [Span(6, 19, "Disease")]
    # At a ratio under "acute"'s share (0.1) the first span stands; the second still goes.
    strict = lexicon.with_rule(0.3, 1, trim_ratio=0.05)
    assert strict.apply(text, tagger).kept == [tagger[0]]
    # No trimming at all (a lexicon before version 3), or a span whose very string training
    # annotates (even below the rule's ratio): it stands.
    assert lexicon.with_rule(0.3, 1, trim_ratio=None).apply(text, tagger).kept == tagger
    weak = Lexicon(
        "s", {**RENAL, "Acute renal failure": Entry("Acute renal failure", "Disease", 1, 9)}
    )
    assert weak.trims(text, tagger[0]) == []
    # Nothing known inside: nothing to trim to.
    assert Lexicon("s", {"cisplatin": RENAL["cisplatin"]}).trims(text, tagger[0]) == []
    with pytest.raises(ValueError, match="trim_ratio"):
        lexicon.with_rule(0.3, 1, trim_ratio=1.5)


def test_units_inside_mentions_are_counted_lower_cased():
    lexicon = build_lexicons(PASSAGES)["bc5cdr"]
    # "Cisplatin"/"cisplatin": 4 occurrences (T1, T2 twice... "cisplatin-free" included), 2
    # inside mentions; "patients": 3 occurrences, 1 inside ("Patients" in T2).
    assert lexicon.inside["cisplatin"] == (2, 3)
    assert lexicon.inside["patients"] == (1, 3)
    assert lexicon.inside_share("Patients") == pytest.approx(1 / 3)
    assert "caused" not in lexicon.inside and lexicon.inside_share("caused") == 0.0


def test_apply_replaces_the_parts_of_a_mention_it_knows_whole():
    lexicon = Lexicon(
        "s",
        {
            "hereditary breast cancer": Entry("hereditary breast cancer", "Disease", 5, 6),
            "breast cancer": Entry("breast cancer", "Disease", 30, 31),
        },
    )
    text = "BRCA1 explains hereditary breast cancer and breast cancer in men."
    tagger = [Span(15, 25, "Disease"), Span(26, 39, "Disease")]  # [hereditary] [breast cancer]
    kept, added, _ = lexicon.apply(text, tagger)
    assert kept == []
    assert strings(text, added) == [
        ("hereditary breast cancer", "Disease"),
        ("breast cancer", "Disease"),
    ]


def test_apply_never_cuts_across_a_taggers_span_nor_shortens_one_but_by_trimming():
    entries = {"breast cancer": Entry("breast cancer", "Disease", 3, 3)}
    # "male" lies inside mentions in half its training occurrences: no trimming.
    lexicon = Lexicon("s", entries, inside={"male": (5, 10)})
    text = "male breast cancer risk; breast cancer"
    # The tagger's wider "male breast cancer" and a span crossing the second match both stand.
    tagger = [Span(0, 18, "Disease"), Span(19, 31, "Disease")]  # "risk; breast" crosses
    assert lexicon.apply(text, tagger) == (tagger, [], [])


def test_apply_relabels_a_span_whose_string_the_rule_accepts_as_another_label():
    lexicon = Lexicon(
        "s",
        {
            "Wilms tumor": Entry("Wilms tumor", "Disease", 4, 4),
            "lithium": Entry("lithium", "Chemical", 1, 20),  # ratio 0.05: not active
        },
    )
    text = "Wilms tumor after lithium"
    tagger = [Span(0, 11, "Chemical"), Span(18, 25, "Disease")]
    kept, added, _ = lexicon.apply(text, tagger)
    assert kept == [Span(18, 25, "Disease")]
    assert added == [Span(0, 11, "Disease")]
    # Same string, same label: nothing to change.
    assert lexicon.apply(text, [Span(0, 11, "Disease")]) == ([Span(0, 11, "Disease")], [], [])


def test_an_empty_or_inactive_lexicon_finds_nothing():
    assert Lexicon("s", {}).find("anything") == []
    assert Lexicon("s", {"x": Entry("x", "L", 1, 10)}).find("x y x") == []


def test_the_digest_names_the_entries_not_the_rule():
    lexicons = build_lexicons(PASSAGES)
    stricter = {k: v.with_rule(0.9, 3) for k, v in lexicons.items()}
    assert lexicon_digest(lexicons) == lexicon_digest(stricter)
    fewer = build_lexicons(PASSAGES[:1])
    assert lexicon_digest(fewer) != lexicon_digest(lexicons)


def test_strings_training_never_annotates_are_counted_and_veto_the_taggers_spans():
    lexicon = build_lexicons(PASSAGES)["bc5cdr"]
    # "patients" (T1, T3) and "." (T1, T3; T2 ends with one too) are never annotated;
    # "caused" occurs once: below the keep threshold.
    assert lexicon.unseen["patients"] == 2 and lexicon.unseen["."] == 3
    assert "caused" not in lexicon.unseen
    # Annotated strings are never unseen, even where an occurrence was not annotated.
    assert not set(lexicon.unseen) & {"cisplatin", "Patients", "Cisplatin"}
    text = "The patients got cisplatin."
    tagger = [Span(4, 12, "Disease"), Span(17, 26, "Chemical"), Span(26, 27, "Chemical")]
    applied = lexicon.apply(text, tagger)
    assert applied.dropped == [Span(4, 12, "Disease"), Span(26, 27, "Chemical")]
    assert applied.kept == [Span(17, 26, "Chemical")]
    assert lexicon.with_rule(0.5, 1, veto_count=3).apply(text, tagger).dropped == [tagger[2]]
    assert lexicon.with_rule(0.5, 1, veto_count=0).apply(text, tagger).dropped == []


def test_a_span_only_an_excluded_schemas_lexicon_knows_is_dropped():
    own = Lexicon(
        "bc5cdr",
        {
            "insulin": Entry("insulin", "Chemical", 5, 6),
            "NO": Entry("NO", "Chemical", 1, 30),  # inactive here, still its own string
        },
    )
    proteins = Lexicon(
        "jnlpba",
        {
            "NPY": Entry("NPY", "protein", 9, 10),
            "insulin": Entry("insulin", "protein", 8, 9),
            "NO": Entry("NO", "protein", 3, 3),
            "COX": Entry("COX", "protein", 1, 10),  # inactive: the rule does not accept it
        },
    )
    text = "NPY and insulin; NO and COX; Npy"
    tagger = [Span(s, s + len(w), "Chemical") for w in ("NPY", "insulin", "NO", "COX", "Npy")
              for s in [text.index(w)]]  # fmt: skip
    # Without excluded lexicons nothing is dropped.
    assert own.apply(text, tagger).dropped == []
    applied = own.apply(text, tagger, [proteins])
    # "NPY" goes; "insulin" and "NO" are BC5CDR's own strings (even at a low ratio); "COX" is
    # no accepted protein; "Npy" no string either lexicon knows.
    assert applied.dropped == [tagger[0]]
    assert strings(text, applied.kept) == [
        ("insulin", "Chemical"), ("NO", "Chemical"), ("COX", "Chemical"), ("Npy", "Chemical"),
    ]  # fmt: skip
    assert own.foreign("NPY", [proteins]) and not own.foreign("insulin", [proteins])


def test_excluded_schemas_are_known_and_share_no_label_with_the_schema():
    from bioner.labels import SCHEMAS

    assert SCHEMAS["bc5cdr"].excludes == ("jnlpba",)
    for schema in SCHEMAS.values():
        for name in schema.excludes:
            assert name != schema.name and name in SCHEMAS
            assert not set(SCHEMAS[name].labels) & set(schema.labels)


def suffix_lexicon() -> Lexicon:
    def chem(word: str) -> Entry:
        return Entry(word, "Chemical", 5, 5)

    entries = {w: chem(w) for w in ("clozapine", "olanzapine", "quetiapine", "Diazepam")}
    entries |= {
        "lorazepam": chem("lorazepam"),
        "nephropathy": Entry("nephropathy", "Disease", 4, 4),
        "myopathy": Entry("myopathy", "Disease", 3, 3),
        "sympathy": Entry("sympathy", "Disease", 1, 40),  # rarely annotated: counts as none
    }
    unseen = {"therapy": 9, "empathy": 3, "NPY": 4}
    return Lexicon("bc5cdr", entries, unseen=unseen)


def test_a_word_training_never_holds_gets_the_label_of_the_words_ending_like_it():
    lexicon = suffix_lexicon()
    assert lexicon.suffixes()["apine"] == {"Chemical": 3}
    assert lexicon.suffixes()["pathy"] == {"Disease": 2, "": 2}  # sympathy, empathy: none
    # No type ends in "napine" or "xapine": "-apine" decides (clozapine, olanzapine, ...).
    assert lexicon.by_suffix("asenapine") == lexicon.by_suffix("loxapine") == "Chemical"
    assert lexicon.by_suffix("Temazepam") == "Chemical"  # "-azepam": diazepam, lorazepam
    # The longest suffix with support decides, even against a label: "-opathy" (nephropathy,
    # myopathy) gives Disease; "-mpathy" (sympathy, empathy) gives none, and "-pathy"
    # behind it is not asked.
    assert lexicon.by_suffix("retinopathy") == "Disease"
    assert lexicon.by_suffix("telempathy") is None
    # Words training holds keep what the other rules say, in either case of the first letter.
    for held in ("quetiapine", "Quetiapine", "therapy", "Sympathy"):
        assert lexicon.by_suffix(held) is None
    # Too short, or not a word of the rule's shape.
    for other in ("zepam", "NPYAPINE", "IL-2apine", "asenapine2"):
        assert lexicon.by_suffix(other) is None


def test_apply_labels_lone_uncovered_words_by_their_suffix():
    lexicon = suffix_lexicon()
    text = (
        "On asenapine (Temazepam-free) and loxapine, retinopathy/uveitis, telempathy; retinopathy."
    )
    tagger = [Span(text.index("loxapine"), text.index("loxapine") + 8, "Disease")]
    applied = lexicon.apply(text, tagger)
    # "Temazepam" and the first "retinopathy" are joined to the next word by "-" and "/";
    # "loxapine" is the tagger's; "telempathy" stands alone but its ending gives no label.
    assert strings(text, applied.added) == [("asenapine", "Chemical"), ("retinopathy", "Disease")]
    assert applied.added[1].start == text.rindex("retinopathy")
    assert applied.kept == tagger


def shape_lexicon() -> Lexicon:
    def chem(code: str, annotated: int = 3, occurrences: int = 3) -> Entry:
        return Entry(code, "Chemical", annotated, occurrences)

    codes = ("FK 506", "CP 93129", "GR 55562", "MK-801", "WR-2721", "UM-272", "CI-921")
    entries = {c: chem(c) for c in codes}
    entries["FLA-63"] = chem("FLA-63")
    entries["ADAM-10"] = chem("ADAM-10", 1, 20)  # rarely annotated: counts as none
    unseen = {"ADAM-17": 3, "PN-11": 2, "HL 60": 4}
    return Lexicon("bc5cdr", entries, unseen=unseen)


def test_code_shapes_keep_case_and_separators_and_cut_runs():
    assert code_shape("CB 3717") == code_shape("BN 52021") == "AA 000"
    assert code_shape("NIK-247") == code_shape("SM-5887") == "AA-000"
    assert code_shape("Ro15") == "Aa00" and code_shape("KF17837B") == "AA000A"


def test_a_code_training_never_holds_gets_the_label_of_the_codes_shaped_like_it():
    lexicon = shape_lexicon()
    assert lexicon.shapes()["AA 000"] == {"Chemical": 3}
    assert lexicon.shapes()["AA-00"] == {"Chemical": 1, "": 3}  # FLA-63; ADAM-10, -17, PN-11
    assert lexicon.by_shape("CB 3717") == lexicon.by_shape("NIK-247") == "Chemical"
    # Too few codes of the shape ("HL 60": one), or no label holding SHAPE_SHARE of them.
    assert lexicon.by_shape("CB 37") is None
    assert lexicon.by_shape("SM-21") is None
    # Codes training holds keep what the other rules say; other strings are no codes.
    for other in ("FK 506", "ADAM-17", "CD4", "p53", "IL-2", "cb 3717", "CB 37171-A"):
        assert lexicon.by_shape(other) is None


def test_apply_labels_lone_uncovered_codes_by_their_shape():
    lexicon = shape_lexicon()
    text = (
        "CB 3717 and NIK-247, not anti-SM-5887 or BN 52021/GR nor KF-101xy; SC-48334; "
        "CP 200 mg/kg and CP 250 µM."
    )
    tagger = [Span(text.index("SC-48334"), text.index("SC-48334") + 8, "Disease")]
    applied = lexicon.apply(text, tagger)
    # "SM-5887" and "BN 52021" are joined to other words by "-" and "/"; "KF-101xy" goes on
    # into a word; "SC-48334" is the tagger's; "CP 200" and "CP 250" are quantities.
    assert strings(text, applied.added) == [("CB 3717", "Chemical"), ("NIK-247", "Chemical")]
    assert applied.kept == tagger
