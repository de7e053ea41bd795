"""The rules that turn ingested records into the current view: shards, versions, deletions.

Every input file gets an ordinal when it is first ingested; its records are events ordered by
(ordinal, position). Per id, the current document is the one with the highest ``version``, ties
going to the later event; a tombstone deletes the id (all versions) and a later document brings
it back (PubMed re-adds citations). The rule is a left fold over events, so the state after some
inputs plus the events of newer ones gives the same view as all events at once: that is what
lets a nightly update touch only what changed.

Every document event ends in exactly one of: current, ``collapsed`` (lost to a record of the same
id in the same input), ``superseded`` (lost to a record of the same id in another input: normally
an older version replaced by a newer one), ``deleted`` (removed by a tombstone). Counts are
attributed to the input whose event decided them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Kind = Literal["document", "tombstone"]
#: Ordinal of the state a fold starts from (documents and tombstones already in the view).
BASE = 0


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard of ``doc_id`` among ``n_shards``: stable across runs, machines and Pythons.

    Not ``hash()``: it is salted per process, and a document must never move between shards.
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


class Event(NamedTuple):
    """One record of an input, where it was read: ``(ordinal, position)`` orders all events."""

    ordinal: int
    position: int
    kind: Kind
    id: str
    version: int = 1  # ignored for tombstones


class Where(NamedTuple):
    """The event a current row comes from; :data:`FROM_BASE` for a row of the starting view."""

    ordinal: int
    position: int


#: Where a row of the starting view comes from.
FROM_BASE = Where(BASE, -1)


@dataclass
class View:
    """The current view after a fold: which rows are current, and what the fold changed.

    ``documents`` maps each current id to its version and the event it comes from;
    ``tombstones`` maps each deleted id to the tombstone event in force. ``counts`` holds, per
    ordinal of the folded events, ``collapsed``, ``superseded`` and ``deleted``.
    """

    documents: dict[str, tuple[int, Where]] = field(default_factory=dict)
    tombstones: dict[str, Where] = field(default_factory=dict)
    counts: dict[int, Counter[str]] = field(default_factory=dict)

    def new_documents(self) -> set[Where]:
        """Events whose document rows are current and not already in the starting view."""
        return {w for _, w in self.documents.values() if w.ordinal != BASE}

    def new_tombstones(self) -> set[Where]:
        """Tombstone events now in force that were not in the starting view."""
        return {w for w in self.tombstones.values() if w.ordinal != BASE}


def fold(
    events: Iterable[Event | tuple[int, int, str, str, int]],
    base_documents: Mapping[str, int] | None = None,
    base_tombstones: Collection[str] = (),
) -> View:
    """Apply ``events`` (in (ordinal, position) order) to a starting view; the view after.

    ``base_documents`` maps current ids to their version, ``base_tombstones`` lists the deleted
    ids in force; only the ids that ``events`` touch need to be given. Base ids come back in
    the result (from :data:`FROM_BASE`) unless an event changed them.
    """
    view = View(
        documents={i: (v, FROM_BASE) for i, v in (base_documents or {}).items()},
        tombstones=dict.fromkeys(base_tombstones, FROM_BASE),
    )
    last = FROM_BASE
    for event in events:
        ordinal, position, kind, doc_id, version = event
        here = Where(ordinal, position)
        if here <= last or ordinal == BASE:
            raise ValueError(f"events out of order: {here} after {last}")
        last = here
        counts = view.counts.setdefault(ordinal, Counter())
        current = view.documents.get(doc_id)
        if kind == "tombstone":
            if current is not None:
                del view.documents[doc_id]
                counts["deleted"] += 1
            view.tombstones[doc_id] = here
        elif kind == "document":
            view.tombstones.pop(doc_id, None)  # a document after a deletion re-adds the id
            if current is None:
                view.documents[doc_id] = (version, here)
                continue
            old_version, old = current
            if version >= old_version:
                view.documents[doc_id] = (version, here)
            # The loser is either record; they share an input exactly when ``old`` is of this one.
            counts["collapsed" if old.ordinal == ordinal else "superseded"] += 1
        else:
            raise ValueError(f"unknown event kind {kind!r}")
    return view
