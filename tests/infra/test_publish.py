"""Published Delta tables: replace by document, tombstones, time travel, idempotence, races.

The same tests run on a local folder and on S3 (moto); tables are read back with polars and
DuckDB as analysts would.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from infra import publish, s3, storage
from schemas import DOCUMENTS_V2, ENTITIES_V1, TOMBSTONES_V2

pytest.importorskip("deltalake", reason="install the s3 extra (deltalake) to publish")


def document(doc_id: str, text: str, version: int = 1) -> dict:
    return {
        "id": doc_id, "text": text, "version": version, "title": "", "language": "en",
        "source": "pubmed", "metadata": [], "journal": "", "pub_date": "", "doi": "",
        "authors": [], "mesh_headings": [], "keywords": [], "publication_types": [],
        "vernacular_title": "", "other_abstracts": [], "sections": [],
    }  # fmt: skip


def entity(doc_id: str, start: int, text: str, label: str, *, version: int = 1,
           passage: int = 0, run: str = "r1", selected: bool | None = None) -> dict:  # fmt: skip
    return {
        "doc_id": doc_id, "doc_version": version, "passage_index": passage, "start": start,
        "end": start + len(text), "text": text, "label": label, "model_id": "m",
        "prompt_version": "p1", "run_id": run, "score": None, "selected": selected, "issues": [],
    }  # fmt: skip


def write_run(out: str, shards: dict[int, tuple[list[dict], list[dict]]], deleted=(), run="r1"):
    """An annotate output folder: documents and entities per shard, tombstones in shard 0."""
    for k, (docs, ents) in shards.items():
        storage.write_rows(docs, storage.join(out, "documents", f"shard={k}.parquet"), DOCUMENTS_V2)
        storage.write_rows(ents, storage.join(out, "entities", f"shard={k}.parquet"), ENTITIES_V1)
    tombs = [{"id": i, "source": "u.xml", "position": 0} for i in deleted]
    storage.write_rows(tombs, storage.join(out, "tombstones", "shard=0.parquet"), TOMBSTONES_V2)
    storage.write_text(f'{{"run_id": "{run}"}}\n', storage.join(out, "summary.json"))
    return out


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request, tmp_path) -> tuple[str, str]:
    """(run folder, publish root): local folders, or the run local and the root on moto."""
    s3.reset()
    if request.param == "local":
        return str(tmp_path / "out"), str(tmp_path / "published")
    moto = request.getfixturevalue("moto_s3")
    return str(tmp_path / "out"), moto.uri(f"pub-{uuid.uuid4().hex[:12]}")


def first_run(out: str) -> str:
    return write_run(
        out,
        {
            0: (
                [document("1", "Aspirin and asthma.")],
                [entity("1", 0, "Aspirin", "Chemical"), entity("1", 12, "asthma", "Disease")],
            ),
            1: (
                [document("2", "Asthma  in children.")],
                [
                    entity("2", 0, "Asthma", "Disease"),
                    entity("2", 10, "children", "Species", selected=False),
                ],
            ),
        },
    )


def rows(
    root: str, name: str, version: int | None = None, release_number: int | None = None
) -> list[dict]:
    """The table's rows (current release, or as of a version or release), sorted by value."""
    found = publish.read(root, name, version, release_number).to_pylist()
    return sorted(found, key=lambda r: [str(v) for v in r.values()])


