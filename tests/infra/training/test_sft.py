"""Supervised fine-tuning with a tiny model: learning, resume, time budget, LoRA, the marker."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from bioner.generation import GenerationParams
from bioner.labels import DATASETS
from bioner.training.data import BuildOptions, examples_of
from infra.llm.local import MARKER, check_model_dir, marker
from infra.llm.transformers_engine import TransformersEngine
from infra.training.data import write_examples
from infra.training.sft import (
    SFTConfig,
    detect_lora_targets,
    latest_checkpoint,
    load_examples,
    train,
)


def _config(tiny_model, data_dir, out, **kw):
    base = {
        "model": str(tiny_model),
        "data": str(data_dir),
        "out": str(out),
        "batch_size": 2,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "save_every": 0,
        "threads": 1,
        "log_every": 0,
    }
    return SFTConfig(**{**base, **kw})


def _weights(folder):
    return load_file(folder / "model.safetensors")


def test_training_learns_the_examples_and_the_engine_reproduces_them(
    tiny_model, data_dir, examples, tmp_path
):
    out = tmp_path / "m"
    result = train(_config(tiny_model, data_dir, out, max_steps=40))
    assert result.stopped == "max_steps" and result.steps == 40
    assert result.losses[-1] < result.losses[0] / 20
    check_model_dir(out)
    engine = TransformersEngine(out)
    generations = engine.generate([e.prompt for e in examples], GenerationParams(max_new_tokens=80))
    assert [g.text for g in generations] == [e.response for e in examples]
    assert all(g.finish_reason == "stop" for g in generations)


def test_marker_records_data_config_and_time(tiny_model, data_dir, tmp_path):
    out = tmp_path / "m"
    train(_config(tiny_model, data_dir, out, max_steps=2))
    info = marker(out)
    assert info["trained"] is True and info["kind"] == "bioner-sft"
    assert info["data"]["examples"] == 4 and info["data"]["examples_per_dataset"] == {"bc5cdr": 4}
    assert info["config"]["max_steps"] == 2 and info["steps"] == 2
    assert info["training_time_s"] >= 0 and isinstance(info["command"], list)
    assert info["base_model"].startswith("tiny@")


@pytest.mark.parametrize("lora", [False, True])
def test_resume_gives_the_same_model_as_an_uninterrupted_run(tiny_model, data_dir, tmp_path, lora):
    kw = {"max_steps": 6, "batch_size": 1, "grad_accum": 2, "lora": lora, "lora_dropout": 0.1}
    whole = train(_config(tiny_model, data_dir, tmp_path / "a", **kw))
    first = train(_config(tiny_model, data_dir, tmp_path / "b", **kw), stop_after_steps=2)
    assert first.stopped == "interrupted" and latest_checkpoint(tmp_path / "b") is not None
    second = train(_config(tiny_model, data_dir, tmp_path / "b", **kw), resume=True)
    assert second.losses == whole.losses
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_token_cap_splits_batches_without_changing_the_update(
    tiny_model, data_dir, tmp_path, monkeypatch
):
    from infra.training import sft

    padded: list[int] = []
    collate = sft.collate

    def spy(batch, pad_id):
        tensors = collate(batch, pad_id)
        padded.append(tensors["input_ids"].numel())
        return tensors

    monkeypatch.setattr(sft, "collate", spy)
    kw = {"max_steps": 3, "batch_size": 4}
    whole = train(_config(tiny_model, data_dir, tmp_path / "a", **kw))
    assert len(padded) == 3
    cap = min(padded) - 1  # every batch of 4 is over it
    padded.clear()
    split = train(_config(tiny_model, data_dir, tmp_path / "b", max_batch_tokens=cap, **kw))
    assert len(padded) > 3 and max(padded) <= cap
    assert split.losses == pytest.approx(whole.losses, rel=1e-5)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    # Adam turns float-rounding differences of tiny gradients into steps well under lr (3e-3)
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert marker(tmp_path / "b")["config"]["max_batch_tokens"] == cap


def test_epoch_budget_and_bucketed_batches(tiny_model, data_dir, tmp_path):
    result = train(_config(tiny_model, data_dir, tmp_path / "m", epochs=2, batch_size=3))
    # 4 examples, batches of 3 -> 2 batches an epoch, 2 epochs
    assert result.stopped == "completed" and result.steps == 4 and result.examples_seen == 8


def test_time_budget_stops_cleanly_and_resume_continues(tiny_model, data_dir, tmp_path):
    out = tmp_path / "m"
    cfg = _config(tiny_model, data_dir, out, max_steps=50, time_budget_s=1e-3)
    stopped = train(cfg)
    assert stopped.stopped == "time_budget" and stopped.steps == 1
    assert marker(out)["stopped"] == "time_budget"
    check_model_dir(out)
    done = train(_config(tiny_model, data_dir, out, max_steps=50, time_budget_s=600), resume=True)
    assert done.steps == 50 and done.stopped == "max_steps" and len(done.losses) == 50


def test_lora_saves_the_adapter_and_a_merged_model(tiny_model, data_dir, tmp_path):
    out = tmp_path / "m"
    train(_config(tiny_model, data_dir, out, max_steps=3, lora=True, lora_r=4))
    assert (out / "adapter" / "adapter_config.json").is_file()
    targets = json.loads((out / "adapter" / "adapter_config.json").read_text())["target_modules"]
    assert set(targets) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    merged = _weights(out)
    assert not any("lora" in k for k in merged)
    base = _weights(tiny_model)
    assert merged.keys() == base.keys()
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"],
        base["model.layers.0.self_attn.q_proj.weight"],
    )
    assert marker(out)["kind"] == "bioner-sft-lora" and marker(out)["merged"] is True
    TransformersEngine(out)  # loads as a plain model


def test_lora_targets_for_bert_like_names():
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.query = torch.nn.Linear(2, 2)
            self.key = torch.nn.Linear(2, 2)
            self.value = torch.nn.Linear(2, 2)
            self.dense = torch.nn.Linear(2, 2)

    assert detect_lora_targets(Attn()) == ["query", "key", "value", "dense"]
    with pytest.raises(ValueError, match="target"):
        detect_lora_targets(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_refusals(tiny_model, data_dir, tmp_path):
    out = tmp_path / "m"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_config(tiny_model, data_dir, out, max_steps=2), resume=True)
    train(_config(tiny_model, data_dir, out, max_steps=2))
    with pytest.raises(FileExistsError, match="checkpoints"):
        train(_config(tiny_model, data_dir, out, max_steps=2))
    with pytest.raises(ValueError, match="lr"):
        train(_config(tiny_model, data_dir, out, max_steps=2, lr=1e-5), resume=True)
    with pytest.raises(ValueError, match="max_length"):
        train(_config(tiny_model, data_dir, tmp_path / "n", max_steps=2, max_length=10))
    with pytest.raises(ValueError, match="no training examples"):
        train(_config(tiny_model, data_dir, tmp_path / "o", max_steps=2, datasets=("ncbi",)))


def test_too_long_examples_are_skipped_and_counted(tiny_model, data_dir, examples, tmp_path):
    from infra.training.encoding import encode_example
    from infra.training.sft import load_tokenizer

    tok = load_tokenizer(tiny_model)
    lengths = sorted(len(encode_example(tok, e.prompt, e.response)) for e in examples)
    longer = sum(n > lengths[1] for n in lengths)  # all but the shortest two, less ties
    assert longer >= 1
    result = train(
        _config(tiny_model, data_dir, tmp_path / "m", max_steps=1, max_length=lengths[1])
    )
    assert result.skipped_too_long == longer
    assert marker(tmp_path / "m")["data"]["skipped_too_long"] == longer
    assert (tmp_path / "m" / MARKER).is_file()


@pytest.mark.parametrize(
    ("precision", "lora"), [("bf16-mixed", True), ("bf16", True), ("bf16", False)]
)
def test_gpu_style_settings_run_on_cpu(tiny_model, data_dir, tmp_path, precision, lora):
    """bf16 weights or autocast, gradient checkpointing, LoRA: the 7B-on-GPU settings."""
    cfg = _config(
        tiny_model,
        data_dir,
        tmp_path / "m",
        max_steps=2,
        precision=precision,
        gradient_checkpointing=True,
        lora=lora,
    )
    result = train(cfg)
    assert result.steps == 2 and all(math.isfinite(x) for x in result.losses)
    check_model_dir(tmp_path / "m")


def test_marker_records_the_prompt_and_the_engine_prompts_so(tiny_model, documents, tmp_path):
    # A model trained on compact prompts is prompted compactly by the engine that loads it;
    # data mixing two prompt versions is refused before any step.
    from bioner.prompts import COMPACT_PROMPT_VERSION, PROMPT_VERSION

    compact = list(
        examples_of(
            documents, DATASETS["bc5cdr"], "toy/train", BuildOptions(prompt=COMPACT_PROMPT_VERSION)
        )
    )
    assert all(e.prompt.startswith("Types: Chemical, Disease\n") for e in compact)
    write_examples(compact, tmp_path / "data" / "train.jsonl")
    out = tmp_path / "m"
    train(_config(tiny_model, tmp_path / "data", out, max_steps=1))
    assert marker(out)["prompt"] == COMPACT_PROMPT_VERSION
    assert TransformersEngine(out).prompt_version == COMPACT_PROMPT_VERSION
    assert TransformersEngine(tiny_model).prompt_version == PROMPT_VERSION
    plain = list(examples_of(documents, DATASETS["bc5cdr"], "toy/train", BuildOptions()))
    write_examples(compact + plain, tmp_path / "mixed" / "train.jsonl")
    with pytest.raises(ValueError, match="2 prompt versions"):
        train(_config(tiny_model, tmp_path / "mixed", tmp_path / "m2", max_steps=1))


def test_repeat_up_weights_a_dataset_and_refuses_what_it_cannot_mean(
    tiny_model, data_dir, examples, tmp_path
):
    (name, count), *_ = Counter(e.dataset for e in examples).most_common()
    once = load_examples(_config(tiny_model, data_dir, tmp_path / "m"))
    thrice = load_examples(_config(tiny_model, data_dir, tmp_path / "m", repeat={name: 3}))
    assert len(thrice) == len(once) + 2 * count
    assert Counter(e.dataset for e in thrice)[name] == 3 * count
    assert Counter(e for e in thrice if e.dataset != name) == Counter(
        e for e in once if e.dataset != name
    )
    with pytest.raises(ValueError, match="no training examples here: nosuchset"):
        load_examples(_config(tiny_model, data_dir, tmp_path / "m", repeat={"nosuchset": 2}))
    with pytest.raises(ValueError, match="whole numbers >= 1"):
        _config(tiny_model, data_dir, tmp_path / "m", repeat={name: 0})
    # A resumed run must repeat as the run it resumes did.
    out = tmp_path / "r"
    train(_config(tiny_model, data_dir, out, max_steps=2, save_every=1, repeat={name: 2}))
    with pytest.raises(ValueError, match=r"settings differ: .*repeat"):
        train(_config(tiny_model, data_dir, out, max_steps=3, save_every=1), resume=True)
