"""Storage behind URIs: the same tests on a local folder and on S3 (moto's server).

Explicit schemas, atomic writes, listing, metadata, gzip-aware input; on S3 also credentials,
throttling and a server that stops answering.
"""

from __future__ import annotations

import gzip
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from infra import s3, storage
from schemas import PASSAGES_V1, SCHEMA_KEY, TOMBSTONES_V1


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def root(request, tmp_path) -> str:
    """A fresh, empty base URI: a local folder, or a prefix of the moto bucket."""
    s3.reset()
    if request.param == "local":
        return str(tmp_path)
    moto = request.getfixturevalue("moto_s3")
    return moto.uri(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def moto(moto_s3):
    s3.reset()
    yield moto_s3
    moto_s3.proxy.heal()
    s3.reset()


def test_write_then_read_with_schema_and_metadata(root):
    uri = storage.join(root, "t", "part.parquet")
    rows = [{"source": "u.xml", "id": "7", "ignored": 1}]
    assert storage.write_rows(rows, uri, TOMBSTONES_V1, {"bioner.run_id": "r1"}) == uri
    table = storage.read_table(uri, TOMBSTONES_V1)
    assert table.schema.names == ["id", "source"]
    assert table.to_pylist() == [{"id": "7", "source": "u.xml"}]
    meta = storage.read_metadata(uri)
    assert meta["bioner.run_id"] == "r1"
    assert meta[SCHEMA_KEY.decode()] == "tombstones/1"
    assert storage.count_rows(uri) == 1
    assert storage.list_dir(storage.join(root, "t")) == ["part.parquet"]  # no temporary left
    assert storage.exists(uri) and not storage.exists(storage.join(root, "t", "other"))


def test_empty_tables_keep_their_schema(root):
    uri = storage.join(root, "empty.parquet")
    storage.write_rows([], uri, TOMBSTONES_V1)
    assert storage.read_table(uri, TOMBSTONES_V1).schema.names == TOMBSTONES_V1.names


def test_missing_column_and_wrong_version_fail(root):
    uri = storage.join(root, "x.parquet")
    with pytest.raises(ValueError, match="lacks columns"):
        storage.write_table(pa.table({"id": ["1"]}), uri, TOMBSTONES_V1)
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)
    with pytest.raises(ValueError, match="expected a passages/1 table"):
        storage.read_table(uri, PASSAGES_V1)


def test_null_in_required_column_fails_before_writing(root):
    with pytest.raises(ValueError, match="non-nullable"):
        storage.write_table(
            pa.table({"id": [None], "source": ["s"]}),
            storage.join(root, "x.parquet"),
            TOMBSTONES_V1,
        )
    assert storage.list_dir(root) == []


def test_interrupted_write_keeps_the_old_file(root, monkeypatch):
    uri = storage.join(root, "x.parquet")
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)

    def crash(table, where, **options):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        storage.write_rows([{"id": "2", "source": ""}], uri, TOMBSTONES_V1)
    monkeypatch.undo()
    assert storage.read_table(uri).to_pylist() == [{"id": "1", "source": ""}]
    assert storage.list_dir(root) == ["x.parquet"]


def test_atomic_replace(root):
    uri = storage.join(root, "x.parquet")
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)
    storage.write_rows([{"id": "2", "source": ""}], uri, TOMBSTONES_V1)
    assert storage.read_table(uri).column("id").to_pylist() == ["2"]
    storage.write_text("a\n", storage.join(root, "m.json"))
    storage.write_text("b\n", storage.join(root, "m.json"))
    assert storage.read_text(storage.join(root, "m.json")) == "b\n"
    assert storage.list_dir(root) == ["m.json", "x.parquet"]


def test_open_input_gunzips_by_content(root):
    plain, packed = storage.join(root, "a.xml"), storage.join(root, "b.data")
    storage.write_bytes(b"<x/>", plain)
    storage.write_bytes(gzip.compress(b"<y/>"), packed)
    with storage.open_input(plain) as f:
        assert f.read() == b"<x/>"
    with storage.open_input(packed) as f:
        assert f.read() == b"<y/>"


