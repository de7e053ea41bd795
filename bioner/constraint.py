"""Copy-constrained decoding of the symbolic format: what a valid answer to one passage can be.

The symbolic answer is the passage itself with brackets and type headers inserted, so at every
point only a few continuations are valid: the next character of the (escaped) passage, ``[``,
``]``, the end of a type line, a type header, or the end. :class:`SymbolicTarget` describes the
answers valid for one passage; :class:`CopyAutomaton` walks them byte by byte (UTF-8), so a
backend can check any token's bytes, whatever the tokenizer's boundaries, and restrict the
model to valid answers. The valid answers are:

* ``None`` alone (no entity), or
* one or more lines ``Header: copy`` joined by ``\\n``, headers in schema order (a type may
  repeat, up to ``max_lines_per_type`` lines, for spans that cross each other), where ``copy``
  is the escaped passage with balanced brackets inserted at character boundaries (never inside
  an escape such as ``\\[``), nested at most ``max_depth`` deep, no empty ``[]``, and at least
  one bracketed entity per line.

Every valid answer decodes exactly (no alignment needed), and the set is finite, so a
constrained model always stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from bioner.codec.symbolic import NO_ENTITIES, escape_passage
from bioner.labels import EntitySchema

HEADER_SEPARATOR = ": "


@dataclass(frozen=True, slots=True)
class SymbolicTarget:
    """The valid symbolic answers for one passage: its text and the schema's headers, in order."""

    passage: str
    headers: tuple[str, ...]
    max_depth: int = 4
    max_lines_per_type: int = 2

    def __post_init__(self) -> None:
        if not self.headers:
            raise ValueError("a symbolic target needs at least one header")
        if self.max_depth < 1 or self.max_lines_per_type < 1:
            raise ValueError("max_depth and max_lines_per_type must be >= 1")

    @classmethod
    def of(cls, passage: str, schema: EntitySchema, **options: int) -> SymbolicTarget:
        """The target for ``passage`` tagged with ``schema``'s types."""
        return cls(passage, tuple(t.header for t in schema.types), **options)

    @property
    def copy(self) -> str:
        """The passage as an answer line copies it: escaped, on one line."""
        return escape_passage(self.passage)

    @property
    def none(self) -> str:
        return NO_ENTITIES
