"""Exports: PubTator and BioC read back by our readers with exact offsets, graph files by polars
and DuckDB; the current view only (no tombstoned document, the latest version); S3 on moto.
"""

from __future__ import annotations

import re
import uuid

import pytest
import typer
from lxml import etree
from typer.testing import CliRunner

from bioner.readers.bioc import read_bioc
from bioner.readers.pubtator import read_pubtator
from flows.commands.publish import export_main
from infra import exports, s3, storage
from schemas import DOCUMENTS_V2, ENTITIES_V1, ENTITIES_V3, TOMBSTONES_V2


def document(doc_id: str, title: str, abstract: str, version: int = 1) -> dict:
    text = f"{title} {abstract}" if title and abstract else title or abstract
    return {
        "id": doc_id, "text": text, "version": version, "title": title, "language": "en",
        "source": "pubmed", "metadata": [], "journal": "J", "pub_date": "2024", "doi": "",
        "authors": [], "mesh_headings": [], "keywords": [], "publication_types": [],
        "vernacular_title": "", "other_abstracts": [], "sections": [],
    }  # fmt: skip


def entity(doc: dict, mention: str, label: str, *, nth: int = 0, passage: int = 0,
           selected: bool | None = None) -> dict:  # fmt: skip
    start = -1
    for _ in range(nth + 1):
        start = doc["text"].index(mention, start + 1)
    return {
        "doc_id": doc["id"], "doc_version": doc["version"], "passage_index": passage,
        "start": start, "end": start + len(mention), "text": mention, "label": label,
        "model_id": "m", "prompt_version": "p1", "run_id": "r1", "score": None,
        "selected": selected, "issues": [],
    }  # fmt: skip


D1 = document("1", "Aspirin in asthma.", "Bronchospasm after aspirin in β-blocker users.")
D2_OLD = document("2", "Old title.", "Ibuprofen.", version=1)
D2 = document("2", "Fever in children.", "Paracetamol\tlowers fever.", version=2)
D3 = document("3", "Deleted.", "Cisplatin nephrotoxicity.")
D4 = document("4", "", "Only text, no title: TNF and IL6.")

ENTITIES = {
    0: [
        entity(D1, "Aspirin", "Chemical"),
        entity(D1, "asthma", "Disease", passage=0),
        entity(D1, "Bronchospasm", "Disease", passage=1),
        entity(D1, "aspirin", "Chemical", passage=1),
        entity(D1, "β-blocker", "Chemical", passage=1),
        entity(D1, "users", "Species", passage=1, selected=False),  # rejected by the selector
        entity(D4, "TNF", "Gene"),
        entity(D4, "IL6", "Gene"),
    ],
    1: [
        entity(D2_OLD, "Ibuprofen", "Chemical", passage=1),  # an old version's entity
        entity(D2, "Fever", "Disease"),
        entity(D2, "Paracetamol", "Chemical", passage=1),
        entity(D2, "fever", "Disease", passage=1),
        entity(D3, "Cisplatin", "Chemical", passage=1),  # a deleted document's entity
    ],
}
#: What the current view holds: documents 1, 2 (version 2) and 4, without rejected entities.
EXPECTED = {
    "1": (D1["text"], {(s["start"], s["end"], s["label"]) for s in ENTITIES[0][:5]}),
    "2": (D2["text"], {(s["start"], s["end"], s["label"]) for s in ENTITIES[1][1:4]}),
    "4": (D4["text"], {(s["start"], s["end"], s["label"]) for s in ENTITIES[0][6:8]}),
}


