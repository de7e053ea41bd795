"""Hybrid Superfiltering selection: top IFD positives, hashed negatives, ties, per dataset."""

from __future__ import annotations

import math

import pytest

from bioner.training.filter import FilterOptions, Scored, select, summary


def _s(i, ifd, dataset="a", positive=True):
    return Scored(f"{dataset}{i:02d}", dataset, positive, ifd, 1.0)


def test_ifd_is_the_ratio_of_the_losses():
    assert Scored("x", "a", True, 1.0, 4.0).ifd == 0.25
    assert Scored("x", "a", True, 1.0, 0.0).ifd == math.inf


def test_keeps_the_top_fraction_of_positives_by_ifd_in_input_order():
    scores = [_s(i, ifd) for i, ifd in enumerate([0.1, 0.9, 0.5, 0.7, 0.3, 0.8])]
    kept = select(scores, FilterOptions(fraction=0.5, negative_fraction=0.0))
    assert kept == ["a01", "a03", "a05"]


def test_ties_break_on_the_id_and_ifd_at_or_over_the_limit_is_dropped():
    scores = [_s(3, 0.5), _s(1, 0.5), _s(2, 0.5), _s(4, 1.0), _s(5, 1.7)]
    kept = select(scores, FilterOptions(fraction=0.4, negative_fraction=0.0))
    assert kept == ["a01", "a02"]  # 2 of 5; the two IFD >= 1 are not eligible
    everything = select(scores, FilterOptions(fraction=1.0, max_ifd=None))
    assert everything == [s.id for s in scores]


def test_negatives_are_subsampled_by_a_stable_hash():
    negatives = [_s(i, 0.5, positive=False) for i in range(400)]
    kept = select(negatives, FilterOptions(fraction=0.3))
    assert 0.25 < len(kept) / 400 < 0.35
    assert kept == select(list(reversed(negatives)), FilterOptions(fraction=0.3))[::-1]
    assert select(negatives, FilterOptions(fraction=0.3, negative_fraction=1.0)) == [
        s.id for s in negatives
    ]


def test_per_dataset_keeps_the_mix():
    scores = [_s(i, 0.1 + i / 100, "a") for i in range(10)] + [
        _s(i, 0.8 + i / 100, "b") for i in range(10)
    ]
    per = select(scores, FilterOptions(fraction=0.5))
    assert sum(k.startswith("a") for k in per) == 5 and sum(k.startswith("b") for k in per) == 5
    pooled = select(scores, FilterOptions(fraction=0.5, per_dataset=False))
    assert all(k.startswith("b") for k in pooled)
    table = summary(scores, per)
    assert table["a"]["kept"] == 5 and table["b"]["positives_kept"] == 5
    assert table["a"]["mean_ifd_kept"] > table["a"]["mean_ifd_positives"]


def test_fraction_is_checked():
    with pytest.raises(ValueError):
        FilterOptions(fraction=1.5)
