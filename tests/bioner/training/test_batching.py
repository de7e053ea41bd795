"""Length-bucketed batch plans: complete, deterministic, per epoch, low padding."""

from __future__ import annotations

import random

import pytest

from bioner.training.batching import accumulation_groups, epoch_plan, token_chunks


def _lengths(n=1000, seed=1):
    rng = random.Random(seed)
    return [rng.randint(10, 500) for _ in range(n)]


def test_every_example_exactly_once():
    lengths = _lengths()
    plan = epoch_plan(lengths, 8, seed=0, epoch=0)
    flat = [i for b in plan for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= 8 for b in plan)


def test_deterministic_and_different_per_epoch_and_seed():
    lengths = _lengths()
    assert epoch_plan(lengths, 8, 0, 0) == epoch_plan(lengths, 8, 0, 0)
    assert epoch_plan(lengths, 8, 0, 0) != epoch_plan(lengths, 8, 0, 1)
    assert epoch_plan(lengths, 8, 0, 0) != epoch_plan(lengths, 8, 1, 0)


def test_buckets_waste_less_padding_than_random_batches():
    lengths = _lengths()

    def padding(plan):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in plan)

    bucketed = epoch_plan(lengths, 8, 0, 0, window=50)
    unsorted = epoch_plan(lengths, 8, 0, 0, window=1)
    assert padding(bucketed) < padding(unsorted) / 5


def test_no_shuffle_keeps_sorted_windows():
    plan = epoch_plan([3, 1, 2, 5, 4], 2, 0, 0, window=10, shuffle=False)
    assert plan == [[1, 2], [0, 4], [3]]


def test_accumulation_groups():
    assert accumulation_groups(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert accumulation_groups(3, 1) == [range(0, 1), range(1, 2), range(2, 3)]
    with pytest.raises(ValueError):
        accumulation_groups(3, 0)
    with pytest.raises(ValueError):
        epoch_plan([1], 0, 0, 0)


def test_token_chunks_cap_the_padded_size_and_keep_every_example():
    lengths = _lengths(64, seed=3)
    for cap in (1, 300, 700, 2000, 10**6):
        chunks = token_chunks(lengths, cap)
        assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
        for c in chunks:  # over the cap only when one example alone is longer
            assert len(c) * max(lengths[i] for i in c) <= cap or len(c) == 1
    assert token_chunks(lengths, None) == [sorted(range(64), key=lambda i: (lengths[i], i))]
    assert len(token_chunks(lengths, 10**6)) == 1
    assert token_chunks([5, 3, 9, 4], 15) == [[1, 3, 0], [2]]
    assert token_chunks([5, 3, 9, 4], 12) == [[1, 3], [0], [2]]
    assert token_chunks([], 10) == []
    with pytest.raises(ValueError):
        token_chunks(lengths, 0)