def write_out(out: str) -> str:
    """An annotate OUT: two shards, a revised document, a deleted one, a shard not annotated."""
    docs = {0: [D1, D4], 1: [D2_OLD, D2, D3]}
    for k in (0, 1):
        storage.write_rows(docs[k], storage.join(out, "documents", f"shard={k}.parquet"),
                           DOCUMENTS_V2)  # fmt: skip
        storage.write_rows(ENTITIES[k], storage.join(out, "entities", f"shard={k}.parquet"),
                           ENTITIES_V1)  # fmt: skip
    storage.write_rows([document("9", "Not annotated yet.", "")],
                       storage.join(out, "documents", "shard=2.parquet"), DOCUMENTS_V2)  # fmt: skip
    tombs = [{"id": "3", "source": "u.xml", "position": 0}]
    storage.write_rows(tombs, storage.join(out, "tombstones", "shard=1.parquet"), TOMBSTONES_V2)
    return out


@pytest.fixture
def out(tmp_path) -> str:
    s3.reset()
    return write_out(str(tmp_path / "out"))


def spans_of(docs) -> dict[str, tuple[str, set[tuple[int, int, str]]]]:
    return {d.id: (d.text, {(s.start, s.end, s.label) for s in d.spans}) for d in docs}


def read_parts(report: exports.ExportReport, reader) -> list:
    return [d for uri in report.files[:-1] for d in reader(storage.read_text(uri))]


def test_pubtator_round_trip_exact_offsets(out, tmp_path):
    to = str(tmp_path / "pubtator")
    report = exports.export(out, to, "pubtator")
    assert [u.rsplit("/", 1)[1] for u in report.files] == [
        "shard=0.pubtator",
        "shard=1.pubtator",
        "_export.json",
    ]
    docs = read_parts(report, read_pubtator)
    found = spans_of(docs)
    # PubTator has no tabs in text: the writer puts a space (same length, same offsets)
    assert found["2"][0] == D2["text"].replace("\t", " ")
    found["2"] = (D2["text"], found["2"][1])
    assert found == EXPECTED  # no document 3 (deleted), 2 at version 2, no rejected span
    by_id = {d.id: d for d in docs}
    assert by_id["1"].document.title == D1["title"]
    assert [s.text(by_id["1"].text) for s in by_id["1"].spans][-2:] == ["aspirin", "β-blocker"]
    assert report.documents == 3 and report.annotations == 10
    manifest = storage.read_text(report.files[-1])
    assert '"shards without entities skipped": 1' in manifest
    assert '"pubtator: tabs and line breaks in text written as spaces": 1' in manifest


def test_bioc_round_trip_and_rejected_on_request(out, tmp_path):
    to = str(tmp_path / "bioc")
    report = exports.export(out, to, "bioc")
    docs = read_parts(report, read_bioc)
    assert spans_of(docs) == EXPECTED
    assert {d.id: d.document.title for d in docs} == {"1": D1["title"], "2": D2["title"], "4": ""}
    with_rejected = exports.export(out, to, "bioc", include_rejected=True)
    found = spans_of(read_parts(with_rejected, read_bioc))
    users = ENTITIES[0][5]
    assert found["1"][1] == EXPECTED["1"][1] | {(users["start"], users["end"], "Species")}


