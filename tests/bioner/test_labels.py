"""The unified schema, restricted requests and the map from every dataset to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioner.labels import (
    DATASETS,
    GENERAL_SCHEMA,
    GENERAL_ZH_SCHEMA,
    UNIFIED_SCHEMAS,
    get_schema,
    label_map_rows,
    label_map_table,
    request_parts,
    schema_for,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "labels.md"


def test_restricting_keeps_schema_order_and_names_the_request():
    asked = get_schema("general[Species, gene]")
    assert asked.name == "general[Gene,Species]" and asked.base == "general"
    assert asked.labels == ("Gene", "Species")
    assert get_schema("general[Chemical,Disease,Gene,Species,Cell,Anatomy]") is GENERAL_SCHEMA
    assert get_schema(asked.name) == asked  # the name reads back


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nosuch", "unknown schema 'nosuch'; known: bc5cdr, bionlp11id, bionlp13cg"),
        ("general[Gene,Variant]", "unknown type 'Variant'; known: Chemical, Disease, Gene"),
        ("general[]", "no type named"),
        ("general[Gene", r"write the types as general\[Type,Type\]"),
    ],
)
def test_an_unknown_schema_or_type_names_the_known_ones(name, message):
    with pytest.raises(ValueError, match=message):
        get_schema(name)


def test_a_restricted_request_keeps_the_types_its_counterpart_has():
    assert schema_for("general[Gene,Disease]", "zh").name == "general-zh[Disease]"
    assert schema_for("general[Disease]", "en").name == "general[Disease]"
    with pytest.raises(ValueError, match="none of its types has a zh counterpart"):
        schema_for("general[Gene,Cell]", "zh")


def test_every_dataset_maps_onto_its_languages_unified_schema():
    for spec in DATASETS.values():
        unified = UNIFIED_SCHEMAS[spec.schema.language]
        assert set(spec.unified) <= set(spec.schema.labels), spec.name
        assert set(spec.unified.values()) <= set(unified.labels), spec.name
        assert set(spec.partial) <= set(spec.unified_types), spec.name


def test_every_unified_type_has_a_dataset_that_annotates_it_whole():
    for schema in (GENERAL_SCHEMA, GENERAL_ZH_SCHEMA):
        whole = {
            label
            for spec in DATASETS.values()
            if spec.schema.language == schema.language and spec.name not in UNIFIED_NAMES
            for label in spec.scored_types
        }
        assert whole == set(schema.labels), schema.name


UNIFIED_NAMES = {"general", "general-zh"}


def test_partial_annotation_asks_only_what_a_dataset_annotates():
    assert DATASETS["ncbi"].unified_request().name == "general[Disease]"
    assert DATASETS["jnlpba"].unified_request().name == "general[Gene,Cell]"
    assert DATASETS["bionlp11id"].unified_request().name == "general[Chemical,Gene,Species]"
    assert DATASETS["bionlp13cg"].unified_request() is GENERAL_SCHEMA
    assert DATASETS["bionlp13cg"].scored_types == ("Chemical", "Gene", "Species", "Cell", "Anatomy")
    assert DATASETS["cmeee"].unified_request() is GENERAL_ZH_SCHEMA
    # A Chinese passage asked "general" is asked exactly as CMeEE was taught.
    cmeee = DATASETS["cmeee"].schema
    assert [t.header for t in GENERAL_ZH_SCHEMA.types] == [t.header for t in cmeee.types]


def test_the_documented_label_map_is_the_code():
    """docs/labels.md holds the label map as the code makes it."""
    assert label_map_table() in DOC.read_text("utf-8")
    rows = label_map_rows()
    assert ("bionlp13cg", "Pathological_formation", "—") in rows
    assert ("jnlpba", "DNA", "Gene") in rows and ("cmeee", "Drug", "Chemical") in rows


def test_a_schema_asked_in_parts_asks_every_type_once_in_schema_order():
    general = get_schema("general")
    parts = general.parts([["Disease"], ["Cell", "gene"], ["Disease", "Species"]])
    assert [p.name for p in parts] == [
        "general[Disease]",
        "general[Gene,Cell]",
        "general[Species]",  # Disease is asked already
        "general[Chemical,Anatomy]",  # the types in no group
    ]
    assert general.parts() == (general,) == general.parts([general.labels])
    # A restricted schema keeps the parts that have one of its types.
    assert [p.name for p in get_schema("general[Gene,Disease]").parts([["Disease"]])] == [
        "general[Disease]",
        "general[Gene]",
    ]
    assert [p.name for p in request_parts("general", "zh", {"general": [["Disease"]]})] == [
        "general-zh"
    ]
