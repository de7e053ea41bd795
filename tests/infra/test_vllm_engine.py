"""VLLMEngine against a stand-in vLLM (tests/infra/fake_vllm) with the pinned version's shapes."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

from bioner.codec import symbolic
from bioner.codec.grammar import EBNF_VERSION, GRAMMAR_VERSION, symbolic_ebnf, symbolic_regex
from bioner.constraint import SymbolicTarget
from bioner.generation import Engine, GenerationParams
from bioner.labels import BC5CDR_SCHEMA
from bioner.prompts import build_prompt
from bioner.records import Span
from infra.llm import BACKENDS, load_engine
from infra.llm.local import ModelFolderError

FAKE = Path(__file__).parent / "fake_vllm"

PASSAGES = [
    "Famotidine-associated delirium.",
    "Cimetidine caused confusion in an elderly patient [case 2].",
    "No entity here.",
]
GOLD = [
    [Span(0, 10, "Chemical"), Span(22, 30, "Disease")],
    [Span(0, 10, "Chemical"), Span(18, 27, "Disease")],
    [],
]
PROMPTS = [build_prompt(p, BC5CDR_SCHEMA) for p in PASSAGES]
TARGETS = [SymbolicTarget.of(p, BC5CDR_SCHEMA) for p in PASSAGES]
ANSWERS = [symbolic.encode(p, g, BC5CDR_SCHEMA) for p, g in zip(PASSAGES, GOLD, strict=True)]


def _drop_vllm_modules() -> None:
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def fake_vllm(monkeypatch):
    """The stand-in first on sys.path, scripted with the answers to PASSAGES."""
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)  # a real vLLM comes back afterwards
    monkeypatch.syspath_prepend(str(FAKE))
    vllm = importlib.import_module("vllm")
    assert vllm.__fake__
    vllm.LLM.instances.clear()
    monkeypatch.setattr(vllm.LLM, "answers", dict(zip(PASSAGES, ANSWERS, strict=True)))
    yield vllm
    _drop_vllm_modules()


@pytest.fixture
def engine(fake_vllm, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    return VLLMEngine(tiny_model, tensor_parallel_size=2)


@pytest.fixture
def adapter(tmp_path) -> Path:
    folder = tmp_path / "my-adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 24, "lora_alpha": 48}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights v1")
    return folder


def test_is_an_engine_with_settings(engine, tiny_model):
    assert isinstance(engine, Engine)
    assert engine.model_id.startswith("tiny@")
    assert engine.settings == {
        "backend": "vllm",
        "constrained": EBNF_VERSION,
        "dtype": "auto",
        "lora": "",
    }


def test_llm_is_built_once_with_prefix_caching_and_tensor_parallel(engine, fake_vllm, tiny_model):
    (llm,) = fake_vllm.LLM.instances
    assert llm.model == str(tiny_model)
    assert llm.kwargs["enable_prefix_caching"] is True
    assert llm.kwargs["tensor_parallel_size"] == 2
    # n-gram speculation by default: the answer copies the prompt's passage
    assert llm.kwargs["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 8,
        "prompt_lookup_min": 1,
        "prompt_lookup_max": 4,
    }
    assert llm.kwargs["enable_lora"] is False
    engine.generate(PROMPTS, GenerationParams())
    engine.generate(PROMPTS[:1], GenerationParams())
    assert fake_vllm.LLM.instances == [llm]  # reused across batches
    assert [len(c["prompts"]) for c in llm.calls] == [3, 1]  # one generate call per batch
    assert all(c["use_tqdm"] is False and c["lora_request"] is None for c in llm.calls)


def test_constrained_answers_decode_exactly_in_input_order(engine, fake_vllm):
    order = [2, 0, 1]
    results = engine.generate(
        [PROMPTS[i] for i in order], GenerationParams(), [TARGETS[i] for i in order]
    )
    (call,) = fake_vllm.LLM.instances[0].calls
    for i, result, sampling in zip(order, results, call["sampling_params"], strict=True):
        assert sampling.structured_outputs.grammar == symbolic_ebnf(TARGETS[i])
        assert sampling.structured_outputs.regex is None
        assert result.text == ANSWERS[i]
        assert result.finish_reason == "stop"
        answer_ids = engine.tokenizer.encode(ANSWERS[i], add_special_tokens=False)
        assert result.output_tokens == len(answer_ids) + 1  # the end-of-sequence token counts
        assert result.prompt_tokens == len(engine.encode_prompt(PROMPTS[i]))
        spans, issues = symbolic.decode(result.text, PASSAGES[i], BC5CDR_SCHEMA)
        assert spans == sorted(GOLD[i]) and not [x for x in issues if x.lossy]


def test_structured_outputs_only_where_a_target_is_given(fake_vllm, engine, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    engine.generate(PROMPTS, GenerationParams(), [TARGETS[0], None, TARGETS[2]])
    sampling = fake_vllm.LLM.instances[0].calls[0]["sampling_params"]
    assert [s.structured_outputs is not None for s in sampling] == [True, False, True]
    engine.generate(PROMPTS, GenerationParams())
    assert all(
        s.structured_outputs is None for s in fake_vllm.LLM.instances[0].calls[1]["sampling_params"]
    )

    free = VLLMEngine(tiny_model, constrained=False)
    assert free.settings["constrained"] == "off"
    free.generate(PROMPTS, GenerationParams(), TARGETS)
    assert all(
        s.structured_outputs is None for s in fake_vllm.LLM.instances[1].calls[0]["sampling_params"]
    )


def test_sampling_params_greedy_by_default_and_per_prompt_limits(engine, fake_vllm):
    params = [GenerationParams(max_new_tokens=n) for n in (7, 300, 40)]
    results = engine.generate(PROMPTS, params, TARGETS)
    sampling = fake_vllm.LLM.instances[0].calls[0]["sampling_params"]
    assert [s.max_tokens for s in sampling] == [7, 300, 40]
    assert all(s.temperature == 0 and s.top_p == 1.0 and s.seed is None for s in sampling)
    assert all(s.n == 1 for s in sampling)
    # The first answer is longer than 7 tokens: cut, and said so.
    assert results[0].finish_reason == "length" and results[0].output_tokens == 7
    assert ANSWERS[0].startswith(results[0].text)
    assert [r.finish_reason for r in results[1:]] == ["stop", "stop"]

    engine.generate(PROMPTS[:1], GenerationParams(temperature=0.5, top_p=0.9, seed=3))
    (s,) = fake_vllm.LLM.instances[0].calls[1]["sampling_params"]
    assert (s.temperature, s.top_p, s.seed) == (0.5, 0.9, 3)


def test_ngram_speculative_decoding_option(fake_vllm, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_model, speculative_ngram_tokens=6, ngram_lookup=(1, 4))
    assert fake_vllm.LLM.instances[0].kwargs["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 6,
        "prompt_lookup_min": 1,
        "prompt_lookup_max": 4,
    }
    assert "speculative" not in engine.settings  # greedy outputs do not depend on it
    with pytest.raises(ValueError, match="ngram_lookup"):
        VLLMEngine(tiny_model, speculative_ngram_tokens=4, ngram_lookup=(5, 2))
    VLLMEngine(tiny_model, speculative_ngram_tokens=None)  # off
    assert fake_vllm.LLM.instances[-1].kwargs["speculative_config"] is None


def test_lora_adapter(fake_vllm, tiny_model, adapter):
    from infra.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_model, lora_dir=adapter)
    (llm,) = fake_vllm.LLM.instances
    assert llm.kwargs["enable_lora"] is True
    assert llm.kwargs["max_lora_rank"] == 32  # rank 24 rounded up to one vLLM accepts
    engine.generate(PROMPTS, GenerationParams(), TARGETS)
    request = llm.calls[0]["lora_request"]
    assert isinstance(request, fake_vllm.lora.request.LoRARequest)
    assert (request.lora_name, request.lora_int_id) == ("my-adapter", 1)
    assert request.lora_path == str(adapter.resolve())
    assert engine.model_id.startswith("tiny@") and "+lora:my-adapter@" in engine.model_id
    assert engine.settings["lora"] and engine.settings["lora"] in engine.model_id

    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")
    retrained = VLLMEngine(tiny_model, lora_dir=adapter)
    assert retrained.model_id != engine.model_id
    assert retrained.settings["lora"] != engine.settings["lora"]


def test_bad_adapter_folder(fake_vllm, tiny_model, tmp_path):
    from infra.llm.vllm_engine import VLLMEngine

    with pytest.raises(ModelFolderError, match="no such adapter"):
        VLLMEngine(tiny_model, lora_dir=tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match=r"adapter_config\.json"):
        VLLMEngine(tiny_model, lora_dir=tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="no adapter weights"):
        VLLMEngine(tiny_model, lora_dir=tmp_path)


def test_chat_template_is_applied_when_present(engine, fake_vllm, monkeypatch):
    monkeypatch.setattr(
        engine.tokenizer,
        "chat_template",
        "{% for m in messages %}<s>USER {{ m['content'] }}\nASSISTANT {% endfor %}",
    )
    engine.generate(["hello"], GenerationParams())
    (prompt,) = fake_vllm.LLM.instances[0].calls[0]["prompts"]
    assert engine.tokenizer.decode(prompt["prompt_token_ids"]) == "<s>USER hello\nASSISTANT "


def test_without_chat_template_the_prompt_gets_bos(engine, fake_vllm):
    engine.generate(["hello"], GenerationParams())
    (prompt,) = fake_vllm.LLM.instances[0].calls[0]["prompts"]
    assert prompt["prompt_token_ids"][0] == engine.tokenizer.bos_token_id
    assert engine.count_tokens(["hello", ""]) == [len(prompt["prompt_token_ids"]) - 1, 0]


def test_failed_requests_raise(engine, fake_vllm, monkeypatch):
    monkeypatch.setattr(fake_vllm.LLM, "finish_reason_override", "abort")
    with pytest.raises(RuntimeError, match="abort"):
        engine.generate(PROMPTS, GenerationParams())


def test_argument_checks(engine):
    assert engine.generate([], GenerationParams()) == []
    with pytest.raises(ValueError, match="parameter sets"):
        engine.generate(PROMPTS, [GenerationParams()])
    with pytest.raises(ValueError, match="targets"):
        engine.generate(PROMPTS, GenerationParams(), TARGETS[:1])
    with pytest.raises(ValueError, match="context"):
        engine.generate(["a " * 5000], GenerationParams())


def test_load_engine_knows_vllm(fake_vllm, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    assert "vllm" in BACKENDS
    engine = load_engine(tiny_model, backend="vllm", speculative_ngram_tokens=3)
    assert isinstance(engine, VLLMEngine)
    assert fake_vllm.LLM.instances[0].kwargs["speculative_config"]["num_speculative_tokens"] == 3


def test_missing_model_folder_is_checked_before_vllm(fake_vllm, tmp_path):
    from infra.llm.vllm_engine import VLLMEngine

    with pytest.raises(ModelFolderError, match="no such model folder"):
        VLLMEngine(tmp_path / "nowhere")
    assert fake_vllm.LLM.instances == []


def test_a_bert_decoder_is_refused_before_vllm(fake_vllm, tiny_model, tmp_path):
    import shutil

    from infra.llm.vllm_engine import VLLMEngine

    folder = tmp_path / "bert-decoder"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "architectures": ["BertLMHeadModel"]})
    )
    with pytest.raises(ModelFolderError, match=r"BERT decoder .* \(--engine transformers\)"):
        VLLMEngine(folder)
    assert fake_vllm.LLM.instances == []


def test_a_prefix_lm_is_refused_before_vllm(fake_vllm, tiny_model, tmp_path):
    # vLLM would run it causally: outputs that look right and are not.
    import shutil

    from infra.llm.vllm_engine import VLLMEngine

    folder = tmp_path / "prefix-llama"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "bioner_attention": "prefix"}))
    with pytest.raises(ModelFolderError, match=r"a prefix-LM .* \(--engine transformers\)"):
        VLLMEngine(folder)
    assert fake_vllm.LLM.instances == []


def test_a_constrained_loss_model_is_refused_unconstrained_before_vllm(
    fake_vllm, tiny_model, tmp_path
):
    # It was never taught to copy: free decoding would break the copy.
    import shutil

    from infra.llm.local import MARKER
    from infra.llm.vllm_engine import VLLMEngine

    folder = tmp_path / "constrained-loss"
    shutil.copytree(tiny_model, folder)
    info = json.loads((folder / MARKER).read_text())
    (folder / MARKER).write_text(json.dumps({**info, "training_loss": "constrained"}))
    with pytest.raises(ValueError, match="constrained loss"):
        VLLMEngine(folder, constrained=False)
    assert fake_vllm.LLM.instances == []
    VLLMEngine(folder)  # constrained: fine


def test_missing_vllm_says_what_to_install(monkeypatch, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    with pytest.raises(ImportError, match=r"requirements/gpu-worker\.txt.*\.\[gpu\]"):
        VLLMEngine(tiny_model)


def test_gpu_requirements_are_pinned_consistently(fake_vllm):
    root = Path(__file__).resolve().parents[2]
    pin = re.search(r"^vllm==(\S+)$", (root / "requirements/gpu-worker.txt").read_text(), re.M)
    assert pin, "requirements/gpu-worker.txt must pin vllm exactly"
    pyproject = (root / "pyproject.toml").read_text()
    assert f'gpu = ["vllm=={pin.group(1)}"]' in pyproject
    assert (
        importlib.import_module("vllm").__version__ == pin.group(1)
        if "vllm" in sys.modules
        else True
    )


def test_regex_form_on_request(fake_vllm, tiny_model):
    from infra.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_model, constraint_form="regex")
    assert engine.settings["constrained"] == GRAMMAR_VERSION
    engine.generate(PROMPTS[:1], GenerationParams(), TARGETS[:1])
    (sampling,) = fake_vllm.LLM.instances[-1].calls[0]["sampling_params"]
    assert sampling.structured_outputs.regex == symbolic_regex(TARGETS[0])
    with pytest.raises(ValueError, match="constraint_form"):
        VLLMEngine(tiny_model, constraint_form="json")