def test_graph_csv_with_polars_and_parquet_with_duckdb(out, tmp_path):
    polars = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    to = str(tmp_path / "graph")
    exports.export(out, to, "csv")
    docs = polars.read_csv(
        f"{to}/nodes_documents.csv", schema_overrides={"doc_id:ID(Document)": polars.Utf8}
    )
    assert docs.columns == ["doc_id:ID(Document)", "version:int", "title", "journal",
                            "pub_date", "doi", ":LABEL"]  # fmt: skip
    assert docs["doc_id:ID(Document)"].to_list() == ["1", "2", "4"]  # 3 deleted, 9 not annotated
    assert docs["version:int"].to_list() == [1, 2, 1]
    nodes = polars.read_csv(f"{to}/nodes_entities.csv")
    assert nodes.columns[0] == "node_id:ID(Entity)" and ":LABEL" in nodes.columns
    counts = dict(zip(nodes["node_id:ID(Entity)"], nodes["mentions:long"], strict=True))
    assert counts == {"Chemical:aspirin": 2, "Chemical:β-blocker": 1, "Chemical:paracetamol": 1,
                      "Disease:asthma": 1, "Disease:bronchospasm": 1, "Disease:fever": 2,
                      "Gene:il6": 1, "Gene:tnf": 1}  # fmt: skip
    assert set(nodes[":LABEL"]) >= {"Entity;Chemical", "Entity;Gene"}
    edges = polars.read_csv(
        f"{to}/edges_mentions.csv", schema_overrides={":START_ID(Document)": polars.Utf8}
    )
    assert edges.columns[:3] == [":START_ID(Document)", ":END_ID(Entity)", ":TYPE"]
    assert set(edges[":START_ID(Document)"]) == {"1", "2", "4"}
    assert set(edges[":TYPE"]) == {"MENTIONS"}
    pairs = polars.read_csv(f"{to}/edges_cooccurrences.csv")
    assert sorted(zip(pairs[":START_ID(Entity)"], pairs[":END_ID(Entity)"], strict=True)) == [
        ("Chemical:aspirin", "Chemical:β-blocker"),
        ("Chemical:aspirin", "Disease:asthma"),
        ("Chemical:aspirin", "Disease:bronchospasm"),
        ("Chemical:paracetamol", "Disease:fever"),
        ("Chemical:β-blocker", "Disease:bronchospasm"),
        ("Gene:il6", "Gene:tnf"),
    ]

    exports.export(out, to, "parquet")
    con = duckdb.connect()
    got = con.execute(
        f"select count(*), sum(\"mentions:long\") from '{to}/edges_mentions.parquet'"
    ).fetchone()
    assert got == (edges.height, edges["mentions:long"].sum())
    ids = con.execute(f"select \"doc_id:ID(Document)\" from '{to}/nodes_documents.parquet'")
    assert sorted(r[0] for r in ids.fetchall()) == ["1", "2", "4"]


def test_published_delta_root_exports_the_same(tmp_path):
    pytest.importorskip("deltalake", reason="install the s3 extra (deltalake)")
    from infra import publish

    s3.reset()
    root = str(tmp_path / "published")
    first = str(tmp_path / "run1")
    storage.write_rows([D2_OLD, D3], storage.join(first, "documents", "shard=0.parquet"),
                       DOCUMENTS_V2)  # fmt: skip
    storage.write_rows([ENTITIES[1][0], ENTITIES[1][4]],
                       storage.join(first, "entities", "shard=0.parquet"), ENTITIES_V1)  # fmt: skip
    storage.write_text('{"run_id": "r1"}', storage.join(first, "summary.json"))
    publish.publish(first, root)
    second = write_out(str(tmp_path / "run2"))  # revises 2, deletes 3
    storage.write_rows([D1, D4], storage.join(second, "documents", "shard=0.parquet"), DOCUMENTS_V2)
    storage.write_rows([D2], storage.join(second, "documents", "shard=1.parquet"), DOCUMENTS_V2)
    storage.write_rows(ENTITIES[1][1:4], storage.join(second, "entities", "shard=1.parquet"),
                       ENTITIES_V1)  # fmt: skip
    storage.write_text('{"run_id": "r2"}', storage.join(second, "summary.json"))
    publish.publish(second, root)

    report = exports.export(root, str(tmp_path / "from-delta"), "bioc", batch_docs=2)
    assert len(report.files) == 3  # two parts of at most two documents, then the manifest
    assert spans_of(read_parts(report, read_bioc)) == EXPECTED
    exports.export(root, str(tmp_path / "graph"), "csv")
    text = storage.read_text(str(tmp_path / "graph" / "nodes_documents.csv"))
    assert text.splitlines()[0] == (
        '"doc_id:ID(Document)","version:int","title","journal","pub_date","doi",":LABEL"'
    )
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == ['"1"', '"2"', '"4"']


