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
from bioner.ingest import Quarantined, Tombstone
from bioner.lexicon import Entry
from bioner.records import Document, Entity, OtherAbstract, Passage, Section
from schemas import (
    ALL,
    CURRENT,
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V1,
    ENTITIES_V2,
    ENTITIES_V3,
    ENTITIES_V4,
    GENERATIONS_V1,
    GENERATIONS_V2,
    INGEST_EVENTS_V1,
    LEXICON_V3,
    PASSAGES_V1,
    QUARANTINE_V1,
    SCHEMA_KEY,
    TOMBSTONES_V2,
    schema_version,
)

PASSAGE_KEY = {"doc_id": str, "doc_version": int, "passage_index": int}
PROVENANCE = {"model_id": str, "prompt_version": str, "run_id": str}

# schema -> (record class, columns the table adds to the record's fields, with their types)
TABLES = {
    "documents": (DOCUMENTS_V2, Document, {}),
    "tombstones": (TOMBSTONES_V2, Tombstone, {}),
    "quarantine": (QUARANTINE_V1, Quarantined, {"run_id": str}),
    "passages": (PASSAGES_V1, Passage, {}),
    "generations": (
        GENERATIONS_V2,
        Generation,
        {
            **PASSAGE_KEY,
            **PROVENANCE,
            "window_start": int,
            "window_end": int,
            "cache_key": str,
            "params": str,
            "cached": bool,
        },
    ),
    "decode_issues": (DECODE_ISSUES_V1, DecodeIssue, {**PASSAGE_KEY, "lossy": bool}),
    "entities": (ENTITIES_V4, Entity, {"reason": str | None}),
    "lexicon": (LEXICON_V3, Entry, {"schema": str, "kind": str}),
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
    if dataclasses.is_dataclass(hint):
        return pa.types.is_struct(arrow) and matches(hint, arrow, {}) == []
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return pa.types.is_string(arrow)
    checks = {
        bool: pa.types.is_boolean,
        int: pa.types.is_integer,
        float: pa.types.is_floating,
        str: pa.types.is_string,
    }
    return hint in checks and checks[hint](arrow)


def matches(record: type, arrow: pa.Schema | pa.StructType, extra: dict) -> list[str]:
    """What differs between a record's fields (plus ``extra``) and a schema or struct."""
    hints = typing.get_type_hints(record)
    expected = {f.name: hints[f.name] for f in dataclasses.fields(record)} | extra
    fields = {f.name: f for f in (arrow if isinstance(arrow, pa.Schema) else arrow.fields)}
    if set(fields) != set(expected):
        return [f"columns differ: {sorted(set(fields) ^ set(expected))}"]
    problems = []
    for column, hint in expected.items():
        inner, nullable = optional(hint)
        field = fields[column]
        if not compatible(inner, field.type):
            problems.append(f"{column}: {field.type} vs {hint}")
        if field.nullable != nullable:
            problems.append(f"{column}: nullable={field.nullable} vs {hint}")
    return problems


@pytest.mark.parametrize("name", TABLES)
def test_columns_match_record_fields_both_ways(name):
    schema, record, extra = TABLES[name]
    assert matches(record, schema, extra) == []


def test_nested_records_are_lists_of_structs():
    assert matches(Section, DOCUMENTS_V2.field("sections").type.value_type, {}) == []
    assert matches(OtherAbstract, DOCUMENTS_V2.field("other_abstracts").type.value_type, {}) == []


def test_ingest_events_are_document_columns_plus_their_place():
    events = {f.name: f for f in INGEST_EVENTS_V1}
    assert list(events)[:3] == ["ordinal", "position", "kind"]
    for f in DOCUMENTS_V2:
        assert events[f.name].type == f.type
        # null on tombstone rows, except what a tombstone has too
        assert events[f.name].nullable == (f.name not in ("id", "source"))
    assert set(events) == {"ordinal", "position", "kind", *DOCUMENTS_V2.names}


def test_every_schema_is_tested_and_tagged_with_a_version():
    tested = {schema_version(s) for s, _, _ in TABLES.values()}
    # entities/3: decode's table before the selector (entities/4 adds its reason, tested below)
    assert {schema_version(s) for s in CURRENT} == tested | {"ingest_events/1", "entities/3"}
    versions = [schema_version(s) for s in ALL]
    assert len(versions) == len(set(versions)) and all(SCHEMA_KEY in s.metadata for s in ALL)
    # old files stay readable
    assert {"documents/1", "tombstones/1", "generations/1"} <= set(versions)


def test_generations_v2_adds_the_cache_columns_to_v1():
    v1 = {f.name: f for f in GENERATIONS_V1}
    v2 = {f.name: f for f in GENERATIONS_V2}
    assert set(v2) - set(v1) == {"window_start", "window_end", "cache_key", "params", "cached"}
    assert all(v2[name] == field for name, field in v1.items())


def test_entities_v2_adds_the_selector_reason_to_v1():
    v1 = {f.name: f for f in ENTITIES_V1}
    v2 = {f.name: f for f in ENTITIES_V2}
    assert set(v2) - set(v1) == {"reason"} and v2["reason"].nullable
    assert all(v2[name] == field for name, field in v1.items())


def test_entities_v3_adds_the_source_and_v4_the_reason_to_it():
    v1, v3, v4 = ({f.name: f for f in s} for s in (ENTITIES_V1, ENTITIES_V3, ENTITIES_V4))
    assert set(v3) - set(v1) == {"source"} and not v3["source"].nullable
    assert all(v3[name] == field for name, field in v1.items())
    assert set(v4) - set(v3) == {"reason"} and v4["reason"] == ENTITIES_V2.field("reason")
    assert all(v4[name] == field for name, field in v3.items())
    assert matches(Entity, ENTITIES_V3, {}) == []


def restore(record: type, value: object) -> object:
    """A record from a row Arrow gave back: lists -> tuples, structs -> nested records."""
    hints = typing.get_type_hints(record)
    fields = {}
    for f in dataclasses.fields(record):
        hint, v = optional(hints[f.name])[0], value[f.name]
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple and v is not None:
            item = args[0]
            if dataclasses.is_dataclass(item):
                v = tuple(restore(item, x) for x in v)
            else:
                v = tuple(tuple(x) if isinstance(x, tuple | list) else x for x in v)
        fields[f.name] = v
    return record(**fields)


SAMPLES = {
    "documents": Document(
        "1",
        "A text. Resumen.",
        2,
        "A text.",
        "en",
        "f.xml",
        (("status", "MEDLINE"),),
        journal="J",
        pub_date="2024-05",
        doi="10.1/x",
        authors=("Smith J", "Wang L"),
        mesh_headings=("Humans",),
        keywords=("k",),
        publication_types=("Journal Article",),
        vernacular_title="Un texto.",
        other_abstracts=(OtherAbstract("es", "Resumen.", "Publisher"),),
        sections=(Section("TITLE", 0, 7), Section("BACKGROUND", 8, 16, "BACKGROUND")),
    ),
    "tombstones": Tombstone("9", "u.xml", 31),
    "quarantine": Quarantined("u.xml", 3, "PubmedArticle without a PMID", "", 12, "<Pub"),
    "passages": Passage("1", 0, 0, 7, "A text.", 2, "en"),
    "entities": Entity(
        "1", 2, 0, 2, 6, "text", "Disease", "m@1", "symbolic-v1", "r1", 0.5, True, ("truncated",)
    ),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_records_round_trip_through_arrow(name):
    schema, record, extra = TABLES[name]
    sample = SAMPLES[name]
    row = dataclasses.asdict(sample) | {column: "r" for column in extra}
    table = pa.Table.from_pylist([row], schema=schema)
    assert restore(record, table.to_pylist()[0]) == sample


def test_quarantine_line_may_be_unknown():
    row = dataclasses.asdict(Quarantined("u.xml", 1, "empty")) | {"run_id": "r"}
    assert pa.Table.from_pylist([row], schema=QUARANTINE_V1).to_pylist()[0]["line"] is None


def test_issue_kind_values_fit_the_kind_column():
    issue = DecodeIssue(IssueKind.TRUNCATED, "cut", 3)
    row = {"doc_id": "1", "doc_version": 1, "passage_index": 0, "lossy": issue.lossy}
    row |= {"kind": str(issue.kind), "message": issue.message, "line": issue.line}
    assert (
        pa.Table.from_pylist([row], schema=DECODE_ISSUES_V1).to_pylist()[0]["kind"] == "truncated"
    )
