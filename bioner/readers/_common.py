"""Helpers every reader and writer shares: label mapping, mention checks, JSON, write reports."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bioner.errors import InputError
from bioner.labels import DatasetSpec

#: What a writer had to change or drop to fit its format: reason -> count. Writers add to it
#: when given one, so that nothing is lost without the caller being able to say so.
WriteReport = Counter[str]


def note(report: WriteReport | None, reason: str, n: int = 1) -> None:
    """Count ``n`` occurrences of ``reason`` in ``report`` (if the caller asked for one)."""
    if report is not None and n:
        report[reason] += n


def map_label(
    raw: str,
    dataset: DatasetSpec | None,
    *,
    line: int | None = None,
    record: str | None = None,
) -> str:
    """The label a span gets: ``raw`` itself, or its canonical label in ``dataset``."""
    if not raw:
        raise InputError("empty entity type", line=line, record=record)
    if dataset is None:
        return raw
    label = dataset.map_label(raw)
    if label is None:
        known = ", ".join(sorted({*dataset.label_map, *dataset.schema.labels}))
        raise InputError(
            f"unknown label {raw!r} for dataset {dataset.name} (known: {known})",
            line=line,
            record=record,
        )
    return label


def check_offsets(
    text: str,
    start: int,
    end: int,
    *,
    line: int | None = None,
    record: str | None = None,
) -> None:
    """Raise unless ``[start, end)`` is a non-empty range inside ``text``."""
    if not 0 <= start < end <= len(text):
        raise InputError(
            f"offsets {start}-{end} are not a non-empty range inside the text "
            f"of length {len(text)}",
            line=line,
            record=record,
        )


def check_mention(
    text: str,
    start: int,
    end: int,
    mention: str,
    *,
    line: int | None = None,
    record: str | None = None,
) -> None:
    """Raise unless ``text[start:end]`` is the mention the annotation states."""
    check_offsets(text, start, end, line=line, record=record)
    if text[start:end] != mention:
        raise InputError(
            f"offsets {start}-{end} give {text[start:end]!r} but the annotation says {mention!r}",
            line=line,
            record=record,
        )


def parse_int(
    value: object, what: str, *, line: int | None = None, record: str | None = None
) -> int:
    """``value`` as an int (an int, or a string of digits), else an error naming ``what``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"{what} must be an integer, got {value!r}", line=line, record=record)


def require(
    obj: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    *,
    line: int | None = None,
    record: str | None = None,
) -> Any:
    """``obj[key]`` checked to be of ``kind``; a missing or mistyped field is an InputError."""
    if key not in obj:
        raise InputError(f"missing field {key!r}", line=line, record=record)
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(
            f"field {key!r} must be {names}, got {type(value).__name__}",
            line=line,
            record=record,
        )
    return value


def json_lines(source: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSON-lines text with their 1-based line numbers; blank lines skipped."""
    out = []
    for n, raw in enumerate(source.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", line=n) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", line=n)
        out.append((n, obj))
    return out


def dump_json_lines(objects: list[dict[str, Any]]) -> str:
    """One compact JSON object per line, non-ASCII kept as is (Chinese stays readable)."""
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)