def test_publish_then_revise_delete_and_time_travel(where):
    out, root = where
    report = publish.publish(first_run(out), root)
    assert report.run_id == "r1" and report.documents == 2 and not report.skipped
    assert sorted(r["text"] for r in rows(root, "entities")) == [
        "Aspirin",
        "Asthma",
        "asthma",
        "children",
    ]
    assert {r["id"]: r["run_id"] for r in rows(root, "documents")} == {"1": "r1", "2": "r1"}
    nodes = {r["node_id"]: (r["mentions"], r["documents"]) for r in rows(root, "entity_nodes")}
    assert nodes == {"Chemical:aspirin": (1, 1), "Disease:asthma": (2, 2)}  # children rejected
    assert [
        (r["source_id"], r["target_id"], r["passages"]) for r in rows(root, "cooccurrence_edges")
    ] == [("Chemical:aspirin", "Disease:asthma", 1)]
    mentions = {(r["doc_id"], r["node_id"]): r["mentions"] for r in rows(root, "mention_edges")}
    assert mentions == {
        ("1", "Chemical:aspirin"): 1,
        ("1", "Disease:asthma"): 1,
        ("2", "Disease:asthma"): 1,
    }

    # Run 2: document 1 revised (its old entities go), document 2 deleted, 3 new.
    out2 = write_run(
        out + "2",
        {0: ([document("1", "Ibuprofen.", 2), document("3", "Fever.")],
             [entity("1", 0, "Ibuprofen", "Chemical", version=2, run="r2"),
              entity("3", 0, "Fever", "Disease", run="r2")])},
        deleted=["2"],
        run="r2",
    )  # fmt: skip
    second = publish.publish(out2, root)
    assert second.deleted == 1
    assert [(r["doc_id"], r["doc_version"], r["text"]) for r in rows(root, "entities")] == [
        ("1", 2, "Ibuprofen"), ("3", 1, "Fever")
    ]  # fmt: skip
    assert sorted(r["id"] for r in rows(root, "documents")) == ["1", "3"]
    assert {r["node_id"] for r in rows(root, "entity_nodes")} == {
        "Chemical:ibuprofen",
        "Disease:fever",
    }
    assert rows(root, "cooccurrence_edges") == []
    old = report.tables["entities"].version
    assert len(rows(root, "entities", old)) == 4  # time travel to the first publish


def test_same_run_twice_adds_nothing(where):
    out, root = where
    publish.publish(first_run(out), root)
    versions = {n: publish.open_table(root, n).version() for n in publish.TABLES}
    again = publish.publish(out, root)
    assert again.skipped and again.rows == 0
    assert {n: publish.open_table(root, n).version() for n in publish.TABLES} == versions
    assert len(rows(root, "entities")) == 4


def test_failed_publish_keeps_the_previous_version_and_a_rerun_completes(where, monkeypatch):
    out, root = where
    publish.publish(first_run(out), root)
    out2 = write_run(out + "2", {0: ([document("1", "Ibuprofen.", 2)],
                                     [entity("1", 0, "Ibuprofen", "Chemical", version=2)])},
                     run="r2")  # fmt: skip

    def crash(name):
        if name == "entities":
            raise RuntimeError("killed")

    monkeypatch.setattr(publish, "before_commit", crash)
    with pytest.raises(RuntimeError, match="killed"):
        publish.publish(out2, root)
    assert len(rows(root, "entities")) == 4  # unchanged and readable
    monkeypatch.undo()
    rerun = publish.publish(out2, root)
    assert rerun.tables["documents"].skipped and not rerun.tables["entities"].skipped
    assert sorted(r["text"] for r in rows(root, "entities")) == ["Asthma", "Ibuprofen", "children"]


def test_concurrent_publish_fails_clearly_and_never_corrupts(where, monkeypatch):
    out, root = where
    publish.publish(first_run(out), root)
    out_a = write_run(
        out + "a", {0: ([document("1", "A.", 2)], [entity("1", 0, "A", "X", version=2)])}, run="ra"
    )
    out_b = write_run(
        out + "b", {0: ([document("1", "B.", 3)], [entity("1", 0, "B", "X", version=3)])}, run="rb"
    )
    raced = []

    def race(name):
        if name == "entities" and not raced:  # another publish commits between read and commit
            raced.append(name)
            publish.publish(out_b, root)

    monkeypatch.setattr(publish, "before_commit", race)
    try:
        publish.publish(out_a, root)
        winner = "A"  # delta-rs re-checked the conflict and committed on top
    except publish.PublishError as error:
        assert "another publish committed" in str(error) and "\n" not in str(error)
        winner = "B"
    monkeypatch.undo()
    texts = [r["text"] for r in rows(root, "entities") if r["doc_id"] == "1"]
    assert texts == [winner]
    publish.publish(out_a, root)  # a rerun completes
    assert [r["text"] for r in rows(root, "entities") if r["doc_id"] == "1"] == ["A"]


