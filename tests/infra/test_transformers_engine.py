"""TransformersEngine: order, left padding, per-prompt limits, stop tokens, batching."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from bioner.generation import Engine, GenerationParams
from infra.llm.local import ModelFolderError
from infra.llm.transformers_engine import TransformersEngine

PROMPTS = [
    "Disease: short",
    "Chemical: a rather longer prompt about famotidine and delirium in older patients",
    "患者有高血压病史。",
    "Gene: BRCA1 and TP53 mutations in breast cancer",
    "x",
]


@pytest.fixture
def calls(engine, monkeypatch):
    """Records the input ids and attention mask of every model.generate call."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = engine.model.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone()))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.model, "generate", spy)
    return seen


def test_is_an_engine(engine):
    assert isinstance(engine, Engine)
    assert engine.model_id.startswith("tiny@")


def test_results_in_input_order_and_same_as_one_at_a_time(engine, calls):
    params = [GenerationParams(max_new_tokens=n) for n in (5, 9, 3, 12, 7)]
    batched = engine.generate(PROMPTS, params)
    assert len(calls) == 1  # one padded batch
    alone = [engine.generate([p], q)[0] for p, q in zip(PROMPTS, params, strict=True)]
    assert batched == alone
    assert [g.prompt_tokens for g in batched] == [len(engine.encode_prompt(p)) for p in PROMPTS]


def test_left_padding(engine, calls):
    engine.generate(PROMPTS[:2], GenerationParams(max_new_tokens=2))
    ((input_ids, mask),) = calls
    lengths = [len(engine.encode_prompt(p)) for p in PROMPTS[:2]]
    pad = max(lengths) - min(lengths)
    assert pad > 0
    short = int(mask.sum(dim=1).argmin())
    assert mask[short, :pad].sum() == 0 and mask[short, pad:].all()
    assert (input_ids[short, :pad] == engine.tokenizer.pad_token_id).all()
    assert input_ids[short, pad] == engine.tokenizer.bos_token_id


def test_each_prompt_stops_at_its_own_limit(engine):
    limits = (1, 4, 16, 2, 8)
    results = engine.generate(PROMPTS, [GenerationParams(max_new_tokens=n) for n in limits])
    # The random model never says </s> this early: every answer is cut at its own limit.
    assert [g.finish_reason for g in results] == ["length"] * 5
    assert [g.output_tokens for g in results] == list(limits)


def test_stop_token_ends_only_its_row(engine, monkeypatch):
    ids = torch.tensor([engine.encode_prompt(PROMPTS[0])])
    first, second = engine.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False
    )[0, -2:].tolist()
    monkeypatch.setattr(engine, "stop_ids", [second])
    params = GenerationParams(max_new_tokens=6)
    batched = engine.generate(PROMPTS, params)
    assert batched[0].finish_reason == "stop"
    assert batched[0].output_tokens == 2  # the stop token counts as generated
    assert batched[0].text == engine.tokenizer.decode([first], skip_special_tokens=True)
    assert batched == [engine.generate([p], params)[0] for p in PROMPTS]
    assert "length" in {g.finish_reason for g in batched[1:]}


def test_token_budget_splits_batches_without_changing_results(tiny_model, engine, calls):
    params = GenerationParams(max_new_tokens=6)
    expected = engine.generate(PROMPTS, params)
    calls.clear()
    small = TransformersEngine(tiny_model, batch_tokens=64)
    small_calls = []
    real = small.model.generate
    small.model.generate = lambda *a, **k: small_calls.append(1) or real(*a, **k)
    assert small.generate(PROMPTS, params) == expected
    assert len(small_calls) > 1


def test_chat_template_is_applied_when_present(engine, monkeypatch):
    monkeypatch.setattr(
        engine.tokenizer,
        "chat_template",
        "{% for m in messages %}<s>USER {{ m['content'] }}\nASSISTANT {% endfor %}",
    )
    ids = engine.encode_prompt("hello")
    assert engine.tokenizer.decode(ids) == "<s>USER hello\nASSISTANT "


def test_count_tokens_excludes_special_tokens(engine):
    assert engine.count_tokens([]) == []
    (n,) = engine.count_tokens(["Disease"])
    assert n == len(engine.encode_prompt("Disease")) - 1  # no BOS


def test_prompt_longer_than_context_is_a_clear_error(engine):
    with pytest.raises(ValueError, match="context"):
        engine.generate(["a " * 5000], GenerationParams())


def test_parameter_count_must_match(engine):
    with pytest.raises(ValueError, match="parameter sets"):
        engine.generate(["a", "b"], [GenerationParams()])


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="no such model folder"):
        TransformersEngine(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match=r"config\.json"):
        TransformersEngine(tmp_path / "empty")


def test_missing_llm_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "infra.llm.transformers_engine")
    with pytest.raises(ImportError, match=r"pip install -e \.\[llm\]"):
        importlib.import_module("infra.llm.transformers_engine")
