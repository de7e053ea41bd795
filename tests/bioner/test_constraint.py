"""The copy automaton accepts exactly the valid symbolic answers of a passage."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioner.codec import symbolic
from bioner.constraint import CopyAutomaton, SymbolicTarget, entity_shaped
from bioner.labels import SCHEMAS
from bioner.records import Span

BC5CDR = SCHEMAS["bc5cdr"]
CMEEE = SCHEMAS["cmeee"]
TEXT = "Famotidine-associated delirium [x] in a 60-year-old\\man."


def automaton(text: str = TEXT, schema=BC5CDR, **options) -> CopyAutomaton:
    return CopyAutomaton(SymbolicTarget.of(text, schema, **options))


def test_gold_answers_are_accepted():
    a = automaton()
    spans = [Span(0, 10, "Chemical"), Span(22, 30, "Disease"), Span(40, 51, "Disease")]
    answer = symbolic.encode(TEXT, spans, BC5CDR)
    assert a.accepts(answer)
    assert a.accepts("None")


@pytest.mark.parametrize(
    "answer",
    [
        "",  # nothing
        "None\n",  # text after None
        "Nothing",
        "Chemical: " + symbolic.escape_passage(TEXT),  # a line without an entity
        "Disease: [Famotidine]-associated delirium \\[x\\] in a 60-year-old\\\\man.\n"
        "Chemical: [Famotidine]-associated delirium \\[x\\] in a 60-year-old\\\\man.",  # order
        "Chemical: [Famotidine]-associated delirum \\[x\\] in a 60-year-old\\\\man.",  # a typo
        "Chemical: [Famotidine]-associated delirium [x] in a 60-year-old\\\\man.",  # unescaped
        "Chemical: [Famotidine]-associated delirium \\[x\\] in a 60-year-old\\\\man",  # cut
        "Chemical: [Famotidine-associated delirium \\[x\\] in a 60-year-old\\\\man.",  # open
        "Chemical: [Famo]tidine-associated delirium \\[x\\] in a 60-year-old\\\\man.",  # mid-word
        "Chemical: [[]Famotidine]-associated delirium \\[x\\] in a 60-year-old\\\\man.",  # empty
        "Chemical: Famotidine-associated[ delirium] \\[x\\] in a 60-year-old\\\\man.",  # space
        "Chemical: [Famotidine]-associated delirium \\[x\\] in a [60-year-old\\]\\man.",  # escape
    ],
)
def test_invalid_answers_are_rejected(answer):
    assert not automaton().accepts(answer)


def test_mid_word_brackets_when_asked():
    a = automaton(whole_words=False)
    assert a.accepts("Chemical: [Famo]tidine-associated delirium \\[x\\] in a 60-year-old\\\\man.")


def test_lines_per_type_and_depth_are_bounded():
    a = automaton(max_lines_per_type=1, max_depth=1)
    line = "Disease: Famotidine-associated [delirium] \\[x\\] in a 60-year-old\\\\man."
    assert a.accepts(line)
    assert not a.accepts(line + "\n" + line)
    assert not a.accepts(
        "Disease: Famotidine-associated [[delirium]] \\[x\\] in a 60-year-old\\\\man."
    )


def test_chinese_brackets_only_at_character_boundaries():
    text = "患者有高血压病史。"
    a = automaton(text, CMEEE)
    assert a.accepts("疾病: 患者有[高血压]病史。")
    data = "疾病: 患者有".encode() + "高".encode()[:1]
    state = a.walk(data)
    assert state is not None
    assert a.allowed(state) == {"高".encode()[1]}  # no bracket inside a character


def test_leading_space_for_sentencepiece():
    target = SymbolicTarget.of(TEXT, BC5CDR)
    assert not CopyAutomaton(target).accepts(" None")
    assert CopyAutomaton(target, leading_space=True).accepts(" None")
    assert not CopyAutomaton(target, leading_space=True).accepts("  None")  # one space only


_ALPHABET = "ab [x]\\中文-1 "


@st.composite
def passages_with_spans(draw):
    text = draw(st.text(alphabet=_ALPHABET, min_size=1, max_size=30))
    n = len(text)
    spans = set()
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(0, n - 1))
        end = draw(st.integers(start + 1, n))
        spans.add(Span(start, end, draw(st.sampled_from(["Chemical", "Disease"]))))
    return text, sorted(spans)


def _valid_for_target(text: str, spans: list[Span], answer: str) -> bool:
    """Whether gold spans respect the target's limits (the automaton may refuse the rest)."""

    def word(c: str) -> bool:
        return c.isascii() and c.isalnum()

    for s in spans:
        body = text[s.start : s.end]
        if body != body.strip() or not body.strip() or not entity_shaped(body):
            return False
        if s.start > 0 and word(text[s.start - 1]) and word(text[s.start]):
            return False
        if s.end < len(text) and word(text[s.end - 1]) and word(text[s.end]):
            return False
    lines = answer.split("\n")
    headers = [line.split(":", 1)[0] for line in lines]
    depth_ok = all(max(_depths(line)) <= 2 for line in lines if line != symbolic.NO_ENTITIES)
    return depth_ok and all(headers.count(h) <= 1 for h in set(headers))


