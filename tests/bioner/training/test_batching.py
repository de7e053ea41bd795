"""Length-bucketed batch plans: complete, deterministic, per epoch, low padding."""

from __future__ import annotations

import random

import pytest

from bioner.training.batching import accumulation_groups, epoch_plan


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