def test_read_back_with_polars_and_duckdb(where):
    polars = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    out, root = where
    publish.publish(first_run(out), root)
    uri = publish.table_uri(root, "entities")
    frame = polars.read_delta(uri, storage_options=publish.reader_options(uri))
    assert frame.height == 4 and set(frame["label"]) == {"Chemical", "Disease", "Species"}
    arrow = publish.open_table(root, "entity_nodes").to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("nodes", arrow)
    assert con.execute("select sum(mentions) from nodes").fetchone()[0] == 3


@pytest.mark.s3
def test_server_stopping_midway_leaves_tables_readable(moto_s3, tmp_path, monkeypatch):
    s3.reset()
    monkeypatch.setenv("BIONER_S3_ENDPOINT", moto_s3.proxy.endpoint)
    monkeypatch.setenv("BIONER_S3_MAX_ATTEMPTS", "2")
    root = moto_s3.uri(f"stop-{uuid.uuid4().hex[:8]}")
    publish.publish(first_run(str(tmp_path / "out")), root)
    out2 = write_run(
        str(tmp_path / "out2"),
        {0: ([document("1", "I.", 2)], [entity("1", 0, "I", "C", version=2)])},
        run="r2",
    )
    moto_s3.proxy.cut_after = 6  # the server stops partway through the publish
    try:
        with pytest.raises(publish.PublishError, match="cannot reach the S3 endpoint"):
            publish.publish(out2, root)
    finally:
        moto_s3.proxy.heal()
    assert len(rows(root, "entities")) in (4, 2)  # a whole version, old or new
    publish.publish(out2, root)
    assert sorted(r["text"] for r in rows(root, "entities")) == ["Asthma", "I", "children"]


