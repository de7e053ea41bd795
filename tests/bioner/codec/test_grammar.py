"""symbolic_regex: holds every valid answer, rejects altered copies, portable syntax, linear size."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bioner.codec import symbolic
from bioner.codec.grammar import copy_regex, regex_literal, symbolic_regex
from bioner.constraint import SymbolicTarget
from bioner.labels import BC5CDR_SCHEMA, CMEEE_SCHEMA, JNLPBA_SCHEMA, EntitySchema
from bioner.records import Span

# Letters, spaces, brackets, backslashes, regex metacharacters, CJK, full-width punctuation,
# a tab and a character outside the BMP.
ALPHABET = 'ab c[]\\:：（）。癌症 　\t.*+?()|{}^$-/#"𝔸'
SCHEMAS = [JNLPBA_SCHEMA, BC5CDR_SCHEMA, CMEEE_SCHEMA]


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, list[Span], EntitySchema]:
    schema = draw(st.sampled_from(SCHEMAS))
    text = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=40))
    n = len(text)
    spans = draw(
        st.lists(
            st.tuples(
                st.integers(0, n - 1), st.integers(1, n), st.sampled_from(schema.labels)
            ).filter(lambda t: t[0] < t[1]),
            max_size=8,
        )
    )
    kept = [Span(a, b, lab) for a, b, lab in spans if text[a:b].strip()]
    return text, kept, schema


def _tags(body: str) -> list[tuple[int, str]]:
    """Positions and characters of the unescaped brackets of a line's copy."""
    out = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in "[]\\":
            i += 2
            continue
        if body[i] in "[]":
            out.append((i, body[i]))
        i += 1
    return out


def _depth(body: str) -> int:
    depth = deepest = 0
    for _, ch in _tags(body):
        depth += 1 if ch == "[" else -1
        deepest = max(deepest, depth)
    return deepest


def _within_limits(output: str, target: SymbolicTarget) -> bool:
    if output == "None":
        return True
    lines = output.split("\n")
    headers = Counter(line.split(": ", 1)[0] for line in lines)
    return max(headers.values()) <= target.max_lines_per_type and all(
        _depth(line.split(": ", 1)[1]) <= target.max_depth for line in lines
    )


def _tag_positions(output: str) -> set[int]:
    """Absolute positions of the tag brackets (unescaped) in a whole answer."""
    positions: set[int] = set()
    offset = 0
    for line in output.split("\n"):
        head = line.find(": ")
        if head >= 0:
            start = offset + head + 2
            positions.update(start + i for i, _ in _tags(line[head + 2 :]))
        offset += len(line) + 1
    return positions


def _check_syntax(regex: str) -> None:
    """Only the syntax every structured-output backend accepts."""
    allowed_escapes = set("\\.^$|?*+()[]{}ntu")
    i = 0
    while i < len(regex):
        c = regex[i]
        assert c not in "\n\r\x00", f"raw control character at {i}"
        if c == "\\":
            assert regex[i + 1] in allowed_escapes, f"escape \\{regex[i + 1]} at {i}"
            i += 6 if regex[i + 1] == "u" else 2
            continue
        if c == "(":
            assert regex[i + 1] != "?", f"special group at {i}"
        assert c not in "^$.[]", f"unescaped {c!r} at {i} (anchor, wildcard or class)"
        i += 1


@settings(max_examples=400, deadline=None)
@given(answers())
def test_every_encoded_answer_within_the_limits_matches(case) -> None:
    text, spans, schema = case
    output = symbolic.encode(text, spans, schema)
    target = SymbolicTarget.of(text, schema)
    assume(_within_limits(output, target))
    regex = symbolic_regex(target)
    _check_syntax(regex)
    assert re.fullmatch(regex, output), output


def _skeleton(output: str) -> str:
    """The answer without its tag brackets: what a match must keep exactly."""
    tags = _tag_positions(output)
    return "".join(c for i, c in enumerate(output) if i not in tags)


def _rejects(regex: str, original: str, altered: str, touched: str) -> None:
    """An altered answer does not match, or (only when a bracket or backslash was touched,
    which can turn an escape into a tag) it differs from the original by tags alone."""
    if set(touched) & set("[]\\"):
        assert not re.fullmatch(regex, altered) or _skeleton(altered) == _skeleton(original)
    else:
        assert not re.fullmatch(regex, altered), (original, altered)


@settings(max_examples=300, deadline=None)
@given(answers(), st.randoms(use_true_random=False), st.sampled_from(ALPHABET + "\n"))
def test_altered_copies_do_not_match(case, rnd: random.Random, new_char: str) -> None:
    text, spans, schema = case
    assume(text.strip())
    output = symbolic.encode(text, spans, schema)
    regex = symbolic_regex(SymbolicTarget.of(text, schema))
    tags = _tag_positions(output)
    plain = [i for i in range(len(output)) if i not in tags]  # never empty: a header or None
    i = rnd.choice(plain)
    _rejects(regex, output, output[:i] + output[i + 1 :], output[i])
    if new_char not in "[]":
        k = rnd.randrange(len(output) + 1)
        _rejects(regex, output, output[:k] + new_char + output[k:], new_char)
        if new_char != output[i]:
            changed = output[:i] + new_char + output[i + 1 :]
            _rejects(regex, output, changed, output[i] + new_char)


