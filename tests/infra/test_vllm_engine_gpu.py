"""The real vLLM, wherever it is importable and a CUDA device is there (GPU worker image).

Checks that constrained answers from a real engine decode exactly, and that the stand-in in
tests/infra/fake_vllm has the real signatures (so the CPU tests test the real API).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

from bioner.codec import symbolic
from bioner.codec.grammar import symbolic_regex
from bioner.codec.issues import IssueKind
from bioner.constraint import SymbolicTarget
from bioner.generation import GenerationParams, max_new_tokens_for
from bioner.labels import BC5CDR_SCHEMA, CMEEE_SCHEMA
from bioner.prompts import build_prompt

pytestmark = pytest.mark.gpu

FAKE = Path(__file__).parent / "fake_vllm"


def _real_vllm():
    if getattr(sys.modules.get("vllm"), "__fake__", False):
        pytest.skip("the stand-in vllm is loaded")
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        pytest.skip(f"vLLM is not importable ({e}); install requirements/gpu-worker.txt")


@pytest.fixture(scope="module")
def vllm_engine(tmp_path_factory):
    _real_vllm()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from infra.llm.tiny import build_tiny_model
    from infra.llm.vllm_engine import VLLMEngine

    model = build_tiny_model(tmp_path_factory.mktemp("models") / "m", PASSAGES, seed=0)
    return VLLMEngine(model, gpu_memory_utilization=0.3, max_model_len=2048, enforce_eager=True)


PASSAGES = [
    ("Famotidine-associated delirium.", BC5CDR_SCHEMA),
    ("[3H]thymidine uptake in x\\y cells (n = 3).", BC5CDR_SCHEMA),
    ("患者有高血压病史，给予阿司匹林。", CMEEE_SCHEMA),
]


def test_constrained_answers_from_the_real_engine_decode_exactly(vllm_engine):
    prompts = [build_prompt(p, s) for p, s in PASSAGES]
    targets = [SymbolicTarget.of(p, s) for p, s in PASSAGES]
    passage_tokens = vllm_engine.count_tokens([p for p, _ in PASSAGES])
    params = [
        GenerationParams(max_new_tokens=max_new_tokens_for(n, len(s.types)))
        for n, (_, s) in zip(passage_tokens, PASSAGES, strict=True)
    ]
    results = vllm_engine.generate(prompts, params, targets)
    assert len(results) == len(PASSAGES)
    for (passage, schema), prompt, param, result in zip(
        PASSAGES, prompts, params, results, strict=True
    ):
        # The random model's answers are noise, but the constraint makes every line an exact
        # copy under a known header, in order. The regex does not count brackets, so a random
        # model may leave some unbalanced or around spaces only; those the decoder drops.
        assert result.finish_reason in ("stop", "length"), result
        assert 1 <= result.output_tokens <= param.max_new_tokens
        assert result.prompt_tokens == len(vllm_engine.encode_prompt(prompt))
        _, issues = symbolic.decode(
            result.text, passage, schema, finish_reason=result.finish_reason
        )
        allowed = {
            IssueKind.UNBALANCED_CLOSE,
            IssueKind.UNCLOSED_OPEN,
            IssueKind.EMPTY_SPAN,
            IssueKind.REPEATED_TYPE,
        }
        if result.finish_reason == "length":
            allowed |= {IssueKind.TRUNCATED, IssueKind.INCOMPLETE_COPY}
        assert {i.kind for i in issues} <= allowed, (result.text, issues)
        if result.finish_reason == "stop":
            assert re.fullmatch(symbolic_regex(SymbolicTarget.of(passage, schema)), result.text)
    # A second batch reuses the engine (and its prefix cache) and answers the same.
    assert vllm_engine.generate(prompts, params, targets) == results


def test_limit_hit_is_reported_as_length(vllm_engine):
    passage, schema = PASSAGES[0]
    (result,) = vllm_engine.generate(
        [build_prompt(passage, schema)],
        GenerationParams(max_new_tokens=3),
        [SymbolicTarget.of(passage, schema)],
    )
    if result.finish_reason == "length":
        assert result.output_tokens == 3
    else:
        assert result.finish_reason == "stop" and 1 <= result.output_tokens <= 3


def _names(obj) -> set[str]:
    return {
        p.name
        for p in inspect.signature(obj).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
    }


def _fake_module(name: str):
    sys.path.insert(0, str(FAKE))
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] == "vllm"}
    try:
        return importlib.import_module(name)
    finally:
        for m in [m for m in sys.modules if m.split(".")[0] == "vllm"]:
            del sys.modules[m]
        sys.modules.update(saved)
        sys.path.remove(str(FAKE))


def test_the_stand_in_has_the_real_signatures():
    vllm = _real_vllm()
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.request import LoRARequest
    from vllm.outputs import CompletionOutput
    from vllm.sampling_params import SamplingParams, StructuredOutputsParams

    fake_sp = _fake_module("vllm.sampling_params")
    fake_llm = _fake_module("vllm.entrypoints.llm")
    fake_lora = _fake_module("vllm.lora.request")
    fake_out = _fake_module("vllm.outputs")

    real_sp = set(getattr(SamplingParams, "__struct_fields__", ())) or _names(SamplingParams)
    assert _names(fake_sp.SamplingParams) <= real_sp
    assert _names(fake_sp.StructuredOutputsParams) == _names(StructuredOutputsParams)
    assert _names(fake_llm.LLM.generate) == _names(vllm.LLM.generate)
    engine_args = {f.name for f in dataclasses.fields(EngineArgs)}
    assert _names(fake_llm.LLM.__init__) <= _names(vllm.LLM.__init__) | engine_args
    real_lora = set(getattr(LoRARequest, "__struct_fields__", ())) or _names(LoRARequest)
    assert _names(fake_lora.LoRARequest) <= real_lora
    assert {"lora_name", "lora_int_id", "lora_path"} <= real_lora
    real_out = {f.name for f in dataclasses.fields(CompletionOutput)}
    assert {f.name for f in dataclasses.fields(fake_out.CompletionOutput)} <= real_out
    assert {"prompt_token_ids", "outputs", "request_id"} <= _names(vllm.RequestOutput.__init__)
    # The stand-in copies the pinned version: moving the pin means checking it again.
    assert vllm.__version__ == _fake_module("vllm").__version__
