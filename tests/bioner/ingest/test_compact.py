"""The current-view rule, by hand: versions, ties, deletions, re-additions, duplicates."""

from __future__ import annotations

from collections import Counter

import pytest

from bioner.ingest.compact import FROM_BASE, Event, Where, fold, shard_of

D, T = "document", "tombstone"


def current(view) -> dict[str, tuple[int, int, int]]:
    """id -> (version, ordinal, position) of the current documents."""
    return {i: (v, w.ordinal, w.position) for i, (v, w) in view.documents.items()}


def counts(view) -> dict[int, dict[str, int]]:
    return {o: dict(c) for o, c in view.counts.items() if c}


def test_shard_is_stable_and_spreads():
    # Fixed values: a change here would move every stored document to another shard.
    assert [shard_of(i, 16) for i in ("1", "41576520", "cnki:ZGZL201604012")] == [6, 11, 0]
    assert shard_of("41576520", 1) == 0
    spread = Counter(shard_of(str(i), 16) for i in range(16_000))
    assert set(spread) == set(range(16)) and max(spread.values()) < 1.2 * 1000
    with pytest.raises(ValueError):
        shard_of("1", 0)


def test_highest_version_wins_whatever_the_order():
    view = fold([(1, 1, D, "a", 2), (2, 1, D, "a", 1), (2, 2, D, "b", 1), (3, 1, D, "b", 3)])
    assert current(view) == {"a": (2, 1, 1), "b": (3, 3, 1)}
    # the stale version 1 of input 2 lost to input 1's version 2: superseded, counted on input 2
    assert counts(view) == {2: {"superseded": 1}, 3: {"superseded": 1}}


def test_equal_versions_go_to_the_latest_event():
    view = fold([(1, 5, D, "a", 1), (2, 1, D, "a", 1)])
    assert current(view) == {"a": (1, 2, 1)}
    assert counts(view) == {2: {"superseded": 1}}


def test_duplicates_in_one_input_collapse_to_the_later_one():
    view = fold([(1, 1, D, "a", 1), (1, 2, D, "b", 1), (1, 3, D, "a", 1), (1, 4, D, "a", 1)])
    assert current(view) == {"a": (1, 1, 4), "b": (1, 1, 2)}
    assert counts(view) == {1: {"collapsed": 2}}


def test_a_tombstone_deletes_every_version_and_a_later_document_re_adds():
    view = fold(
        [
            (1, 1, D, "a", 3),
            (2, 1, T, "a", 1),
            (2, 2, T, "z", 1),  # never seen: the deletion is in force all the same
            (3, 1, D, "z", 1),  # re-added
            (3, 2, T, "a", 1),  # deleted again, nothing left to delete
        ]
    )
    assert current(view) == {"z": (1, 3, 1)}
    assert view.tombstones == {"a": Where(3, 2)}
    assert counts(view) == {2: {"deleted": 1}}


def test_a_re_added_document_does_not_compete_with_the_deleted_version():
    view = fold([(1, 1, D, "a", 5), (2, 1, T, "a", 1), (3, 1, D, "a", 1)])
    assert current(view) == {"a": (1, 3, 1)} and view.tombstones == {}


def test_delete_then_re_add_in_the_same_input():
    view = fold([(1, 1, D, "a", 1), (1, 2, T, "a", 1), (1, 3, D, "a", 1)])
    assert current(view) == {"a": (1, 1, 3)}
    assert counts(view) == {1: {"deleted": 1}}


def test_folding_in_two_steps_equals_folding_at_once():
    first = [(1, 1, D, "a", 1), (1, 2, D, "b", 2), (1, 3, T, "c", 1), (1, 4, D, "d", 1)]
    second = [(2, 1, D, "a", 1), (2, 2, D, "b", 1), (2, 3, D, "c", 1), (2, 4, T, "d", 1)]
    once = fold(first + second)
    step = fold(first)
    base_documents = {i: v for i, (v, _) in step.documents.items()}
    then = fold(second, base_documents, step.tombstones)
    assert {i: v for i, (v, _) in then.documents.items()} == {
        i: v for i, (v, _) in once.documents.items()
    }
    assert set(then.tombstones) == set(once.tombstones) == {"d"}
    assert (
        counts(then)
        == {2: {"superseded": 2, "deleted": 1}}
        == {o: c for o, c in counts(once).items() if o == 2}
    )
    # what the second step keeps from its base, and what it takes from the new events
    assert then.documents["b"] == (2, FROM_BASE)
    assert then.new_documents() == {Where(2, 1), Where(2, 3)}
    assert then.new_tombstones() == {Where(2, 4)}


def test_every_document_event_ends_in_exactly_one_place():
    events = [
        (1, 1, D, "a", 1),
        (1, 2, D, "a", 1),
        (1, 3, D, "b", 1),
        (2, 1, D, "b", 2),
        (2, 2, T, "a", 1),
        (3, 1, D, "a", 1),
        (3, 2, D, "c", 1),
    ]
    view = fold(events)
    total = Counter()
    for c in view.counts.values():
        total.update(c)
    documents = sum(e[2] == D for e in events)
    assert documents == 6 == len(view.documents) + sum(total.values())


def test_events_must_come_in_order():
    with pytest.raises(ValueError, match="out of order"):
        fold([Event(2, 1, D, "a"), Event(1, 1, D, "b")])
    with pytest.raises(ValueError, match="out of order"):
        fold([Event(1, 1, D, "a"), Event(1, 1, D, "b")])
    with pytest.raises(ValueError, match="kind"):
        fold([Event(1, 1, "other", "a")])