@pytest.mark.s3
def test_export_to_s3(out, moto_s3):
    s3.reset()
    to = moto_s3.uri(f"export-{uuid.uuid4().hex[:12]}")
    report = exports.export(out, to, "pubtator")
    assert all(u.startswith(to + "/") for u in report.files)
    assert spans_of(read_parts(report, read_pubtator))["1"] == EXPECTED["1"]
    graph = exports.export(out, to, "parquet")
    nodes = storage.read_table(storage.join(to, "nodes_documents.parquet"))
    assert sorted(nodes.column("doc_id:ID(Document)").to_pylist()) == ["1", "2", "4"]
    assert sorted(storage.list_dir(to)) == sorted(
        {u.rsplit("/", 1)[1] for u in [*report.files, *graph.files]}
    )


def test_cli_export_and_bad_format(out, tmp_path):
    app = typer.Typer()
    app.command()(export_main)
    to = str(tmp_path / "cli")
    done = CliRunner().invoke(app, [out, "--format", "bioc", "--to", to])
    assert done.exit_code == 0, done.output
    assert storage.exists(storage.join(to, "shard=0.bioc.xml"))
    bad = CliRunner().invoke(app, [out, "--format", "brat", "--to", to])
    assert bad.exit_code == 2 and "unknown --format 'brat'" in bad.output
    missing = CliRunner().invoke(app, [str(tmp_path / "nothing"), "--format", "csv", "--to", to])
    assert missing.exit_code == 1 and "neither an annotate output folder" in missing.output


def test_bioc_annotations_say_what_found_them(tmp_path):
    out = str(tmp_path / "out")
    doc = document("7", "Hormone therapy.", "Cisplatin and aspirin (ASA); ASA again.")
    found = [
        entity(doc, "Cisplatin", "Chemical") | {"source": "tagger"},
        entity(doc, "aspirin", "Chemical") | {"source": "lexicon"},
        entity(doc, "ASA", "Chemical", nth=1) | {"source": "abbreviation"},
    ]
    storage.write_rows([doc], storage.join(out, "documents", "shard=0.parquet"), DOCUMENTS_V2)
    storage.write_rows(found, storage.join(out, "entities", "shard=0.parquet"), ENTITIES_V3)
    report = exports.export(out, str(tmp_path / "bioc"), "bioc")
    xml = etree.fromstring(storage.read_text(report.files[0]).encode())
    sources = {
        a.findtext("text"): a.findtext("infon[@key='source']") for a in xml.iter("annotation")
    }
    assert sources == {"Cisplatin": "tagger", "aspirin": "lexicon", "ASA": "abbreviation"}
    (back,) = read_parts(report, read_bioc)  # the extra infon reads back as before
    assert [s.text(back.text) for s in back.spans] == ["Cisplatin", "aspirin", "ASA"]


CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("fmt", ["pubtator", "bioc", "csv"])
def test_exports_never_write_a_raw_control_character(fmt, tmp_path):
    # Ingest quarantines such ids; tables written by other means must not leak them either.
    out = str(tmp_path / "out")
    nul = document("12\x003", "Aspirin\x00 in asthma.", "Bronchospasm\x1f after aspirin.")
    good = document("5", "Fever\x85 in children.", "Paracetamol\x0b lowers fever.")
    storage.write_rows([nul, good], storage.join(out, "documents", "shard=0.parquet"), DOCUMENTS_V2)
    found = [entity(nul, "Aspirin", "Chemical"), entity(good, "Paracetamol", "Chemical", passage=1)]
    storage.write_rows(found, storage.join(out, "entities", "shard=0.parquet"), ENTITIES_V1)
    report = exports.export(out, str(tmp_path / fmt), fmt)
    for uri in report.files:
        assert not CONTROLS.search(storage.read_text(uri)), uri
    if fmt == "pubtator":
        (doc,) = read_parts(report, read_pubtator)
        assert (doc.id, doc.text) == ("5", "Fever  in children. Paracetamol  lowers fever.")
        assert report.notes["pubtator: documents whose id or labels cannot be written left out"]
        assert report.notes["pubtator: control characters in text written as spaces"] == 2
    elif fmt == "csv":
        assert report.notes["csv: control characters written as U+FFFD"] >= 4
