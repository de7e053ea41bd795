"""Entity tables of every version read as today's columns."""

from __future__ import annotations

import pytest

from infra import storage
from infra.entity_tables import entities_schema, read_entities
from schemas import DOCUMENTS_V2, ENTITIES_V1, ENTITIES_V2, ENTITIES_V3, ENTITIES_V4

ROW = {
    "doc_id": "1", "doc_version": 1, "passage_index": 0, "start": 0, "end": 7, "text": "Aspirin",
    "label": "Chemical", "model_id": "m", "prompt_version": "p", "run_id": "r", "score": None,
    "selected": None, "issues": [],
}  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "extra", "source", "reason"),
    [
        (ENTITIES_V1, {}, "tagger", None),
        (ENTITIES_V2, {"reason": "accepted"}, "tagger", "accepted"),
        (ENTITIES_V3, {"source": "lexicon"}, "lexicon", None),
        (ENTITIES_V4, {"source": "lexicon", "reason": "below_threshold"}, "lexicon", "below_threshold"),
    ],
)  # fmt: skip
def test_every_version_reads_with_source_and_reason(tmp_path, schema, extra, source, reason):
    uri = str(tmp_path / "e.parquet")
    storage.write_rows([ROW | extra], uri, schema)
    assert entities_schema(uri) is schema
    table = read_entities(uri)
    assert table.schema.names == ENTITIES_V4.names
    assert table.to_pylist() == [ROW | {"source": source, "reason": reason}]
    assert read_entities(uri, ["source", "text"]).to_pylist() == [
        {"source": source, "text": "Aspirin"}
    ]


def test_other_tables_and_columns_are_refused_by_name(tmp_path):
    uri = str(tmp_path / "d.parquet")
    storage.write_rows([], uri, DOCUMENTS_V2)
    with pytest.raises(ValueError, match=f"{uri}: expected an entities table .* found documents/2"):
        read_entities(uri)
    with pytest.raises(FileNotFoundError, match=r"none\.parquet: no such candidates table"):
        entities_schema(str(tmp_path / "none.parquet"), "candidates")
    storage.write_rows([ROW], uri, ENTITIES_V1)
    with pytest.raises(ValueError, match="no entity column 'colour'"):
        read_entities(uri, ["colour"])
