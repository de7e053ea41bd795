"""Property tests: every span set round-trips through both formats; decode never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bioner.codec import TAG_FORMATS
from bioner.labels import JNLPBA_SCHEMA
from bioner.records import Span

# Letters, spaces, line breaks, brackets, backslashes, CJK and full-width punctuation.
ALPHABET = "ab c\n[]\\:：（）。癌症 　\t"
LABELS = JNLPBA_SCHEMA.labels


@st.composite
def annotated(draw: st.DrawFn) -> tuple[str, list[Span]]:
    text = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=40))
    n = len(text)
    spans = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(1, n), st.sampled_from(LABELS)).filter(
                lambda t: t[0] < t[1]
            ),
            max_size=8,
        )
    )
    kept = [Span(a, b, lab) for a, b, lab in spans if text[a:b].strip()]
    return text, kept


@settings(max_examples=400, deadline=None)
@given(annotated())
def test_symbolic_round_trip(case: tuple[str, list[Span]]) -> None:
    text, spans = case
    fmt = TAG_FORMATS["symbolic"]
    got, issues = fmt.decode(fmt.encode(text, spans, JNLPBA_SCHEMA), text, JNLPBA_SCHEMA)
    assert got == sorted(set(spans))
    assert not [i for i in issues if i.lossy]


@settings(max_examples=400, deadline=None)
@given(annotated())
def test_json_round_trip(case: tuple[str, list[Span]]) -> None:
    text, spans = case
    fmt = TAG_FORMATS["json-entities"]
    got, issues = fmt.decode(fmt.encode(text, spans, JNLPBA_SCHEMA), text, JNLPBA_SCHEMA)
    assert got == sorted(set(spans))
    assert issues == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=ALPHABET + "proteinDNA{}\"',", max_size=60),
    st.text(alphabet=ALPHABET, max_size=30),
    st.sampled_from(["symbolic", "json-entities"]),
    st.sampled_from([None, "stop", "length"]),
)
def test_decode_never_raises_and_spans_fit(
    output: str, text: str, fmt: str, finish: str | None
) -> None:
    spans, issues = TAG_FORMATS[fmt].decode(output, text, JNLPBA_SCHEMA, finish_reason=finish)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert s.label in LABELS
    assert all(str(i) for i in issues)


@settings(max_examples=200, deadline=None)
@given(annotated(), st.sampled_from(["protein: ", "DNA: ", "RNA：", "cell_type: "]))
def test_decoding_a_model_like_line_gives_spans_inside_the_text(
    case: tuple[str, list[Span]], header: str
) -> None:
    text, spans = case
    line = TAG_FORMATS["symbolic"].encode(text, spans, JNLPBA_SCHEMA).split("\n")[0]
    body = line.split(": ", 1)[-1]
    noisy = header + body.upper().replace(" ", "  ")
    got, _ = TAG_FORMATS["symbolic"].decode(noisy, text, JNLPBA_SCHEMA)
    assert all(0 <= s.start < s.end <= len(text) for s in got)
