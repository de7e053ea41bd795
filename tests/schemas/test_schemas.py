"""The Arrow schemas and the record dataclasses cannot drift apart."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing

import pyarrow as pa
import pytest

from bioner.codec.issues import DecodeIssue, IssueKind
from bioner.generation import Generation
from bioner.ingest import Tombstone
from bioner.records import Document, Entity, Passage
from schemas import (
    ALL,
    DECODE_ISSUES_V1,
    DOCUMENTS_V1,
    ENTITIES_V1,
    GENERATIONS_V1,
    PASSAGES_V1,
    SCHEMA_KEY,
    TOMBSTONES_V1,
    schema_version,
)

PASSAGE_KEY = {"doc_id": str, "doc_version": int, "passage_index": int}
PROVENANCE = {"model_id": str, "prompt_version": str, "run_id": str}

# schema -> (record class, columns the table adds to the record's fields, with their types)
TABLES = {
    "documents": (DOCUMENTS_V1, Document, {}),
    "tombstones": (TOMBSTONES_V1, Tombstone, {}),
    "passages": (PASSAGES_V1, Passage, {}),
    "generations": (GENERATIONS_V1, Generation, {**PASSAGE_KEY, **PROVENANCE}),
    "decode_issues": (DECODE_ISSUES_V1, DecodeIssue, {**PASSAGE_KEY, "lossy": bool}),
    "entities": (ENTITIES_V1, Entity, {}),
}


def optional(hint: object) -> tuple[object, bool]:
    """(inner type, whether None is allowed) of a type hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def compatible(hint: object, arrow: pa.DataType) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in args) and pa.types.is_string(arrow)
    if origin is tuple and args[-1] is Ellipsis:
        item = args[0]
        if typing.get_origin(item) is tuple:  # key-value pairs
            return pa.types.is_map(arrow) and all(
                compatible(a, t)
                for a, t in zip(
                    typing.get_args(item), (arrow.key_type, arrow.item_type), strict=True
                )
            )
        return pa.types.is_list(arrow) and compatible(item, arrow.value_type)
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return pa.types.is_string(arrow)
    checks = {
        bool: pa.types.is_boolean,
        int: pa.types.is_integer,
        float: pa.types.is_floating,
        str: pa.types.is_string,
    }
    return hint in checks and checks[hint](arrow)


@pytest.mark.parametrize("name", TABLES)
def test_columns_match_record_fields_both_ways(name):
    schema, record, extra = TABLES[name]
    hints = typing.get_type_hints(record)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(record)}
    expected = {**fields, **extra}
    assert set(schema.names) == set(expected), f"{name}: columns differ from record fields"
    for column, hint in expected.items():
        inner, nullable = optional(hint)
        field = schema.field(column)
        assert compatible(inner, field.type), f"{name}.{column}: {field.type} vs {hint}"
        assert field.nullable == nullable, f"{name}.{column}: nullable={field.nullable} vs {hint}"


def test_every_schema_is_tested_and_tagged_with_a_version():
    assert {schema_version(s) for s in ALL} == {f"{n}/1" for n in TABLES}
    assert all(SCHEMA_KEY in s.metadata for s in ALL)


SAMPLES = {
    "documents": Document(
        "1", "A text.", 2, "A", "en", "f.xml", (("journal", "J"), ("year", "2024"))
    ),
    "tombstones": Tombstone("9", "u.xml"),
    "passages": Passage("1", 0, 0, 7, "A text.", 2, "en"),
    "entities": Entity(
        "1", 2, 0, 2, 6, "text", "Disease", "m@1", "symbolic-v1", "r1", 0.5, True, ("truncated",)
    ),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_records_round_trip_through_arrow(name):
    schema, record, _ = TABLES[name]
    sample = SAMPLES[name]
    table = pa.Table.from_pylist([dataclasses.asdict(sample)], schema=schema)
    (row,) = table.to_pylist()
    if name == "documents":
        row["metadata"] = tuple(tuple(kv) for kv in row["metadata"])
    if name == "entities":
        row["issues"] = tuple(row["issues"])
    assert record(**row) == sample


def test_issue_kind_values_fit_the_kind_column():
    issue = DecodeIssue(IssueKind.TRUNCATED, "cut", 3)
    row = {"doc_id": "1", "doc_version": 1, "passage_index": 0, "lossy": issue.lossy}
    row |= {"kind": str(issue.kind), "message": issue.message, "line": issue.line}
    assert (
        pa.Table.from_pylist([row], schema=DECODE_ISSUES_V1).to_pylist()[0]["kind"] == "truncated"
    )