def test_uris():
    assert storage.join("out/", "entities", "a.parquet") == "out/entities/a.parquet"
    assert storage.join("s3://b/out/", "t/x") == "s3://b/out/t/x"
    assert str(storage.local_path("file:///tmp/x")) == "/tmp/x"
    with pytest.raises(ValueError, match="no local path"):
        storage.local_path("s3://bucket/key")
    with pytest.raises(NotImplementedError, match="gs"):
        storage.local_path("gs://bucket/key")
    assert s3.split("s3://b/k/x") == ("b", "k/x")
    with pytest.raises(ValueError, match="needs a bucket"):
        s3.split("s3:///k")


@pytest.mark.parametrize("doc_id", ["../../etc", "a b", "肝癌/1", ".", "..", "x\\y", "%2E"])
def test_ids_never_escape_the_prefix(root, doc_id):
    with pytest.raises(ValueError, match="escape"):
        storage.join(root, "docs", "../other")
    part = storage.key_component(doc_id)
    assert "/" not in part and part not in (".", "..") and not part.startswith(".")
    assert part.isascii() and " " not in part
    uri = storage.join(root, "docs", part)
    storage.write_text(doc_id, uri)
    assert storage.files_under(root) == [uri]
    assert storage.read_text(uri) == doc_id


def test_key_components_are_distinct():
    ids = ["a b", "a%20b", "a+b", ".x", "%2Ex", "肝", "%E8%82%9D"]
    assert len({storage.key_component(i) for i in ids}) == len(ids)
    with pytest.raises(ValueError):
        storage.key_component("")


def test_table_writer_appears_only_on_commit(root):
    uri = storage.join(root, "t", "x.parquet")
    with storage.TableWriter(uri, TOMBSTONES_V1, {"bioner.run_id": "r"}) as writer:
        writer.write(pa.table({"id": ["1"], "source": ["a"], "other": [0]}))
        writer.write(pa.table({"id": ["2"], "source": ["b"]}).to_batches()[0])
        assert not storage.exists(uri)
    assert writer.rows == 2
    assert storage.read_table(uri, TOMBSTONES_V1).column("id").to_pylist() == ["1", "2"]
    assert storage.read_metadata(uri)["bioner.run_id"] == "r"
    assert [b.num_rows for b in storage.iter_batches(uri, TOMBSTONES_V1)] == [2]


def test_table_writer_aborts_on_error_and_keeps_the_old_file(root):
    uri = storage.join(root, "x.parquet")
    storage.write_rows([{"id": "old", "source": ""}], uri, TOMBSTONES_V1)
    with pytest.raises(RuntimeError), storage.TableWriter(uri, TOMBSTONES_V1) as writer:
        writer.write(pa.table({"id": ["new"], "source": [""]}))
        raise RuntimeError("crash")
    assert storage.read_table(uri).column("id").to_pylist() == ["old"]
    assert storage.list_dir(root) == ["x.parquet"]


def test_read_table_filters_rows(root):
    uri = storage.join(root, "x.parquet")
    storage.write_rows([{"id": str(i), "source": ""} for i in range(5)], uri, TOMBSTONES_V1)
    found = storage.read_table(uri, TOMBSTONES_V1, ["id"], [("id", "in", ["1", "3", "9"])])
    assert found.column("id").to_pylist() == ["1", "3"]


def test_read_table_of_a_folder_of_parts(root):
    for k in range(2):
        uri = storage.join(root, "tomb", f"shard={k}.parquet")
        storage.write_rows([{"id": str(k), "source": ""}], uri, TOMBSTONES_V1)
    ids = storage.read_table(storage.join(root, "tomb"), columns=["id"]).column("id")
    assert sorted(ids.to_pylist()) == ["0", "1"]


