"""Copy-constrained decoding with transformers: every constrained answer is a valid copy."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from bioner.codec import symbolic
from bioner.constraint import CONSTRAINT_VERSION, CopyAutomaton, SymbolicTarget
from bioner.generation import GenerationParams
from bioner.labels import SCHEMAS
from bioner.prompts import build_prompt
from infra.llm.constrained import TokenTrie, UnsupportedTokenizer, token_bytes
from infra.llm.transformers_engine import TransformersEngine

CASES = [
    ("Famotidine-associated delirium in a 60-year-old man.", "bc5cdr"),
    ("Mutations of [BRCA1] \\ BRCA2 predispose to breast cancer.", "ncbi"),
    ("IL-2 gene expression in T cells requires NF-kappa B.", "jnlpba"),
    ("患者有高血压病史，给予阿司匹林治疗。", "cmeee"),
    ("   ", "ncbi"),
]


@pytest.fixture(scope="module")
def constrained(tiny_model):
    return TransformersEngine(tiny_model, batch_tokens=8192)


def _check(engine, texts_schemas, params, max_new_tokens=400):
    prompts, targets = [], []
    for text, name in texts_schemas:
        schema = SCHEMAS[name]
        prompts.append(build_prompt(text, schema))
        targets.append(SymbolicTarget.of(text, schema))
    out = engine.generate(prompts, params.with_max_new_tokens(max_new_tokens), targets)
    for g, target, (text, name) in zip(out, targets, texts_schemas, strict=True):
        assert g.finish_reason == "stop", g
        assert CopyAutomaton(target).accepts(g.text), g.text
        _spans, issues = symbolic.decode(g.text, text, SCHEMAS[name], finish_reason="stop")
        assert not [i for i in issues if i.lossy], (g.text, issues)
    return out


def test_token_bytes_rebuild_text(tiny_model):
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_model)
    table, metaspace = token_bytes(tokenizer)
    assert not metaspace
    ids = tokenizer("疾病: [高血压] x\\y", add_special_tokens=False)["input_ids"]
    assert b"".join(table[i] for i in ids).decode() == "疾病: [高血压] x\\y"
    assert all(table[i] is None for i in tokenizer.all_special_ids)


def test_greedy_answers_are_valid_copies(constrained):
    out = _check(constrained, CASES, GenerationParams())
    assert out[-1].text == "None"  # a passage of spaces has no possible entity


def test_sampled_answers_are_valid_copies(constrained):
    _check(constrained, CASES * 2, GenerationParams(temperature=1.0, seed=3))


def test_prompt_lookup_answers_are_valid_copies(tiny_model):
    engine = TransformersEngine(tiny_model, prompt_lookup_tokens=8)
    assert engine.max_batch_size == 1
    _check(engine, CASES[:3], GenerationParams())


def test_unconstrained_rows_and_engines_are_free(tiny_model, constrained):
    text, name = CASES[0]
    prompt = build_prompt(text, SCHEMAS[name])
    free = TransformersEngine(tiny_model, constrained=False)
    assert free.settings["constrained"] == "off"
    assert constrained.settings["constrained"] == CONSTRAINT_VERSION
    params = GenerationParams(max_new_tokens=40)
    a = free.generate([prompt], params)[0]
    b = constrained.generate([prompt], params, [None])[0]
    assert a == b  # a None target is not constrained
    assert not CopyAutomaton(SymbolicTarget.of(text, SCHEMAS[name])).accepts(a.text)


def test_limit_hit_is_reported(constrained):
    text, name = CASES[0]

    def answer(limit: int):
        return constrained.generate(
            [build_prompt(text, SCHEMAS[name])],
            GenerationParams(max_new_tokens=limit),
            [SymbolicTarget.of(text, SCHEMAS[name])],
        )[0]

    whole = answer(400)
    assert whole.finish_reason == "stop" and whole.output_tokens >= 2
    cut = answer(whole.output_tokens - 1)  # one token short of the model's own answer
    assert cut.finish_reason == "length"
    assert cut.output_tokens == whole.output_tokens - 1


def _metaspace_tokenizer(byte_fallback: bool) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(byte_fallback=byte_fallback, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    alphabet = [f"<0x{b:02X}>" for b in range(256)] if byte_fallback else []
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", *alphabet], show_progress=False
    )
    tok.train_from_iterator(["Disease: The [BRCA1] gene. None", "Chemical: aspirin"], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def test_sentencepiece_style_vocabulary():
    tokenizer = _metaspace_tokenizer(byte_fallback=True)
    trie = TokenTrie.of(tokenizer)
    assert trie.leading_space
    target = SymbolicTarget.of("The BRCA1 gene.", SCHEMAS["ncbi"])
    automaton = CopyAutomaton(target, leading_space=True)
    allowed = {trie.table[i] for i in trie.allowed(automaton, automaton.start)}
    assert {b" ", b"D", b"N", b"<0x20>"} & allowed
    assert all(
        b"Disease: ".startswith(d)
        or b" None".startswith(d)
        or b" Disease: ".startswith(d)
        or b"None".startswith(d)
        for d in allowed
    ), allowed


def test_unmappable_tokenizer_is_refused():
    with pytest.raises(UnsupportedTokenizer):
        TokenTrie.of(_metaspace_tokenizer(byte_fallback=False))


def test_copy_tokens_follow_the_canonical_tokenization(tiny_model):
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_model)
    trie = TokenTrie.of(tokenizer)
    target = SymbolicTarget.of("Famotidine-associated delirium in patients.", SCHEMAS["ncbi"])
    automaton = CopyAutomaton(target)
    state = automaton.walk(b"Disease: ")
    bounds = trie.boundaries(tokenizer, target.copy)
    free = {trie.table[i] for i in trie.allowed(automaton, state)}
    canonical = {trie.table[i] for i in trie.allowed(automaton, state, bounds)}
    copy = target.copy.encode()
    assert canonical < free  # fragments such as b"F" are no longer offered
    for data in canonical:
        if b"[" not in data:
            assert copy.startswith(data) and len(data) in bounds
    assert b"[" in canonical  # structure stays open