@pytest.mark.parametrize(
    ("answer", "valid"),
    [
        ("Chemical: [Cisplatin] (5 mg) and K. 血 x", True),
        ("Chemical: Cisplatin ([5] mg) and K. 血 x", False),  # no letter
        ("Chemical: Cisplatin (5 mg) and [K]. 血 x", False),  # a lone Latin letter
        ("Chemical: Cisplatin (5 mg) and K[.] 血 x", False),  # punctuation
        ("Chemical: Cisplatin [(5 mg)] and K. 血 x", True),  # a letter inside
        ("Chemical: Cisplatin (5 mg) and K. [血] x", True),  # a lone CJK character
        ("Chemical: [Cisplatin (5 mg) and K. [血]] x", True),  # nested, both shaped
    ],
)
def test_entities_are_entity_shaped(answer, valid):
    target = SymbolicTarget("Cisplatin (5 mg) and K. 血 x", ("Chemical", "Disease"))
    assert CopyAutomaton(target).accepts(answer) is valid


def test_no_dead_end_where_no_entity_can_close():
    """Only punctuation and digits after the last letter: no bracket may open there."""
    automaton = CopyAutomaton(SymbolicTarget("Aspirin 5 mg: 12, 3.", ("Chemical",)))
    state = automaton.walk(b"Chemical: [Aspirin] 5 mg: 12")
    assert state is not None and ord("[") not in automaton.allowed(state)
    state = automaton.walk(b"Chemical: [Aspirin] 5 ")
    assert ord("[") in automaton.allowed(state)  # "mg" can still close
    assert automaton.accepts("Chemical: [Aspirin] 5 [mg]: 12, 3.")


def _depths(line: str) -> list[int]:
    depth, out, i = 0, [0], 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        depth += {"[": 1, "]": -1}.get(line[i], 0)
        out.append(depth)
        i += 1
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(passages_with_spans())
def test_every_valid_gold_answer_is_accepted(case):
    text, spans = case
    spans = [s for s in spans if s.text(text).strip()]
    answer = symbolic.encode(text, spans, BC5CDR)
    if not _valid_for_target(text, spans, answer):
        return
    assert automaton(text).accepts(answer), answer


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=30), st.integers(0, 2**32))
def test_random_walks_never_dead_end_and_always_decode_exactly(text, seed):
    """From any reachable state some byte or the end is allowed; every end decodes losslessly."""
    rng = random.Random(seed)
    a = automaton(text)
    state, out = a.start, bytearray()
    for _ in range(2000):
        allowed = sorted(a.allowed(state))
        if a.accepting(state) and (not allowed or rng.random() < 0.3):
            break
        assert allowed, (text, bytes(out))
        # Prefer copying so that walks finish; brackets and line breaks now and then.
        copy_next = [b for b in allowed if b not in b"[]\n"]
        byte = copy_next[0] if copy_next and rng.random() < 0.8 else rng.choice(allowed)
        state = a.step(state, byte)
        assert state is not None
        out.append(byte)
    else:
        pytest.fail("walk did not end")
    answer = bytes(out).decode("utf-8")
    spans, issues = symbolic.decode(answer, text, BC5CDR)
    assert not [i for i in issues if i.lossy], (answer, issues)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
