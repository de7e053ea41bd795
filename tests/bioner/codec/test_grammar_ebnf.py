"""The EBNF form of the copy constraint: checked with xgrammar (vLLM's default backend).

xgrammar is not part of the CPU stack (it comes with vLLM on GPU workers), so the tests that
compile the grammar skip without it; the structure tests always run.
"""

from __future__ import annotations

import pytest

from bioner.codec import symbolic
from bioner.codec.grammar import symbolic_ebnf
from bioner.constraint import CopyAutomaton, SymbolicTarget
from bioner.labels import SCHEMAS
from bioner.records import Span

EN = 'Famotidine-associated delirium [x] in a 60-year-old\\man; "quoted".'
ZH = "患者有高血压病史，给予阿司匹林治疗后出现头痛。"


def test_copy_is_written_once_whatever_the_number_of_types():
    target = SymbolicTarget.of(ZH * 10, SCHEMAS["cmeee"])
    grammar = symbolic_ebnf(target)
    assert grammar.count("copy ::=") == 1
    assert len(grammar) < 10 * len(target.copy) + 2000  # linear, one copy


def test_blank_passage_allows_only_none():
    assert symbolic_ebnf(SymbolicTarget.of("   ", SCHEMAS["ncbi"])) == 'root ::= "None"\n'


@pytest.fixture(scope="module")
def compile_grammar(tmp_path_factory):
    xgr = pytest.importorskip("xgrammar", reason="xgrammar comes with vLLM on GPU workers")
    from transformers import AutoTokenizer

    from infra.llm.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", [EN, ZH])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer))

    def accepts(grammar: str, answer: str) -> bool:
        matcher = xgr.GrammarMatcher(compiler.compile_grammar(grammar))
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        return all(matcher.accept_token(i) for i in ids) and matcher.accept_token(
            tokenizer.eos_token_id
        )

    return accepts


@pytest.mark.parametrize(
    ("text", "schema", "spans"),
    [
        (EN, "bc5cdr", [Span(0, 10, "Chemical"), Span(22, 30, "Disease"), Span(0, 30, "Disease")]),
        (ZH, "cmeee", [Span(3, 6, "Disease"), Span(10, 14, "Drug"), Span(19, 21, "Symptom")]),
        (EN, "bc5cdr", []),
    ],
)
def test_valid_answers_are_accepted_and_copies_changed_are_not(
    compile_grammar, text, schema, spans
):
    target = SymbolicTarget.of(text, SCHEMAS[schema])
    grammar = symbolic_ebnf(target)
    answer = symbolic.encode(text, spans, SCHEMAS[schema])
    assert CopyAutomaton(target).accepts(answer)
    assert compile_grammar(grammar, answer)
    if answer != "None":
        assert not compile_grammar(grammar, answer[:-3] + answer[-2:])  # a character dropped
        assert not compile_grammar(grammar, answer + "\n" + answer)  # order broken / repeated
        assert not compile_grammar(grammar, "None\n" + answer)


def test_brackets_inside_words_and_escapes_are_refused(compile_grammar):
    target = SymbolicTarget.of(EN, SCHEMAS["bc5cdr"])
    grammar = symbolic_ebnf(target)
    copy = target.copy
    assert compile_grammar(grammar, f"Chemical: [Famotidine]{copy[10:]}")
    assert not compile_grammar(grammar, f"Chemical: [Famo]{copy[4:]}")
    k = copy.index("\\\\")  # the escaped backslash: nothing may stand between its halves
    assert not compile_grammar(grammar, f"Chemical: [Famotidine]{copy[10 : k + 1]}]{copy[k + 1 :]}")
