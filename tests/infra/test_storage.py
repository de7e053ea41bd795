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


def test_table_writer_appears_only_on_commit(tmp_path):
    uri = str(tmp_path / "t" / "x.parquet")
    with storage.TableWriter(uri, TOMBSTONES_V1, {"bioner.run_id": "r"}) as writer:
        writer.write(pa.table({"id": ["1"], "source": ["a"], "other": [0]}))
        writer.write(pa.table({"id": ["2"], "source": ["b"]}).to_batches()[0])
        assert not os.path.exists(uri)
    assert writer.rows == 2
    assert storage.read_table(uri, TOMBSTONES_V1).column("id").to_pylist() == ["1", "2"]
    assert storage.read_metadata(uri)["bioner.run_id"] == "r"
    assert [b.num_rows for b in storage.iter_batches(uri, TOMBSTONES_V1)] == [2]


def test_table_writer_aborts_on_error_and_keeps_the_old_file(tmp_path):
    uri = str(tmp_path / "x.parquet")
    storage.write_rows([{"id": "old", "source": ""}], uri, TOMBSTONES_V1)
    with pytest.raises(RuntimeError), storage.TableWriter(uri, TOMBSTONES_V1) as writer:
        writer.write(pa.table({"id": ["new"], "source": [""]}))
        raise RuntimeError("crash")
    assert storage.read_table(uri).column("id").to_pylist() == ["old"]
    assert os.listdir(tmp_path) == ["x.parquet"]


def test_read_table_filters_rows(tmp_path):
    uri = str(tmp_path / "x.parquet")
    storage.write_rows([{"id": str(i), "source": ""} for i in range(5)], uri, TOMBSTONES_V1)
    found = storage.read_table(uri, TOMBSTONES_V1, ["id"], [("id", "in", ["1", "3", "9"])])
    assert found.column("id").to_pylist() == ["1", "3"]


def test_folders_logs_and_raw_files(tmp_path):
    (tmp_path / "d" / "b").mkdir(parents=True)
    (tmp_path / "d" / "b" / "2.txt").write_text("2")
    (tmp_path / "d" / "1.txt").write_text("1")
    assert storage.files_under(str(tmp_path / "d")) == [
        str(tmp_path / "d" / "1.txt"),
        str(tmp_path / "d" / "b" / "2.txt"),
    ]
    assert storage.list_dir(str(tmp_path / "d")) == ["1.txt", "b"]
    assert storage.list_dir(str(tmp_path / "none")) == []
    log = str(tmp_path / "l" / "log.jsonl")
    storage.append_line(log, "a")
    storage.append_line(log, "b\n")
    assert storage.read_text(log) == "a\nb\n"
    assert storage.size(log) == 4 and storage.is_dir(str(tmp_path / "d"))
    with storage.open_raw(log) as f:
        assert f.read(1) == b"a"
    storage.remove_tree(str(tmp_path / "d"))
    assert not storage.exists(str(tmp_path / "d"))