def test_examples_and_what_the_regex_rejects() -> None:
    text = "Famotidine-associated delirium [3H] x\\y."
    target = SymbolicTarget.of(text, BC5CDR_SCHEMA, max_lines_per_type=2)
    regex = symbolic_regex(target)
    chem = "Chemical: [Famotidine]-associated delirium [\\[3H\\]] x\\\\y."
    dis = "Disease: Famotidine-associated [delirium] \\[3H\\] x\\\\y."
    chem2 = "Chemical: Famotidine-associated delirium \\[3H\\] [x]\\\\y."
    for ok in ("None", chem, dis, f"{chem}\n{dis}", f"{chem}\n{chem2}\n{dis}"):
        assert re.fullmatch(regex, ok), ok
    for bad in (
        f"{dis}\n{chem}",  # wrong header order
        f"{chem}\n{chem2}\n{chem}",  # three lines of one type
        "None\n" + chem,  # text after None
        "None.",
        f"{chem}\n",  # trailing line break
        f"{chem}\nNone",
        chem.replace("Chemical: ", "Chemical:"),  # the separator is exact
        chem.replace("\\[3H\\]", "[3H]"),  # source brackets must be escaped
        chem.replace("\\\\y", "\\y"),  # so must backslashes
        chem.replace("[Famotidine]", "[Famo[]tidine]"),  # no empty [] at one boundary
        chem.replace("[Famotidine]", "[[[[[Famotidine]]]]]"),  # deeper than max_depth
        chem.replace("[Famotidine]", "]Famotidine["),  # ']' first, '[' last
        "Chemical: Famotidine-associated delirium \\[3H\\] x\\\\y.[",
        "Gene: [Famotidine]-associated delirium \\[3H\\] x\\\\y.",  # unknown header
    ):
        assert not re.fullmatch(regex, bad), bad


def test_chinese_passage() -> None:
    text = "患者有高血压病史，给予阿司匹林。"
    target = SymbolicTarget.of(text, CMEEE_SCHEMA)
    regex = symbolic_regex(target)
    good = "疾病: 患者有[高血压]病史，给予阿司匹林。\n药物: 患者有高血压病史，给予[阿司匹林]。"
    assert re.fullmatch(regex, good)
    assert not re.fullmatch(regex, "\n".join(reversed(good.split("\n"))))
    assert not re.fullmatch(regex, good.replace("血压", "血壓"))


def test_empty_or_blank_passage_allows_only_none() -> None:
    for text in ("", "   ", "\t"):
        regex = symbolic_regex(SymbolicTarget.of(text, BC5CDR_SCHEMA))
        assert re.fullmatch(regex, "None")
        assert not re.fullmatch(regex, f"Chemical: {text}")


def test_limits_of_the_target() -> None:
    target = SymbolicTarget("a b", ("X",), max_depth=1, max_lines_per_type=1)
    regex = symbolic_regex(target)
    assert re.fullmatch(regex, "X: [a] [b]")
    assert re.fullmatch(regex, "X: [a b]")
    assert not re.fullmatch(regex, "X: [[a]] b")
    assert not re.fullmatch(regex, "X: [a] b\nX: a [b]")
    three = SymbolicTarget("a b", ("X",), max_lines_per_type=3)
    assert re.fullmatch(symbolic_regex(three), "X: [a] b\nX: a [b]\nX: [a b]")


def test_control_and_line_break_characters_are_escaped() -> None:
    text = "a\x00b\x0bc\u2028d\te\nf\r"
    regex = symbolic_regex(SymbolicTarget.of(text, BC5CDR_SCHEMA))
    _check_syntax(regex)
    output = symbolic.encode(text, [Span(0, 3, "Chemical")], BC5CDR_SCHEMA)
    assert re.fullmatch(regex, output)
    assert regex_literal("a.b*c") == "a\\.b\\*c"


def test_size_is_linear_in_the_passage() -> None:
    unit = "Famotidine-associated delirium [3H] 患者。"
    sizes = {}
    for reps in (4, 8, 16, 32):
        target = SymbolicTarget.of(unit * reps, CMEEE_SCHEMA)
        sizes[reps] = len(symbolic_regex(target))
        # The copy pattern: a bounded number of regex characters per passage character.
        assert len(copy_regex(target)) <= 20 * len(target.passage)
        k = target.max_lines_per_type
        per_copy = len(copy_regex(target)) + 40
        assert sizes[reps] <= len(target.headers) * (k + 1) * per_copy
    for reps in (8, 16, 32):
        assert sizes[reps] / sizes[reps // 2] == pytest.approx(2, rel=0.02)


def test_long_passage_matches_quickly() -> None:
    text = "The patient had breast cancer and diabetes after famotidine. " * 30
    spans = [Span(m.start(), m.end(), "Disease") for m in re.finditer("breast cancer", text)]
    spans += [Span(m.start(), m.end(), "Chemical") for m in re.finditer("famotidine", text)]
    output = symbolic.encode(text, spans, BC5CDR_SCHEMA)
    regex = symbolic_regex(SymbolicTarget.of(text, BC5CDR_SCHEMA))
    assert re.fullmatch(regex, output)
    assert not re.fullmatch(regex, output[:-1])
