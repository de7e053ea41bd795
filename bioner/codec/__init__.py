"""Output formats of the tagger: encode gold spans to model text, decode model text to spans.

Every format has the same contract: ``encode(text, spans, schema) -> str`` and
``decode(output, text, schema, *, finish_reason=None) -> (spans, issues)``, where decode
never raises on model output and returns exact offsets into ``text``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bioner.codec import json_entities, symbolic
from bioner.codec.issues import DecodeIssue, IssueKind
from bioner.labels import EntitySchema
from bioner.records import Span

Encoder = Callable[[str, Iterable[Span], EntitySchema], str]


@dataclass(frozen=True)
class TagFormat:
    """A named output format with its encoder and decoder."""

    name: str
    encode: Encoder
    decode: Callable[..., tuple[list[Span], list[DecodeIssue]]]


TAG_FORMATS: dict[str, TagFormat] = {
    "symbolic": TagFormat("symbolic", symbolic.encode, symbolic.decode),
    "json-entities": TagFormat("json-entities", json_entities.encode, json_entities.decode),
}

__all__ = ["TAG_FORMATS", "DecodeIssue", "IssueKind", "TagFormat"]
