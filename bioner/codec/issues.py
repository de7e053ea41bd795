"""Typed issues the decoders report instead of raising on model output."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IssueKind(StrEnum):
    """Why (part of) a model output could not be turned into spans as written."""

    EMPTY_OUTPUT = "empty_output"  # nothing at all was generated
    MISSING_HEADER = "missing_header"  # a line without `type:` in front
    UNKNOWN_TYPE = "unknown_type"  # a header that names no type of the schema
    REPEATED_TYPE = "repeated_type"  # a type line seen before (its spans are merged)
    UNBALANCED_CLOSE = "unbalanced_close"  # `]` with no `[` open (ignored)
    UNCLOSED_OPEN = "unclosed_open"  # `[` never closed on its line (span dropped)
    EMPTY_SPAN = "empty_span"  # `[]` or brackets around nothing of the source
    UNALIGNED_SPAN = "unaligned_span"  # span text could not be placed in the source
    COPY_MISMATCH = "copy_mismatch"  # the copy differs from the source (aligned anyway)
    INCOMPLETE_COPY = "incomplete_copy"  # the copy stops before the end of the source
    TRUNCATED = "truncated"  # the output hit the token limit; last line partial
    INVALID_JSON = "invalid_json"  # JSON format: unparsable or wrong shape
    BAD_OCCURRENCE = "bad_occurrence"  # JSON format: occurrence index out of range


#: Kinds that leave spans exactly as the model meant them; the rest lose or move something.
INFORMATIONAL = frozenset({IssueKind.REPEATED_TYPE, IssueKind.COPY_MISMATCH})


@dataclass(frozen=True, slots=True)
class DecodeIssue:
    """One problem found while decoding: what, on which output line (1-based), in words."""

    kind: IssueKind
    message: str
    line: int | None = None

    @property
    def lossy(self) -> bool:
        """True when the issue may have cost a span or moved one."""
        return self.kind not in INFORMATIONAL

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{self.kind}: {where}{self.message}"