def test_folders_logs_and_raw_files(root):
    d = storage.join(root, "d")
    storage.write_text("2", storage.join(d, "b", "2.txt"))
    storage.write_text("1", storage.join(d, "1.txt"))
    assert storage.files_under(d) == [storage.join(d, "1.txt"), storage.join(d, "b", "2.txt")]
    assert storage.list_dir(d) == ["1.txt", "b"]
    assert storage.list_dir(storage.join(root, "none")) == []
    log = storage.join(root, "l", "log.jsonl")
    storage.append_line(log, "a")
    storage.append_line(log, "b\n")
    assert storage.read_text(log) == "a\nb\n"
    assert storage.size(log) == 4 and storage.is_dir(d) and not storage.is_dir(log)
    with storage.open_raw(log) as f:
        assert f.read(1) == b"a"
    storage.remove_tree(d)
    assert not storage.exists(d)
    storage.remove(log)
    assert not storage.exists(log)


def test_missing_file_is_file_not_found(root):
    with pytest.raises(FileNotFoundError):
        storage.read_text(storage.join(root, "nothing.txt"))


# --------------------------------------------------------------------------- S3 only


@pytest.mark.s3
def test_wrong_credentials_fail_clearly_and_write_nothing(moto, monkeypatch):
    uri = moto.uri(f"cred-{uuid.uuid4().hex[:8]}", "x.parquet")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(storage.StorageError) as error:
        storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)
    message = str(error.value)
    assert message.startswith(uri + ": access denied") and "\n" not in message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
    with pytest.raises(storage.StorageError, match="access denied"):
        storage.exists(uri)
    monkeypatch.undo()
    s3.reset()
    assert not storage.exists(uri)


@pytest.mark.s3
def test_throttling_is_retried_with_backoff(moto, monkeypatch):
    monkeypatch.setenv("BIONER_S3_ENDPOINT", moto.proxy.endpoint)
    uri = moto.uri(f"slow-{uuid.uuid4().hex[:8]}", "x.parquet")
    moto.proxy.slow_down = 2  # below BIONER_S3_MAX_ATTEMPTS=3
    storage.write_rows([{"id": "1", "source": ""}], uri, TOMBSTONES_V1)
    assert moto.proxy.throttled == 2
    assert storage.read_table(uri).column("id").to_pylist() == ["1"]
    moto.proxy.slow_down = 10
    with pytest.raises(storage.StorageError, match="503 SlowDown"):
        storage.read_text(uri)


@pytest.mark.s3
def test_server_stopping_midway_leaves_the_table_unchanged(moto, monkeypatch):
    monkeypatch.setenv("BIONER_S3_ENDPOINT", moto.proxy.endpoint)
    monkeypatch.setenv("BIONER_S3_MAX_ATTEMPTS", "2")
    uri = moto.uri(f"stop-{uuid.uuid4().hex[:8]}", "x.parquet")
    storage.write_rows([{"id": "old", "source": ""}], uri, TOMBSTONES_V1)
    writer = storage.TableWriter(uri, TOMBSTONES_V1)
    writer.write(pa.table({"id": ["new"], "source": [""]}))
    moto.proxy.cut_after = 0  # the server stops before the commit's upload
    with pytest.raises(storage.StorageError) as error:
        writer.commit()
    assert str(error.value) == f"{uri}: cannot reach the S3 endpoint {moto.proxy.endpoint}"
    moto.proxy.heal()
    assert storage.read_table(uri).column("id").to_pylist() == ["old"]
    storage.write_rows([{"id": "new", "source": ""}], uri, TOMBSTONES_V1)  # a rerun completes
    assert storage.read_table(uri).column("id").to_pylist() == ["new"]


