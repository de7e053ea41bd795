"""BioSelectTune's JSON output format: ``{"entities": [{"text": ..., "type": ...}, ...]}``.

The format names mentions by their text only, so placement is defined here:

- items are placed per (text, type); the k-th listing of a (text, type) goes to the k-th
  occurrence of that text in the passage, left to right, overlapping occurrences counted;
- an item may carry ``"occurrence": n`` (1-based) to point at a later occurrence; the encoder
  writes it only where the default rule would place the mention elsewhere;
- with ``placement="all"`` every occurrence of each listed (text, type) is tagged, the rule
  of models that list each distinct entity once;
- a text not found verbatim is searched case-, width- and whitespace-insensitively.

Decoding never raises: bad JSON, truncated JSON (complete items are still recovered), items
of the wrong shape, unknown types and unplaceable texts become typed issues.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from bioner.codec.align import Source, find_all, find_normalized
from bioner.codec.issues import DecodeIssue, IssueKind
from bioner.labels import EntitySchema
from bioner.records import Span

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```\s*$")
_ITEM = re.compile(r"\{[^{}\[\]]*\}")


def encode(text: str, spans: Iterable[Span], schema: EntitySchema) -> str:
    """The JSON output for ``text`` with ``spans``, items in text order."""
    ordered = sorted(set(spans))
    known = set(schema.labels)
    occurrences: dict[str, list[int]] = {}
    groups: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for s in ordered:
        if s.end > len(text):
            raise ValueError(f"span {s} outside text of length {len(text)}")
        if s.label not in known:
            raise ValueError(f"label {s.label!r} is not in schema {schema.name}")
        groups[(s.text(text), s.label)].append(s)
    explicit: dict[Span, int] = {}
    for (mention, _), group in groups.items():
        starts = occurrences.setdefault(mention, find_all(text, mention))
        for rank, s in enumerate(group):
            occ = starts.index(s.start)
            if occ != rank:
                explicit[s] = occ + 1
    items: list[dict[str, Any]] = []
    for s in ordered:
        item: dict[str, Any] = {"text": s.text(text), "type": schema.header_of(s.label)}
        if s in explicit:
            item["occurrence"] = explicit[s]
        items.append(item)
    return json.dumps({"entities": items}, ensure_ascii=False)


def decode(
    output: str,
    text: str,
    schema: EntitySchema,
    *,
    finish_reason: str | None = None,
    placement: Literal["ordered", "all"] = "ordered",
) -> tuple[list[Span], list[DecodeIssue]]:
    """Spans (sorted, unique, exact offsets into ``text``) and issues for a JSON output."""
    issues: list[DecodeIssue] = []
    items = _parse(output, finish_reason == "length", issues)
    source = Source(text)
    spans: set[Span] = set()
    taken: dict[tuple[str, str], set[int]] = defaultdict(set)
    pending: list[tuple[int, str, str]] = []  # (item number, mention, label), no occurrence
    for n, item in enumerate(items, 1):
        checked = _check_item(item, n, schema, issues)
        if checked is None:
            continue
        mention, label, occurrence = checked
        ranges = _ranges(source, mention)
        if not ranges:
            issues.append(
                DecodeIssue(IssueKind.UNALIGNED_SPAN, f"item {n}: {mention!r} not in the passage")
            )
            continue
        if placement == "all":
            spans.update(Span(a, b, label) for a, b in ranges)
        elif occurrence is None:
            pending.append((n, mention, label))
        elif 1 <= occurrence <= len(ranges):
            a, b = ranges[occurrence - 1]
            spans.add(Span(a, b, label))
            taken[(mention, label)].add(occurrence - 1)
        else:
            issues.append(
                DecodeIssue(
                    IssueKind.BAD_OCCURRENCE,
                    f"item {n}: occurrence {occurrence} of {mention!r}, "
                    f"which occurs {len(ranges)} time(s)",
                )
            )
    for n, mention, label in pending:
        ranges = _ranges(source, mention)
        used = taken[(mention, label)]
        free = next((i for i in range(len(ranges)) if i not in used), None)
        if free is None:
            issues.append(
                DecodeIssue(
                    IssueKind.BAD_OCCURRENCE,
                    f"item {n}: {mention!r} listed more often than it occurs "
                    f"({len(ranges)}); extra listing ignored",
                )
            )
            continue
        used.add(free)
        a, b = ranges[free]
        spans.add(Span(a, b, label))
    return sorted(spans), issues


def _ranges(source: Source, mention: str) -> list[tuple[int, int]]:
    """Where ``mention`` occurs: verbatim if it does, else normalised matches."""
    exact = find_all(source.text, mention)
    if exact:
        return [(a, a + len(mention)) for a in exact]
    return find_normalized(source, mention)


def _parse(output: str, truncated: bool, issues: list[DecodeIssue]) -> list[Any]:
    """The entity items of an output; recovers complete items from broken JSON."""
    body = _FENCE.sub("", output.strip())
    if not body:
        issues.append(DecodeIssue(IssueKind.EMPTY_OUTPUT, "the model generated nothing"))
        return []
    err: json.JSONDecodeError | None = None
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(body, start)
        except json.JSONDecodeError as e:
            err = e
        else:
            if isinstance(value, dict) and isinstance(value.get("entities"), list):
                return value["entities"]
            if isinstance(value, list):
                return value
    salvaged = []
    for m in _ITEM.finditer(body):
        try:
            salvaged.append(json.loads(m.group(0)))
        except json.JSONDecodeError:
            continue
    kind = IssueKind.TRUNCATED if truncated else IssueKind.INVALID_JSON
    what = f"invalid JSON ({err.msg} at char {err.pos})" if err else "no 'entities' list"
    issues.append(DecodeIssue(kind, f"{what}; {len(salvaged)} complete item(s) recovered"))
    return salvaged


def _check_item(
    item: Any, n: int, schema: EntitySchema, issues: list[DecodeIssue]
) -> tuple[str, str, int | None] | None:
    """(mention, label, occurrence) of a well-formed item, else None with an issue."""
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        issues.append(DecodeIssue(IssueKind.INVALID_JSON, f"item {n} is not {{text, type}}"))
        return None
    mention, type_ = item["text"], item.get("type")
    if not mention.strip():
        issues.append(DecodeIssue(IssueKind.EMPTY_SPAN, f"item {n} has an empty text"))
        return None
    label = schema.resolve(type_) if isinstance(type_, str) else None
    if label is None:
        issues.append(
            DecodeIssue(IssueKind.UNKNOWN_TYPE, f"item {n}: {type_!r} is no type of {schema.name}")
        )
        return None
    occurrence = item.get("occurrence")
    if occurrence is not None and (not isinstance(occurrence, int) or isinstance(occurrence, bool)):
        issues.append(DecodeIssue(IssueKind.BAD_OCCURRENCE, f"item {n}: occurrence not an int"))
        return None
    return mention, label, occurrence
