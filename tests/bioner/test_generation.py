"""Generation parameters and the output-length heuristic of bioner.generation."""

from __future__ import annotations

import pytest

from bioner.generation import Generation, GenerationParams, max_new_tokens_for


def test_defaults_are_greedy():
    params = GenerationParams()
    assert params.greedy and params.temperature == 0
    assert params.with_max_new_tokens(7) == GenerationParams(max_new_tokens=7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"top_p": 0},
        {"top_p": 1.5},
        {"seed": -1},
    ],
)
def test_invalid_params(kwargs):
    with pytest.raises(ValueError):
        GenerationParams(**kwargs)


def test_generation_validates_finish_reason():
    with pytest.raises(ValueError):
        Generation("x", 1, 1, "eos")  # type: ignore[arg-type]


def test_limit_grows_with_passage_and_types_and_respects_cap():
    # 3 types x (header 4 + ": " 2 + passage 10 + brackets 5 + newline 1) + 4
    assert max_new_tokens_for(10, 3, header_tokens=4) == 3 * 22 + 4
    assert max_new_tokens_for(20, 3) > max_new_tokens_for(10, 3)
    assert max_new_tokens_for(10, 6) > max_new_tokens_for(10, 3)
    assert max_new_tokens_for(10, 3, cap=16) == 16
    with pytest.raises(ValueError):
        max_new_tokens_for(10, 0)
