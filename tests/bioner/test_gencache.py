"""The generation cache key: equal requests, equal keys; any change that matters, another key."""

from __future__ import annotations

import pytest

from bioner.gencache import cache_key, canonical_json, decoding_params
from bioner.generation import GenerationParams

TEXT = "Famotidine is an H2 blocker."
SETTINGS = {"constrained": "true", "dtype": "float32"}


def key(**change: object) -> str:
    args: dict[str, object] = {
        "text": TEXT,
        "model_id": "tiny@0",
        "prompt_version": "symbolic-v1",
        "params": GenerationParams(max_new_tokens=20),
        "schema": "ncbi",
        "settings": SETTINGS,
        "prompt": f"Passage: {TEXT}",
    } | change
    params = decoding_params(args["params"], args["schema"], args["settings"])
    return cache_key(
        args["text"], args["model_id"], args["prompt_version"], params, prompt=args["prompt"]
    )


def test_a_key_is_a_stable_hex_digest():
    assert key() == key()
    assert len(key()) == 32 and int(key(), 16) >= 0
    # Settings are a mapping: their order does not matter.
    assert key(settings=dict(reversed(SETTINGS.items()))) == key()


@pytest.mark.parametrize(
    "change",
    [
        {"text": TEXT + " "},
        {"model_id": "tiny@1"},
        {"prompt_version": "symbolic-v2"},
        {"params": GenerationParams(max_new_tokens=21)},
        {"params": GenerationParams(max_new_tokens=20, temperature=0.5)},
        {"schema": "bc5cdr"},
        {"settings": {**SETTINGS, "constrained": "false"}},
        {"settings": {}},
        {"prompt": "Text: " + TEXT},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change):
    assert key(**change) != key()


def test_decoding_params_are_plain_json():
    params = decoding_params(GenerationParams(max_new_tokens=5, seed=3), "ncbi", {"a": 1})
    assert canonical_json(params) == (
        '{"max_new_tokens":5,"schema":"ncbi","seed":3,"settings":{"a":"1"},'
        '"temperature":0.0,"top_p":1.0}'
    )
