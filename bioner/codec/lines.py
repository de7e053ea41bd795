"""The JSON lines form of tagger outputs: ``{"id", "text", "output"[, "finish_reason"]}``.

It is what ``bioner convert --to symbolic`` writes (gold turned into training targets) and
what ``bioner decode`` reads (model outputs to turn into spans).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from bioner.errors import InputError


@dataclass(frozen=True, slots=True)
class TaggedLine:
    """One passage and the tagger's (or the encoder's) output for it."""

    id: str
    text: str
    output: str
    finish_reason: str | None = None


def parse_tagged_lines(data: str) -> list[TaggedLine]:
    """Records of a JSON lines file; InputError naming the line for anything malformed."""
    out: list[TaggedLine] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"not JSON ({e.msg} at column {e.colno})", line=n) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", line=n)
        for key in ("id", "text", "output"):
            if not isinstance(obj.get(key), str):
                raise InputError(f"missing or non-string {key!r}", line=n)
        if obj["id"] in seen:
            raise InputError(f"duplicate id {obj['id']!r}", line=n)
        seen.add(obj["id"])
        finish = obj.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            raise InputError("'finish_reason' must be a string", line=n)
        out.append(TaggedLine(obj["id"], obj["text"], obj["output"], finish))
    return out


def dump_tagged_lines(lines: Iterable[TaggedLine]) -> str:
    """JSON lines text of ``lines`` (UTF-8 characters kept, one object per line)."""
    rows = []
    for t in lines:
        obj = {"id": t.id, "text": t.text, "output": t.output}
        if t.finish_reason is not None:
            obj["finish_reason"] = t.finish_reason
        rows.append(json.dumps(obj, ensure_ascii=False))
    return "".join(r + "\n" for r in rows)
