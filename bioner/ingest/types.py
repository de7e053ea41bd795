"""What a corpus reader yields besides documents: deletions and unusable records."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from bioner.records import Document


@dataclass(frozen=True, slots=True)
class Tombstone:
    """An id the source deleted (PubMed ``DeleteCitation``): every row derived from it goes."""

    id: str
    source: str = ""
    position: int = 0  # 1-based record position in its source file (0: unknown)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("tombstone id must not be empty")


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that could not be used, kept with where it was and why, so nothing is lost."""

    source: str
    position: int  # 1-based record position in the file
    reason: str  # one line a person can act on
    record_id: str = ""  # the id, if one could be read
    line: int | None = None  # line in the file, if known
    raw: str = ""  # the start of the record as read, for inspection (bounded)


#: One item of a reader's stream, in file order.
IngestItem = Document | Tombstone | Quarantined


def id_problem(value: str) -> str:
    """Why ``value`` cannot be a document id, or "" when it can.

    An id must hold something besides spaces and no control or invisible character (NUL,
    other C0/C1 controls, line separators, zero-width and format characters): written raw,
    those break the line- and field-based exports and the tables' readers downstream.
    """
    if not value.strip():
        return "empty id"
    if value.isprintable():
        return ""
    bad = next(c for c in value if not c.isprintable())
    code = f"U+{ord(bad):04X} {unicodedata.name(bad, '')}".rstrip()
    return f"id '{printable(value)}' holds a control character ({code})"


def printable(value: str) -> str:
    """``value`` with each control or invisible character written as its escape (``\\x00``)."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value)
