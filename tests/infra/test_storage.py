"""Local Parquet storage: explicit schemas, atomic writes, gzip-aware input."""

from __future__ import annotations

import gzip
import os

import pyarrow as pa
import pytest

from infra import storage
from schemas import PASSAGES_V1, SCHEMA_KEY, TOMBSTONES_V1


def test_write_then_read_with_schema_and_metadata(tmp_path):
    uri = str(tmp_path / "t" / "part.parquet")
    rows = [{"source": "u.xml", "id": "7", "ignored": 1}]
    assert storage.write_rows(rows, uri, TOMBSTONES_V1, {"bioner.run_id": "r1"}) == uri
    table = storage.read_table(uri, TOMBSTONES_V1)
    assert table.schema.names == ["id", "source"]
    assert table.to_pylist() == [{"id": "7", "source": "u.xml"}]
    meta = storage.read_metadata(uri)
    assert meta["bioner.run_id"] == "r1"
    assert meta[SCHEMA_KEY.decode()] == "tombstones/1"
    assert storage.count_rows(uri) == 1
    assert os.listdir(tmp_path / "t") == ["part.parquet"]  # no temporary file left


def test_empty_tables_keep_their_schema(tmp_path):
    uri = str(tmp_path / "empty.parquet")
    storage.write_rows([], uri, TOMBSTONES_V1)
    assert storage.read_table(uri, TOMBSTONES_V1).schema.names == TOMBSTONES_V1.names


def test_missing_column_and_wrong_version_fail(tmp_path):
    uri = str(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="lacks columns"):
        storage.write_table(pa.table({"id": ["1"]}), uri, TOMBSTONES_V1)
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)
    with pytest.raises(ValueError, match="expected a passages/1 table"):
        storage.read_table(uri, PASSAGES_V1)


def test_null_in_required_column_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="non-nullable"):
        storage.write_table(
            pa.table({"id": [None], "source": ["s"]}), str(tmp_path / "x.parquet"), TOMBSTONES_V1
        )
    assert os.listdir(tmp_path) == []


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    uri = str(tmp_path / "x.parquet")
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)

    def crash(table, where):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        storage.write_rows([{"id": "2", "source": ""}], uri, TOMBSTONES_V1)
    monkeypatch.undo()
    assert storage.read_table(uri).to_pylist() == [{"id": "1", "source": ""}]
    assert os.listdir(tmp_path) == ["x.parquet"]


def test_open_input_gunzips_by_content(tmp_path):
    plain, packed = tmp_path / "a.xml", tmp_path / "b.data"
    plain.write_bytes(b"<x/>")
    packed.write_bytes(gzip.compress(b"<y/>"))
    with storage.open_input(str(plain)) as f:
        assert f.read() == b"<x/>"
    with storage.open_input(str(packed)) as f:
        assert f.read() == b"<y/>"


def test_uris():
    assert storage.join("out/", "entities", "a.parquet") == "out/entities/a.parquet"
    assert str(storage.local_path("file:///tmp/x")) == "/tmp/x"
    with pytest.raises(NotImplementedError, match="s3"):
        storage.local_path("s3://bucket/key")