@pytest.mark.s3
def test_wrong_credentials_publish_nothing(moto_s3, tmp_path, monkeypatch):
    s3.reset()
    root = moto_s3.uri(f"cred-{uuid.uuid4().hex[:8]}")
    out = first_run(str(tmp_path / "out"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(publish.PublishError) as error:
        publish.publish(out, root)
    assert str(error.value).startswith(publish.table_uri(root, publish.RELEASES) + ": ")
    monkeypatch.undo()
    assert storage.files_under(root) == []


def second_run(out: str, run: str = "r2") -> str:
    """Document 1 revised (one entity), document 2 unchanged in its own shard."""
    revised = [entity("1", 0, "Ibuprofen", "Chemical", version=2)]
    return write_run(out, {0: ([document("1", "Ibuprofen.", 2)], revised)}, run=run)


def latest_versions(root: str) -> dict[str, int]:
    """Each table's newest Delta version, whether or not a release names it."""
    return {
        n: publish.DeltaTable(
            publish.table_uri(root, n), storage_options=publish.storage_options(root)
        ).version()
        for n in (*publish.TABLES, publish.RELEASES)
    }


@pytest.mark.s3
def test_outage_mid_publish_readers_see_the_previous_release(moto_s3, tmp_path, monkeypatch):
    s3.reset()
    monkeypatch.setenv("BIONER_S3_ENDPOINT", moto_s3.proxy.endpoint)
    monkeypatch.setenv("BIONER_S3_MAX_ATTEMPTS", "2")
    root = moto_s3.uri(f"outage-{uuid.uuid4().hex[:8]}")
    first = publish.publish(first_run(str(tmp_path / "out")), root)
    assert first.release == 1
    before = {n: rows(root, n) for n in publish.TABLES}
    out2 = second_run(str(tmp_path / "out2"))

    def outage(name):  # documents committed, then the endpoint stops answering
        if name == "entities":
            moto_s3.proxy.cut_after = 0

    monkeypatch.setattr(publish, "before_commit", outage)
    try:
        with pytest.raises(publish.PublishError, match="cannot reach the S3 endpoint") as error:
            publish.publish(out2, root)
        assert "\n" not in str(error.value)
    finally:
        moto_s3.proxy.heal()
        monkeypatch.setattr(publish, "before_commit", lambda name: None)
    # documents has a new version beside the old entities; readers still see release 1 whole.
    assert latest_versions(root)["documents"] > first.tables["documents"].version
    assert publish.release(root).number == 1
    assert {n: rows(root, n) for n in publish.TABLES} == before
    whole = publish.read_release(root)
    assert sorted(whole["documents"].column("text").to_pylist()) == [
        "Aspirin and asthma.", "Asthma  in children."
    ]  # fmt: skip
    rerun = publish.publish(out2, root)  # completes: documents already there, the rest written
    assert rerun.release == 2 and rerun.tables["documents"].skipped
    assert not rerun.tables["entities"].skipped
    assert sorted(r["text"] for r in rows(root, "entities")) == ["Asthma", "Ibuprofen", "children"]
    assert [r["text"] for r in rows(root, "entities", release_number=1) if r["doc_id"] == "1"] == [
        "Aspirin", "asthma"
    ]  # fmt: skip


def test_a_publish_that_changes_nothing_writes_no_version(where):
    out, root = where
    publish.publish(first_run(out), root)
    versions = latest_versions(root)
    # A rerun of bioner run that rewrote no shard: a new run id in the summary, same tables.
    storage.write_text('{"run_id": "r1-again"}\n', storage.join(out, "summary.json"))
    again = publish.publish(out, root)
    assert again.skipped and again.rows == 0 and again.release == 1
    assert latest_versions(root) == versions
    # One shard rewritten: only its document is published again.
    write_run(out, {1: ([document("2", "Asthma in adults.", 2)],
                        [entity("2", 0, "Asthma", "Disease", version=2, run="r3")])},
              run="r3")  # fmt: skip
    third = publish.publish(out, root)
    assert third.documents == 1 and third.release == 2
    assert third.tables["entities"].rows == 1
    assert {r["id"]: r["run_id"] for r in rows(root, "documents")} == {"1": "r1", "2": "r3"}


def test_a_deletion_in_a_shard_without_entities_is_published(tmp_path):
    out, root = str(tmp_path / "out"), str(tmp_path / "published")
    publish.publish(first_run(out), root)
    # Shard 0 holds only the tombstone of document 1 (no documents, so no entities file).
    out2 = write_run(str(tmp_path / "out2"), {1: ([document("2", "Asthma.", 2)], [])},
                     deleted=["1"], run="r2")  # fmt: skip
    report = publish.publish(out2, root)
    assert report.deleted == 1 and report.documents == 1
    assert [r["id"] for r in rows(root, "documents")] == ["2"] and rows(root, "entities") == []


def test_a_root_published_before_releases_is_adopted(tmp_path):
    out, root = str(tmp_path / "out"), str(tmp_path / "published")
    publish.publish(first_run(out), root)
    storage.remove_tree(publish.table_uri(root, publish.RELEASES))  # as an older bioner left it
    assert publish.release(root) is None and len(rows(root, "entities")) == 4
    report = publish.publish(second_run(str(tmp_path / "out2")), root)
    assert report.release == 1  # release 0: the tables as they were
    assert len(rows(root, "entities", release_number=0)) == 4
    assert sorted(r["text"] for r in rows(root, "entities")) == ["Asthma", "Ibuprofen", "children"]


def test_readers_before_the_first_release_completes(tmp_path, monkeypatch):
    out, root = str(tmp_path / "out"), str(tmp_path / "published")

    def crash(name):
        if name == "entities":
            raise RuntimeError("killed")

    monkeypatch.setattr(publish, "before_commit", crash)
    with pytest.raises(RuntimeError):
        publish.publish(first_run(out), root)
    with pytest.raises(publish.PublishError, match="nothing published yet"):
        publish.read(root, "documents")
    monkeypatch.undo()
    assert publish.publish(out, root).release == 1 and len(rows(root, "documents")) == 2


def test_a_table_published_before_the_source_column_gains_it(tmp_path, monkeypatch):
    out, root = str(tmp_path / "out"), str(tmp_path / "published")
    old = pa.schema([f for f in publish.PUBLISHED_ENTITIES if f.name != "source"])
    monkeypatch.setattr(publish, "PUBLISHED_ENTITIES", old)
    publish.publish(first_run(out), root)
    assert "source" not in publish.read(root, "entities").column_names
    monkeypatch.undo()
    out2 = str(tmp_path / "out2")
    write_run(out2, {0: ([document("3", "Cancer of the lung.")], [entity("3", 0, "Cancer", "Disease", run="r2")])}, run="r2")  # fmt: skip
    report = publish.publish(out2, root)
    table = publish.read(root, "entities")
    sources = dict(zip(table["doc_id"].to_pylist(), table["source"].to_pylist(), strict=True))
    assert sources["3"] == "tagger"  # an entities/1 table: every entity the tagger's
    assert {sources[d] for d in sources if d != "3"} == {None}  # rows published before
    # The column's own commit is not the run's: a rerun after a failure would still publish.
    assert report.tables["entities"].version == 2
    assert publish.publish(out2, root).tables["entities"].skipped


def test_graph_tables_by_hand():
    ents = pa.Table.from_pylist(
        [entity("d", 0, "TNF ", "Gene"), entity("d", 5, "tnf", "Gene"), entity("d", 9, "IL6", "Gene"),
         entity("d", 0, "IL6", "Gene", passage=1), entity("e", 0, "IL6", "Gene")],
        schema=pa.schema(list(ENTITIES_V1)),
    )  # fmt: skip
    nodes = {
        r["node_id"]: (r["mentions"], r["documents"])
        for r in publish.entity_nodes(ents).to_pylist()
    }
    assert nodes == {"Gene:tnf": (2, 1), "Gene:il6": (3, 2)}
    edges = publish.cooccurrence_edges(ents).to_pylist()
    assert edges == [
        {"source_id": "Gene:il6", "target_id": "Gene:tnf", "passages": 1, "documents": 1}
    ]


@pytest.mark.s3
def test_bioner_publish_outage_one_line_then_rerun_and_no_op(moto_s3, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    s3.reset()
    monkeypatch.setenv("BIONER_S3_MAX_ATTEMPTS", "2")
    root = moto_s3.uri(f"cli-{uuid.uuid4().hex[:8]}")
    endpoint = ["--endpoint", moto_s3.proxy.endpoint]
    out, out2 = first_run(str(tmp_path / "out")), second_run(str(tmp_path / "out2"))
    cli = CliRunner()
    assert cli.invoke(app, ["publish", out, "--to", root, *endpoint]).exit_code == 0

    def outage(name):
        if name == "mention_edges":
            moto_s3.proxy.cut_after = 0

    monkeypatch.setattr(publish, "before_commit", outage)
    try:
        failed = cli.invoke(app, ["publish", out2, "--to", root, *endpoint])
    finally:
        moto_s3.proxy.heal()
        monkeypatch.setattr(publish, "before_commit", lambda name: None)
    assert failed.exit_code == 1
    (line,) = failed.output.strip().splitlines()
    assert line.startswith(f"error: {publish.table_uri(root, 'mention_edges')}: cannot reach")
    assert publish.release(root).number == 1  # documents and entities moved; readers did not
    assert len(rows(root, "entities")) == 4
    done = cli.invoke(app, ["publish", out2, "--to", root, *endpoint])
    assert done.exit_code == 0 and '"release": 2' in done.output
    again = cli.invoke(app, ["publish", out2, "--to", root, *endpoint])
    assert again.exit_code == 0 and "nothing new to publish" in again.output
    assert '"release": 2' in again.output
