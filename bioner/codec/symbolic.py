"""The paper's symbolic tagging format: one line per entity type, the passage copied with
``[brackets]`` around each entity of that type.

Example, schema BC5CDR, passage ``Famotidine-associated delirium.``::

    Chemical: [Famotidine]-associated delirium.
    Disease: Famotidine-associated [delirium].

Rules of the format as this module writes it:

- types in schema order, a line only for types that have entities; ``None`` when no type has;
- the header is the type's ``header`` followed by ``: `` (a model may write ``：`` or no space);
- nested entities of one type nest their brackets (``[[breast] cancer]``); spans of one type
  that cross each other cannot nest, so they go on a repeated line of the same type;
- the copy escapes the source's own brackets and backslashes (``\\[3H\\]thymidine``) so tags
  are never ambiguous; line breaks of the source are written as spaces.

Decoding never raises. It aligns every line's copy back to the source (see ``align``) and
returns spans with exact source offsets plus typed issues for what it could not place.
Unescaped source brackets written by a model (``[[3H]thymidine]``) are recognised where the
source has a bracket at that place; when a tag and a literal bracket could be read either
way, the tag is taken as the outer one (the entity includes the literal bracket).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from bioner.codec.align import Source, align_fuzzy, flat_copy
from bioner.codec.issues import DecodeIssue, IssueKind
from bioner.labels import EntitySchema
from bioner.records import Span

NO_ENTITIES = "None"
_NO_ENTITY_ANSWERS = frozenset({"none", "无", "没有", "无实体", "n/a"})
_HEADER = re.compile(r"[ \t]*([^:：\[\]\n]{1,64}?)[ \t]*[:：]")
_ESCAPE = str.maketrans({"\\": "\\\\", "[": "\\[", "]": "\\]", "\n": " ", "\r": " "})
_OPEN, _CLOSE = "[", "]"


def escape_passage(text: str) -> str:
    """``text`` as an answer line copies it: ``\\ [ ]`` escaped, line breaks as spaces."""
    return text.translate(_ESCAPE)


# --------------------------------------------------------------------------- encode


def encode(text: str, spans: Iterable[Span], schema: EntitySchema) -> str:
    """The symbolic output for ``text`` with ``spans`` (gold), types in schema order.

    Raises ValueError for spans outside the text or labels the schema does not have:
    gold data must be right before it becomes training data.
    """
    by_label: dict[str, list[Span]] = defaultdict(list)
    known = set(schema.labels)
    for s in set(spans):
        if s.end > len(text):
            raise ValueError(f"span {s} outside text of length {len(text)}")
        if s.label not in known:
            raise ValueError(f"label {s.label!r} is not in schema {schema.name}")
        if not s.text(text).strip():
            raise ValueError(f"span {s} covers only whitespace")
        by_label[s.label].append(s)
    lines = []
    for t in schema.types:
        for layer in _laminar_layers(by_label.get(t.label, [])):
            lines.append(f"{t.header}: {_bracket(text, layer)}")
    return "\n".join(lines) if lines else NO_ENTITIES


def _crosses(a: Span, b: Span) -> bool:
    return a.start < b.start < a.end < b.end or b.start < a.start < b.end < a.end


def _laminar_layers(spans: list[Span]) -> list[list[Span]]:
    """Split spans into layers in which any two spans nest or are disjoint (first fit)."""
    layers: list[list[Span]] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        for layer in layers:
            if not any(_crosses(s, o) for o in layer):
                layer.append(s)
                break
        else:
            layers.append([s])
    return layers


def _bracket(text: str, spans: list[Span]) -> str:
    """``text`` escaped, with ``[``/``]`` inserted around each span of a laminar set."""
    opens: dict[int, list[Span]] = defaultdict(list)
    closes: dict[int, list[Span]] = defaultdict(list)
    for s in spans:
        opens[s.start].append(s)
        closes[s.end].append(s)
    out: list[str] = []
    cuts = sorted(set(opens) | set(closes) | {0, len(text)})
    for a, b in zip(cuts, [*cuts[1:], None], strict=True):
        # At one position: close what ends here (innermost first), then open (outermost first).
        out.append(_CLOSE * len(closes.get(a, ())))
        out.append(_OPEN * len(opens.get(a, ())))
        if b is not None:
            out.append(text[a:b].translate(_ESCAPE))
    return "".join(out)


# --------------------------------------------------------------------------- decode


def decode(
    output: str,
    text: str,
    schema: EntitySchema,
    *,
    finish_reason: str | None = None,
) -> tuple[list[Span], list[DecodeIssue]]:
    """Spans (sorted, unique, exact offsets into ``text``) and issues for a model ``output``.

    ``finish_reason="length"`` says the output was cut at the token limit: the last line's
    unclosed brackets are then reported as truncation rather than as model errors.
    """
    issues: list[DecodeIssue] = []
    truncated = finish_reason == "length"
    stripped = output.strip()
    if not stripped:
        issues.append(DecodeIssue(IssueKind.EMPTY_OUTPUT, "the model generated nothing"))
        if truncated:
            issues.append(DecodeIssue(IssueKind.TRUNCATED, "token limit hit before any output"))
        return [], issues
    if stripped.casefold() in _NO_ENTITY_ANSWERS:
        return [], issues

    source = Source(text)
    lines = output.split("\n")
    last = max(i for i, ln in enumerate(lines) if ln.strip())
    spans: set[Span] = set()
    seen: set[str] = set()
    for i, raw in enumerate(lines):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        lineno = i + 1
        cut_here = truncated and i == last
        m = _HEADER.match(line)
        if m is None:
            kind = IssueKind.TRUNCATED if cut_here else IssueKind.MISSING_HEADER
            issues.append(DecodeIssue(kind, f"no 'type:' header in {_clip(line)}", lineno))
            continue
        name = m.group(1)
        label = schema.resolve(name)
        if label is None:
            if name.strip().casefold() in _NO_ENTITY_ANSWERS:
                continue
            issues.append(
                DecodeIssue(IssueKind.UNKNOWN_TYPE, f"{name!r} is no type of {schema.name}", lineno)
            )
            continue
        if label in seen:
            issues.append(
                DecodeIssue(IssueKind.REPEATED_TYPE, f"{label} again; spans merged", lineno)
            )
        seen.add(label)
        body = line[m.end() :]
        if body.startswith(" "):
            body = body[1:]
        spans.update(_decode_line(body, source, label, lineno, cut_here, issues))
    return sorted(spans), issues


def _clip(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


_TOKEN = re.compile(r"\\[\[\]\\]|[\[\]]")


def _scan(body: str) -> tuple[str, list[tuple[int, str, bool]]]:
    """The copy without brackets, and the brackets as (gap, char, escaped) events.

    A gap ``g`` is the position before copy character ``g``. Escaped brackets are literal
    copies of source brackets; unescaped ones are tags unless the source says otherwise.
    A backslash before anything else is an ordinary character.
    """
    parts: list[str] = []
    events: list[tuple[int, str, bool]] = []
    pos = n = 0
    for m in _TOKEN.finditer(body):
        seg = body[pos : m.start()]
        parts.append(seg)
        n += len(seg)
        tok = m.group()
        if tok == "\\\\":
            parts.append("\\")
            n += 1
        elif len(tok) == 2:
            events.append((n, tok[1], True))
        else:
            events.append((n, tok, False))
        pos = m.end()
    parts.append(body[pos:])
    return "".join(parts), events


@dataclass(frozen=True, slots=True)
class _Piece:
    """A run of copy characters or one literal bracket between tags, as the source sees it.

    ``first``/``last`` are the source indices of its first/last aligned character (None if
    nothing aligned); ``content`` counts its non-space characters, ``placed`` those aligned.
    """

    text: str
    first: int | None
    last: int | None
    content: int
    placed: int


def _run(copy: str, fc: str, mapping: list[int | None], a: int, b: int, exact: bool) -> _Piece:
    """The piece for copy characters ``a:b``."""
    if exact:  # every character aligned, whitespace included
        content = (b - a) - fc.count(" ", a, b)
        return _Piece(copy[a:b], mapping[a], mapping[b - 1], content, content)
    anchored = [m for m in mapping[a:b] if m is not None]
    content = placed = 0
    for c, m in zip(copy[a:b], mapping[a:b], strict=True):
        if not c.isspace():
            content += 1
            placed += m is not None
    return _Piece(
        copy[a:b],
        anchored[0] if anchored else None,
        anchored[-1] if anchored else None,
        content,
        placed,
    )


def _decode_line(
    body: str,
    source: Source,
    label: str,
    lineno: int,
    cut_here: bool,
    issues: list[DecodeIssue],
) -> list[Span]:
    copy, events = _scan(body)
    flat, flat_idx = source.flat
    fc = flat_copy(copy)
    exact = flat.startswith(fc)
    if exact:
        # The common case: an exact copy (or a prefix of one). Whitespace maps too, so the
        # offsets are exactly what the model bracketed.
        mapping: list[int | None] = list(flat_idx[: len(copy)])
        complete = not flat[len(fc) :].strip()
    else:
        mapping, unmatched = align_fuzzy(copy, source)
        mapped = [m for m in mapping if m is not None]
        complete = bool(mapped) and mapped[-1] >= source.last_content
        issues.append(
            DecodeIssue(
                IssueKind.COPY_MISMATCH,
                f"copy differs from the source ({unmatched} unmatched characters); aligned",
                lineno,
            )
        )
    if not complete:
        if cut_here:
            issues.append(DecodeIssue(IssueKind.TRUNCATED, "line cut at the token limit", lineno))
        else:
            issues.append(
                DecodeIssue(IssueKind.INCOMPLETE_COPY, "copy stops before the passage ends", lineno)
            )

    # The line as a sequence in output order: "[" and "]" for tags, pieces for the rest.
    items: list[str | _Piece] = []
    prev = 0
    for gap, group in groupby(events, key=lambda e: e[0]):
        if gap > prev:
            items.append(_run(copy, fc, mapping, prev, gap, exact))
        prev = gap
        items.extend(_resolve_gap([(ch, esc) for _, ch, esc in group], gap, mapping, source))
    if prev < len(copy):
        items.append(_run(copy, fc, mapping, prev, len(copy), exact))

    spans: list[Span] = []
    stack: list[int] = []
    for pos, item in enumerate(items):
        if item == _OPEN:
            stack.append(pos)
        elif item == _CLOSE:
            if not stack:
                issues.append(DecodeIssue(IssueKind.UNBALANCED_CLOSE, "']' with no '['", lineno))
                continue
            span = _span_of(items[stack.pop() + 1 : pos], label, lineno, issues)
            if span is not None:
                spans.append(span)
    if stack:
        kind_ = IssueKind.TRUNCATED if cut_here else IssueKind.UNCLOSED_OPEN
        issues.append(DecodeIssue(kind_, f"{len(stack)} '[' never closed; dropped", lineno))
    return spans


def _span_of(
    inside: list[str | _Piece], label: str, lineno: int, issues: list[DecodeIssue]
) -> Span | None:
    """The span covered by the pieces between a tag pair, or None with an issue."""
    pieces = [p for p in inside if isinstance(p, _Piece)]
    firsts = [p.first for p in pieces if p.first is not None]
    lasts = [p.last for p in pieces if p.last is not None]
    content = sum(p.content for p in pieces)
    placed = sum(p.placed for p in pieces)
    # A span counts as placed when most of what it brackets was found in the source; a
    # stray one-letter match inside an invented word does not place it.
    if not firsts or not content or placed * 2 < content:
        shown = "".join(p if isinstance(p, str) else p.text for p in inside)
        kind = IssueKind.UNALIGNED_SPAN if content else IssueKind.EMPTY_SPAN
        issues.append(DecodeIssue(kind, f"[{shown}] does not match the source text", lineno))
        return None
    return Span(firsts[0], lasts[-1] + 1, label)


def _resolve_gap(
    events: list[tuple[str, bool]],
    gap: int,
    mapping: list[int | None],
    source: Source,
) -> list[str | _Piece]:
    """Decide which brackets at one gap are tags and which copy a source bracket."""
    if not source.has_brackets:
        return [ch for ch, esc in events if not esc]  # escapes of nothing are noise
    text = source.text
    prev = next((mapping[k] for k in range(gap - 1, -1, -1) if mapping[k] is not None), None)
    nxt = next((mapping[k] for k in range(gap, len(mapping)) if mapping[k] is not None), None)
    lo = prev + 1 if prev is not None else _run_start(text, nxt)
    hi = nxt if nxt is not None else _run_end(text, lo)
    literals = [(i, text[i]) for i in range(lo, hi) if text[i] in "[]"]
    chosen = _assign_literals(events, literals)
    out: list[str | _Piece] = []
    for e, (ch, esc) in enumerate(events):
        if e in chosen:
            out.append(_Piece(ch, chosen[e], chosen[e], 1, 1))
        elif not esc:
            out.append(ch)
    return out


def _run_start(text: str, end: int | None) -> int:
    """Start of the run of brackets/whitespace just before ``end`` (the start gap)."""
    i = len(text) if end is None else end
    while i > 0 and (text[i - 1] in "[]" or text[i - 1].isspace()):
        i -= 1
    return i


def _run_end(text: str, start: int) -> int:
    """End of the run of brackets/whitespace starting at ``start`` (the end gap)."""
    i = start
    while i < len(text) and (text[i] in "[]" or text[i].isspace()):
        i += 1
    return i


def _assign_literals(
    events: list[tuple[str, bool]], literals: list[tuple[int, str]]
) -> dict[int, int]:
    """Map event index -> source index for the events that are literal source brackets.

    Escaped events are literal by construction. Without escapes, the source brackets at
    this place must appear among the events in order; ``]`` literals are matched as early
    and ``[`` literals as late as possible, so tags end up outside the literal brackets.
    """
    if not literals:
        return {}
    if any(esc for _, esc in events):
        out: dict[int, int] = {}
        li = 0
        for e, (ch, esc) in enumerate(events):
            if esc and li < len(literals) and literals[li][1] == ch:
                out[e] = literals[li][0]
                li += 1
        return out
    chars = [ch for ch, _ in events]
    early = _embed(chars, [c for _, c in literals])
    if early is None:
        return {}
    late_rev = _embed(chars[::-1], [c for _, c in literals][::-1])
    assert late_rev is not None  # an embedding exists, so one from the right does too
    late = [len(chars) - 1 - p for p in late_rev[::-1]]
    pick = [late[i] if c == _OPEN else early[i] for i, (_, c) in enumerate(literals)]
    if any(b <= a for a, b in itertools.pairwise(pick)):
        pick = early
    return {p: literals[i][0] for i, p in enumerate(pick)}


def _embed(seq: list[str], sub: list[str]) -> list[int] | None:
    """Leftmost positions of ``sub`` as a subsequence of ``seq``, or None."""
    pos: list[int] = []
    j = 0
    for i, c in enumerate(seq):
        if j < len(sub) and c == sub[j]:
            pos.append(i)
            j += 1
    return pos if j == len(sub) else None
