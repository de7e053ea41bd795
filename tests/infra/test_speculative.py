"""Copy-speculative decoding gives the answers of greedy constrained decoding, in fewer passes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from bioner.constraint import SymbolicTarget
from bioner.generation import GenerationParams
from bioner.labels import get_schema
from bioner.prompts import build_prompt
from infra.llm.transformers_engine import TransformersEngine

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference"
TEXTS = [
    "Famotidine-associated delirium in a 60-year-old man.",
    "Mutations of [BRCA1] \\ BRCA2 predispose to breast cancer.",
    "IL-2 gene expression in T cells requires NF-kappa B.",
    "患者有高血压病史，给予阿司匹林治疗。",
]


def _answers(engine, texts, schema, limit=200):
    prompts = [build_prompt(t, schema, engine.prompt_version) for t in texts]
    targets = [SymbolicTarget.of(t, schema) for t in texts]
    return engine.generate(prompts, GenerationParams(max_new_tokens=limit), targets)


def test_the_same_answers_as_token_by_token_decoding(tiny_model):
    schema = get_schema("bc5cdr")
    fast = TransformersEngine(tiny_model)
    plain = TransformersEngine(tiny_model, speculative=False, max_batch_size=1)
    assert fast.speculative and not plain.speculative
    for limit in (200, 7):  # whole answers, and answers cut at their token limit
        assert _answers(fast, TEXTS, schema, limit) == _answers(plain, TEXTS, schema, limit)
    assert fast.passes > 0 and fast.speculated_tokens >= fast.passes


def test_sampling_and_unconstrained_prompts_take_the_plain_path(tiny_model):
    engine = TransformersEngine(tiny_model)
    schema = get_schema("ncbi")
    prompt = build_prompt(TEXTS[0], schema)
    engine.generate([prompt], GenerationParams(max_new_tokens=20), [None])
    engine.generate(
        [prompt],
        GenerationParams(max_new_tokens=20, temperature=1.0, seed=1),
        [SymbolicTarget.of(TEXTS[0], schema)],
    )
    assert engine.passes == 0


@pytest.mark.data
@pytest.mark.skipif(not (REFERENCE / "config.json").is_file(), reason="no reference model")
def test_real_passages_decode_byte_for_byte_as_plain_greedy_decoding(shared_data):
    """The reference tagger on real NCBI-disease test passages: identical answers, and more
    than 4 tokens per forward pass."""
    from bioner.segment import segment
    from infra.evaluation import load_eval_set

    docs = load_eval_set("ncbi", shared_data, limit=2)
    texts = [p.text for d in docs for p in segment(d.document)][:16]
    schema = get_schema("ncbi")
    fast = TransformersEngine(REFERENCE)
    plain = TransformersEngine(REFERENCE, speculative=False, max_batch_size=1)
    fast_answers = _answers(fast, texts, schema, 400)
    assert [a.text for a in fast_answers] == [a.text for a in _answers(plain, texts, schema, 400)]
    assert all(a.finish_reason == "stop" for a in fast_answers)
    assert fast.speculated_tokens / fast.passes > 4
