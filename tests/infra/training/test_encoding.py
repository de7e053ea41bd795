"""Training ids: the prompt exactly as the engine encodes it, loss only on the response."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from bioner.labels import DATASETS
from bioner.prompts import build_prompt
from infra.training.encoding import (
    IGNORE_INDEX,
    encode_example,
    encode_prompt,
    encode_response_alone,
)
from infra.training.sft import collate, n_targets

SCHEMA = DATASETS["bc5cdr"].schema
PROMPT = build_prompt("Famotidine-associated delirium.", SCHEMA)
RESPONSE = "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium]."
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture
def chat_tokenizer(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    tok.chat_template = CHAT
    return tok


def test_prompt_ids_are_the_engines(engine):
    assert encode_prompt(engine.tokenizer, PROMPT) == engine.encode_prompt(PROMPT)
    assert encode_prompt(engine.tokenizer, PROMPT)[0] == engine.tokenizer.bos_token_id


def test_prompt_ids_with_a_chat_template_are_the_engines(engine, chat_tokenizer, monkeypatch):
    monkeypatch.setattr(engine, "tokenizer", chat_tokenizer)
    ids = encode_prompt(chat_tokenizer, PROMPT)
    assert ids == engine.encode_prompt(PROMPT)
    assert chat_tokenizer.decode(ids).endswith("<|assistant|>")


def test_masked_positions_are_exactly_the_prompt_tokens(engine):
    tok = engine.tokenizer
    enc = encode_example(tok, PROMPT, RESPONSE)
    prompt_ids = engine.encode_prompt(PROMPT)
    response_ids = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    assert list(enc.input_ids) == [*prompt_ids, *response_ids, tok.eos_token_id]
    assert enc.n_prompt == len(prompt_ids)
    labels = enc.labels
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert labels[len(prompt_ids) :] == [*response_ids, tok.eos_token_id]
    assert tok.decode(labels[len(prompt_ids) : -1]) == RESPONSE


def test_response_alone_starts_with_bos(engine):
    tok = engine.tokenizer
    enc = encode_response_alone(tok, RESPONSE)
    assert enc.input_ids[0] == tok.bos_token_id and enc.n_prompt == 1
    assert enc.input_ids[-1] == tok.eos_token_id


def test_collate_pads_right_and_masks_padding(engine):
    tok = engine.tokenizer
    a = encode_example(tok, PROMPT, RESPONSE)
    b = encode_example(tok, PROMPT, "None")
    batch = collate([a, b], tok.pad_token_id)
    assert batch["input_ids"].shape == (2, len(a))
    assert batch["attention_mask"][1].sum() == len(b)
    assert (batch["labels"][1, len(b) :] == IGNORE_INDEX).all()
    assert batch["input_ids"][1, len(b) :].eq(tok.pad_token_id).all()
    assert (batch["labels"] != IGNORE_INDEX).sum() == n_targets([a, b])
