"""What a corpus reader yields besides documents: deletions and unusable records."""

from __future__ import annotations

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