@pytest.mark.s3
def test_large_objects_go_up_as_multipart(moto):
    uri = moto.uri(f"big-{uuid.uuid4().hex[:8]}", "x.bin")
    data = os.urandom(12 << 20)  # over pyarrow's part size
    storage.write_bytes(data, uri)
    assert storage.size(uri) == len(data)
    assert storage.read_bytes(uri) == data


def test_endpoint_option_and_settings(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("BIONER_S3_ENDPOINT", raising=False)
    s3.reset()
    assert s3.current().endpoint == "http://127.0.0.1:9"
    assert s3.configure(endpoint="https://minio.local:9000").endpoint == "https://minio.local:9000"
    options = s3.delta_options()
    assert options["AWS_ENDPOINT_URL"] == "https://minio.local:9000"
    assert "AWS_ALLOW_HTTP" not in options and options["AWS_REGION"]
    with pytest.raises(ValueError, match="expected http"):
        s3.configure(endpoint="minio.local:9000")
    s3.reset()


def test_lasting_storage_errors_are_not_retried():
    from infra.s3 import StorageError
    from tasks._common import transient

    class Failed:
        def __init__(self, error):
            self.error = error

        def result(self):
            raise self.error

    denied = StorageError("s3://b/k: access denied: check the AWS credentials", transient=False)
    assert transient(None, None, Failed(denied)) is False
    assert transient(None, None, Failed(StorageError("s3://b/k: cannot reach"))) is True
    assert transient(None, None, Failed(ConnectionError("reset"))) is True
    assert transient(None, None, Failed(FileNotFoundError("gone"))) is False


def test_returning_memory_pool_replaces_mimalloc():
    # mimalloc keeps freed pages, so streaming reads grew with the input (issue 3's figure).
    name = storage.use_returning_memory_pool()
    assert name != "mimalloc"
    assert pa.default_memory_pool().backend_name == name
    assert storage.use_returning_memory_pool() == name  # idempotent


def test_gz_named_objects_are_stored_byte_for_byte(root):
    # pyarrow guesses compression from a ".gz" name on write; stored bytes must be ours.
    data = gzip.compress(b"<PubmedArticleSet/>\n")
    uri = storage.join(root, "pubmed26n0001.xml.gz")
    storage.write_bytes(data, uri)
    assert storage.read_bytes(uri) == data


def test_orphan_temporary_files_are_removed_and_a_live_writers_kept(tmp_path):
    """A writer killed mid-file leaves its temporary file; the next run removes it, never one
    whose writer still runs (this process) or that another host wrote."""
    import subprocess
    import sys

    out = tmp_path / "out"
    killed = (
        "import os, sys, pyarrow as pa; from infra import storage; from schemas import "
        "TOMBSTONES_V1 as S\n"
        "w = storage.TableWriter(sys.argv[1], S)\n"
        "w.write(pa.table({'id': ['a'], 'source': ['x'], 'position': [0]}))\n"
        "os._exit(9)  # as kill -9: no abort, no commit\n"
    )
    target = out / "tombstones" / "shard=0.parquet"
    repo = Path(storage.__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", killed, str(target)], cwd=repo)
    assert done.returncode == 9
    (orphan,) = (out / "tombstones").glob(".shard=0.parquet.*.tmp")
    live = storage.TableWriter(str(out / "documents" / "shard=0.parquet"), TOMBSTONES_V1)
    foreign = out / "passages" / ".shard=0.parquet.00000000-1-ab.tmp"
    old, fresh = out / "generations" / ".shard=1.parquet.0a1b.tmp", out / ".x.parquet.0c.tmp"
    for path in (foreign, old, fresh):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1")
    os.utime(old, (0, 0))

    assert storage.remove_orphan_temps(str(out)) == 2
    assert not orphan.exists() and not old.exists() and not target.exists()
    assert foreign.exists() and fresh.exists()
    live.write(pa.table({"id": ["b"], "source": ["y"], "position": [1]}))
    assert storage.read_table(live.commit(), TOMBSTONES_V1).column("id").to_pylist() == ["b"]
