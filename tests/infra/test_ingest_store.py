"""The ingest engine without Prefect: reconciliation, versions, deletions, restarts, bad files."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lxml import etree

from bioner.ingest import Tombstone, read_pubmed, shard_of
from bioner.records import Document
from infra import ingest_store as ingest
from schemas import DOCUMENTS_V2, PASSAGES_V1, QUARANTINE_V1, TOMBSTONES_V2

BASELINE = "pubmed26n1334.subset.xml.gz"
UPDATE = "pubmed26n1335.subset.xml.gz"
# The DeleteCitation of the update, as the file has it.
DELETED = {"41456105", "41557076", "41616784", "41618748", "41618749", "41618779"}


def article(pmid: str, title: str, version: int = 1) -> str:
    pmid_el = f'<PMID Version="{version}">{pmid}</PMID>' if pmid else ""
    return (
        f"<PubmedArticle><MedlineCitation>{pmid_el}<Article><ArticleTitle>{title}</ArticleTitle>"
        "<Abstract><AbstractText>Aspirin helps. It does.</AbstractText></Abstract>"
        "<Language>eng</Language></Article></MedlineCitation></PubmedArticle>\n"
    )


def delete(*pmids: str) -> str:
    return "<DeleteCitation>" + "".join(f"<PMID>{p}</PMID>" for p in pmids) + "</DeleteCitation>\n"


def pubmed(path: Path, *records: str) -> str:
    path.write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n' + "".join(records) + "</PubmedArticleSet>\n"
    )
    return str(path)


def rows(out: Path, table: str) -> list[dict]:
    """Every row of a shard table, shard by shard."""
    found = []
    for file in sorted((out / table).glob("shard=*.parquet"), key=lambda p: int(p.stem[6:])):
        found += pq.read_table(file).to_pylist()
    return found


def current(out: Path) -> dict[str, tuple[int, str]]:
    return {d["id"]: (d["version"], d["title"]) for d in rows(out, "documents")}


def snapshot(out: Path) -> dict[str, str]:
    """Hash of every file but the run manifests (each run writes its own)."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "runs" not in p.parts
    }


def assert_reconciles(summary: dict) -> None:
    for r in [*(r for r in summary["inputs"] if r["status"] == "ingested"), summary["totals"]]:
        assert r["records_read"] == r["documents"] + r["tombstones"] + r["quarantined"], r
    now, history = summary["current"], summary["current"]["history"]
    assert history["documents_read"] == (
        now["documents"] + history["collapsed"] + history["superseded"] + history["deleted"]
    )


def pmids(path: Path) -> dict[str, int]:
    """PMID -> Version of a PubMed file, read with plain lxml (not the reader under test)."""
    root = etree.fromstring(gzip.decompress(path.read_bytes()))
    return {
        p.text: int(p.get("Version", "1"))
        for p in root.iterfind("PubmedArticle/MedlineCitation/PMID")
    }


# --------------------------------------------------------------------------- real PubMed files


@pytest.fixture(scope="module")
def pubmed_files(shared_data) -> tuple[Path, Path]:
    return shared_data / "pubmed" / BASELINE, shared_data / "pubmed" / UPDATE


@pytest.mark.data
def test_baseline_then_update_gives_the_current_view(pubmed_files, tmp_path):
    baseline, update = pubmed_files
    out = tmp_path / "out"
    first = ingest.ingest_paths([str(baseline)], str(out), 4)
    second = ingest.ingest_paths([str(update)], str(out))
    assert_reconciles(first)
    assert_reconciles(second)

    # None of the six deleted PMIDs is in the baseline subset: nothing current was removed,
    # and all six deletions stay in force for when an older file brings them.
    assert DELETED & set(pmids(baseline)) == set()
    assert DELETED & set(pmids(update)) == set()
    (entry,) = second["inputs"]
    assert (entry["records_read"], entry["documents"], entry["tombstones"]) == (36, 30, 6)
    assert (entry["deleted"], entry["superseded"], entry["duplicates_collapsed"]) == (0, 0, 0)
    assert {t["id"] for t in rows(out, "tombstones")} == DELETED
    assert {t["source"] for t in rows(out, "tombstones")} == {UPDATE}

    expected = {**pmids(baseline), **pmids(update)}
    assert {i: v for i, (v, _) in current(out).items()} == expected
    assert second["current"] | {"passages": 0} == {
        "documents": 60,
        "tombstones": 6,
        "passages": 0,
        "history": {
            "documents_read": 60,
            "tombstones_read": 6,
            "collapsed": 0,
            "superseded": 0,
            "deleted": 0,
        },
    }

    # Every field of every document survives the tables, in its own shard.
    read = {}
    for path in pubmed_files:
        with gzip.open(path) as stream:
            read |= {d.id: d for d in read_pubmed(stream, path.name) if isinstance(d, Document)}
    for shard in range(4):
        for row in pq.read_table(out / "documents" / f"shard={shard}.parquet").to_pylist():
            assert shard_of(row["id"], 4) == shard
            assert ingest.document_of(row) == read[row["id"]]
    structured = ingest.document_of(
        next(r for r in rows(out, "documents") if r["id"] == "26228458")
    )
    assert [s.label for s in structured.sections] == [
        "TITLE",
        "BACKGROUND",
        "METHODS",
        "RESULTS",
        "CONCLUSIONS",
    ]
    texts = {d["id"]: d["text"] for d in rows(out, "documents")}
    passages = rows(out, "passages")
    assert len(passages) == second["current"]["passages"] > 60
    assert all(texts[p["doc_id"]][p["start"] : p["end"]] == p["text"] for p in passages)
    schemas = {"documents": DOCUMENTS_V2, "tombstones": TOMBSTONES_V2, "passages": PASSAGES_V1}
    for table, schema in schemas.items():
        assert pq.read_schema(out / table / "shard=0.parquet").equals(schema), table


@pytest.mark.data
def test_rerun_writes_nothing_and_one_run_equals_two(pubmed_files, tmp_path):
    baseline, update = pubmed_files
    twice, once = tmp_path / "twice", tmp_path / "once"
    ingest.ingest_paths([str(baseline)], str(twice), 4)
    ingest.ingest_paths([str(update)], str(twice))
    before = snapshot(twice)
    again = ingest.ingest_paths([str(baseline), str(update)], str(twice))
    assert snapshot(twice) == before
    assert again["shards_written"] == [] and again["totals"]["skipped"] == 2
    assert [r["reason"] for r in again["inputs"]] == [
        f"already ingested as input 1 ({BASELINE})",
        f"already ingested as input 2 ({UPDATE})",
    ]

    # Given in the other order: PubMed files are ordered by their number, and said so.
    summary = ingest.ingest_paths([str(update), str(baseline)], str(once), 4)
    assert summary["notes"] == [
        f"PubMed files ordered by their number (baseline first): {BASELINE}, {UPDATE}"
    ]
    for table in ("documents", "tombstones", "passages"):
        assert rows(once, table) == rows(twice, table), table


@pytest.mark.data
def test_compaction_in_worker_processes_gives_the_same_tables(pubmed_files, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    ingest.ingest_paths([str(p) for p in pubmed_files], str(serial), 4)
    summary = ingest.ingest_paths([str(p) for p in pubmed_files], str(parallel), 4, workers=2)
    assert_reconciles(summary)
    assert summary["shards_written"] == [0, 1, 2, 3]
    for table in ("documents", "tombstones", "passages"):
        assert rows(parallel, table) == rows(serial, table), table


# --------------------------------------------------------------------------- the rules, end to end


def test_versions_deletions_and_re_additions(tmp_path):
    a = pubmed(tmp_path / "a.xml", article("1", "one"), article("2", "two"), article("3", "three"))
    b = pubmed(
        tmp_path / "b.xml",
        article("1", "one v2", version=2),
        delete("2"),
        article("3", "three again"),
        article("1", "one v1 late"),  # a lower version: the v2 just read stays
    )
    c = pubmed(tmp_path / "c.xml", article("2", "two is back"))
    out = tmp_path / "out"
    ingest.ingest_paths([a], str(out), 2)
    summary = ingest.ingest_paths([b], str(out))
    assert current(out) == {"1": (2, "one v2"), "3": (1, "three again")}
    assert [t["id"] for t in rows(out, "tombstones")] == ["2"]
    (entry,) = summary["inputs"]
    assert {k: entry[k] for k in ("records_read", "documents", "tombstones")} == {
        "records_read": 4,
        "documents": 3,
        "tombstones": 1,
    }
    assert (entry["superseded"], entry["deleted"], entry["duplicates_collapsed"]) == (2, 1, 1)
    assert_reconciles(summary)

    summary = ingest.ingest_paths([c], str(out))
    assert current(out)["2"] == (1, "two is back")
    assert rows(out, "tombstones") == []
    assert summary["current"]["history"] == {
        "documents_read": 7,
        "tombstones_read": 1,
        "collapsed": 1,
        "superseded": 2,
        "deleted": 1,
    }
    assert_reconciles(summary)


def test_duplicates_in_one_file_later_wins_and_is_counted(tmp_path):
    path = pubmed(
        tmp_path / "d.xml", article("7", "first"), article("8", "x"), article("7", "second")
    )
    summary = ingest.ingest_paths([path], str(tmp_path / "out"), 2)
    assert current(tmp_path / "out") == {"7": (1, "second"), "8": (1, "x")}
    assert summary["totals"]["duplicates_collapsed"] == 1
    assert summary["totals"]["documents"] == 3 and summary["current"]["documents"] == 2
    assert_reconciles(summary)


def test_shards_are_fixed_by_the_first_run(tmp_path):
    out = str(tmp_path / "out")
    ingest.ingest_paths([pubmed(tmp_path / "a.xml", article("1", "a"))], out, 4)
    with pytest.raises(ingest.ShardsChanged, match="has 4 shards; --shards 8 would move"):
        ingest.ingest_paths([pubmed(tmp_path / "b.xml", article("2", "b"))], out, 8)
    assert ingest.ingest_paths([str(tmp_path / "b.xml")], out)["n_shards"] == 4
    assert json.loads((tmp_path / "out/_ingest/config.json").read_text()) == {
        "n_shards": 4,
        "documents_schema": "documents/2",
    }


# --------------------------------------------------------------------------- bad files


def quarantine(out: Path) -> list[dict]:
    found = []
    for file in sorted((out / "quarantine").glob("*.parquet")):
        table = pq.read_table(file)
        assert table.schema.equals(QUARANTINE_V1)
        found += table.to_pylist()
    return found


@pytest.mark.data
def test_truncated_gzip_keeps_the_records_before_the_cut(pubmed_files, tmp_path):
    data = pubmed_files[0].read_bytes()
    cut = tmp_path / "pubmed26n1334.cut.xml.gz"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    summary = ingest.ingest_paths([str(cut)], str(out), 2)
    (entry,) = summary["inputs"]
    kept = entry["documents"]
    assert 0 < kept < 30 and entry["complete"] is False
    assert entry["reason"].startswith("truncated gzip: Compressed file ended")
    assert summary["current"]["documents"] == kept
    (row,) = quarantine(out)
    assert (row["position"], row["reason"], row["source"]) == (kept + 1, entry["reason"], cut.name)
    assert ingest.exit_status(summary) == 1
    assert ingest.error_lines(summary) == [f"{cut}: {entry['reason']}"]
    assert_reconciles(summary)


def test_xml_broken_mid_file(tmp_path):
    path = tmp_path / "broken.xml"
    pubmed(path, article("1", "a"), article("2", "b"), "<PubmedArticle><Oops></PubmedArticle>\n")
    summary = ingest.ingest_paths([str(path)], str(tmp_path / "out"), 2)
    (entry,) = summary["inputs"]
    assert (entry["records_read"], entry["documents"], entry["quarantined"]) == (3, 2, 1)
    assert entry["complete"] is True
    (row,) = quarantine(tmp_path / "out")
    assert (row["position"], row["line"]) == (3, 5)
    assert row["reason"].startswith("XML broken at line 5, column ")
    assert row["reason"].endswith("the record at line 5 of broken.xml quarantined")
    assert set(current(tmp_path / "out")) == {"1", "2"}
    assert_reconciles(summary)


def test_wrong_encoding_breaks_where_it_starts(tmp_path):
    path = tmp_path / "latin1.xml"
    pubmed(path, article("1", "a"), article("2", "b"), article("3", "Sjögren"))
    path.write_bytes(path.read_bytes().replace("ö".encode(), "ö".encode("latin-1")))
    summary = ingest.ingest_paths([str(path)], str(tmp_path / "out"), 2)
    (entry,) = summary["inputs"]
    assert (entry["documents"], entry["quarantined"], entry["complete"]) == (2, 1, True)
    (row,) = quarantine(tmp_path / "out")
    assert row["reason"].startswith("XML broken at line 5") and "encoding" in row["reason"]
    assert (row["position"], row["record_id"]) == (3, "3")
    assert_reconciles(summary)


def test_record_without_pmid_goes_to_quarantine(tmp_path):
    path = pubmed(tmp_path / "q.xml", article("1", "a"), article("", "no id"), article("2", "b"))
    summary = ingest.ingest_paths([path], str(tmp_path / "out"), 2)
    (entry,) = summary["inputs"]
    assert (entry["records_read"], entry["documents"], entry["quarantined"]) == (3, 2, 1)
    assert entry["complete"] is True and ingest.exit_status(summary) == 0
    (row,) = quarantine(tmp_path / "out")
    assert (row["position"], row["reason"], row["source"]) == (2, "no PMID", "q.xml")
    assert row["run_id"] == summary["run_id"] and "no id" in row["raw"]
    assert_reconciles(summary)


def test_empty_file_is_an_error_and_the_others_go_on(tmp_path):
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    good = pubmed(tmp_path / "good.xml", article("1", "a"))
    summary = ingest.ingest_paths([str(empty), good], str(tmp_path / "out"), 2)
    assert [(r["name"], r["status"], r["reason"]) for r in summary["inputs"]] == [
        ("empty.xml", "error", "empty file"),
        ("good.xml", "ingested", ""),
    ]
    assert summary["totals"]["errors"] == 1 and ingest.exit_status(summary) == 1
    assert ingest.error_lines(summary) == [f"{empty}: empty file"]
    assert set(current(tmp_path / "out")) == {"1"}


def test_a_file_that_gives_nothing_commits_nothing(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("<PubmedArticleSet>\n<<<Oops></PubmedArticleSet>")
    summary = ingest.ingest_paths([str(path)], str(tmp_path / "out"), 2)
    (entry,) = summary["inputs"]
    assert entry["status"] == "error" and entry["reason"].startswith("XML broken at line 2")
    assert ingest.read_log(str(tmp_path / "out")) == []
    assert len(quarantine(tmp_path / "out")) == 1  # the break is recorded all the same


def test_folder_inputs_list_what_they_skip(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    pubmed(folder / "sub" / "b.xml", article("2", "b"))
    pubmed(folder / "a.xml", article("1", "a"))
    (folder / "README.md").write_text("# PubMed updates\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    summary = ingest.ingest_paths([str(folder)], str(tmp_path / "out"), 2)
    assert [(r["name"], r["status"]) for r in summary["inputs"]] == [
        ("README.md", "skipped"),
        ("a.xml", "ingested"),
        ("b.xml", "ingested"),
    ]
    assert summary["inputs"][0]["reason"].startswith("not a recognised corpus format")
    assert ingest.exit_status(summary) == 0
    named = ingest.ingest_paths([str(folder / "README.md")], str(tmp_path / "out"))
    assert named["inputs"][0]["status"] == "error"  # named on its own it is a mistake


def test_missing_input_fails_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.xml: no such file"):
        ingest.ingest_paths([str(tmp_path / "nope.xml")], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.data
def test_cnki_and_jsonl_beside_pubmed(pubmed_files, shared_data, tmp_path):
    lines = tmp_path / "notes.jsonl"
    lines.write_text(
        json.dumps({"id": "j1", "title": "Aspirin.", "text": "Aspirin and asthma."})
        + "\n"
        + json.dumps({"id": "", "text": "no id"})
        + "\n"
    )
    cnki = shared_data / "cnki" / "estudy" / "demo_cnki_202101.txt"
    out = tmp_path / "out"
    summary = ingest.ingest_paths([str(cnki), str(lines), str(pubmed_files[0])], str(out), 4)
    formats = {
        r["name"]: (r["format"], r["documents"], r["quarantined"]) for r in summary["inputs"]
    }
    assert formats["notes.jsonl"] == ("jsonl", 1, 1)
    assert formats[BASELINE] == ("pubmed", 30, 0)
    assert formats[cnki.name][0] == "cnki" and formats[cnki.name][1] > 0
    docs = {d["id"]: d for d in rows(out, "documents")}
    assert docs["j1"]["text"] == "Aspirin. Aspirin and asthma."
    assert any(d["language"] == "zh" and d["source"] == cnki.name for d in docs.values())
    assert_reconciles(summary)


CNKI_ENDNOTE = Path(__file__).parents[1] / "bioner" / "ingest" / "data" / "cnki_endnote.txt"


def test_cnki_endnote_every_record_accounted_for_bad_bytes_and_gzip_too(tmp_path):
    data = CNKI_ENDNOTE.read_bytes()
    n = sum(1 for line in data.splitlines() if line.startswith(b"%0 "))  # apart from the reader
    bad = tmp_path / "bad_bytes.txt"
    title = "新辅助免疫治疗".encode()
    bad.write_bytes(data.replace(title, b"\xff" + title[1:]))
    packed = tmp_path / "packed.txt.gz"
    packed.write_bytes(gzip.compress(data))
    out = tmp_path / "out"
    summary = ingest.ingest_paths([str(CNKI_ENDNOTE), str(bad), str(packed)], str(out), 2)
    counts = {
        r["name"]: (r["format"], r["records_read"], r["documents"], r["quarantined"], r["complete"])
        for r in summary["inputs"]
    }
    assert counts == {
        CNKI_ENDNOTE.name: ("cnki", n, 6, 1, True),
        bad.name: ("cnki", n, 5, 2, True),
        packed.name: ("cnki", n, 6, 1, True),
    }
    rows = {(r["source"], r["position"]): r for r in quarantine(out)}
    assert sorted(rows) == [
        (bad.name, 3),
        (bad.name, 5),
        (CNKI_ENDNOTE.name, 5),
        (packed.name, 5),
    ]
    assert rows[bad.name, 3]["reason"].startswith("undecodable bytes at byte offset ")
    assert rows[bad.name, 3]["line"] == 34  # the line of its %0
    assert rows[bad.name, 5]["reason"] == "record without a title or an abstract"
    assert summary["current"]["documents"] == 6  # the same records in the three files
    assert_reconciles(summary)


# --------------------------------------------------------------------------- restarts


def test_interrupted_runs_are_repaired(tmp_path):
    out = tmp_path / "out"
    a = pubmed(tmp_path / "a.xml", article("1", "a"), article("2", "b"), delete("9"))
    ingest.ingest_paths([a], str(out), 2)
    expected = {t: rows(out, t) for t in ("documents", "tombstones", "passages")}

    # A segment folder without _SUCCESS, a log line lost in a crash, shard tables that
    # disagree (a crash between their renames): all repaired by the next run.
    (out / "_ingest/segments/0123456789abcdef").mkdir()
    (out / "_ingest/segments/0123456789abcdef/part-0.parquet").write_bytes(b"PAR1 half")
    (out / "_ingest/inputs.jsonl").write_text("")
    (out / "tombstones/shard=0.parquet").unlink()
    (out / "passages/shard=1.parquet").unlink()
    # A compaction killed mid-table left its temporary file (an older bioner's name: a day old).
    torn = out / "documents/.shard=1.parquet.0123456789abcdef0123456789abcdef.tmp"
    torn.write_bytes(b"PAR1 half")
    os.utime(torn, (0, 0))
    summary = ingest.ingest_paths([a], str(out))
    assert summary["notes"] == [
        "removed 1 temporary file(s) of an interrupted run",
        "removed the unfinished segment 0123456789abcdef of an interrupted run",
        "recovered input 1 (a.xml) of an interrupted run",
    ]
    assert summary["inputs"][0]["status"] == "skipped"
    assert summary["shards_written"] == [0, 1]
    assert {t: rows(out, t) for t in expected} == expected
    assert not (out / "_ingest/segments/0123456789abcdef").exists() and not torn.exists()


def test_another_passage_length_redoes_the_passages_only(tmp_path):
    out = tmp_path / "out"
    a = pubmed(tmp_path / "a.xml", article("1", "a"))
    ingest.ingest_paths([a], str(out), 1)
    documents = rows(out, "documents")
    summary = ingest.ingest_paths([a], str(out), max_chars=16)
    assert summary["shards_written"] == [0]
    assert rows(out, "documents") == documents
    assert max(p["end"] - p["start"] for p in rows(out, "passages")) <= 16


def test_segments_are_written_in_bounded_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "BUFFER_ROWS", 256)
    path = pubmed(tmp_path / "big.xml", *(article(str(i), f"t{i}") for i in range(1, 601)))
    ingest.ingest_paths([path], str(tmp_path / "out"), 1)
    (part,) = (tmp_path / "out/_ingest/segments").glob("*/part-0.parquet")
    assert pq.ParquetFile(part).metadata.num_row_groups == 3  # 256 + 256 + 88 rows


# --------------------------------------------------------------------------- planning


def test_pubmed_files_are_ordered_by_number_in_their_places():
    given = [
        "x.jsonl",
        "pubmed26n1335.xml.gz",
        "y.txt",
        "pubmed25n1274.xml.gz",
        "pubmed26n0001.xml.gz",
    ]
    assert ingest.pubmed_order(given) == [
        "x.jsonl",
        "pubmed25n1274.xml.gz",
        "y.txt",
        "pubmed26n0001.xml.gz",
        "pubmed26n1335.xml.gz",
    ]


def test_the_same_content_twice_in_one_run_is_read_once(tmp_path):
    a = pubmed(tmp_path / "a.xml", article("1", "a"))
    (tmp_path / "copy.xml").write_bytes(Path(a).read_bytes())
    summary = ingest.ingest_paths([a, str(tmp_path / "copy.xml"), a], str(tmp_path / "out"), 1)
    assert [(r["name"], r["status"], r["reason"]) for r in summary["inputs"]] == [
        ("a.xml", "ingested", ""),
        ("copy.xml", "skipped", f"same content as {a}"),
    ]


def test_tombstone_rows_keep_their_source_and_position(tmp_path):
    path = pubmed(tmp_path / "u.xml", article("1", "a"), delete("5", "6"))
    ingest.ingest_paths([path], str(tmp_path / "out"), 1)
    assert rows(tmp_path / "out", "tombstones") == [
        {"id": "5", "source": "u.xml", "position": 2},
        {"id": "6", "source": "u.xml", "position": 3},
    ]
    assert Tombstone("5", "u.xml", 2)  # the record the rows come from


def test_an_older_pubmed_file_after_newer_ones_is_noted(tmp_path):
    out = str(tmp_path / "out")
    ingest.ingest_paths([pubmed(tmp_path / "pubmed26n0002.xml", article("1", "new"))], out, 1)
    summary = ingest.ingest_paths(
        [pubmed(tmp_path / "pubmed26n0001.xml", article("1", "old"))], out
    )
    assert summary["notes"] == [
        "pubmed26n0001.xml is older than PubMed files ingested before; "
        "its records are applied after theirs (versions still decide)"
    ]
    assert current(tmp_path / "out") == {"1": (1, "old")}


# --------------------------------------------------------------------------- parallel parsing


def parquet_files(out: Path) -> dict[str, str]:
    """Hash of every Parquet file: segments, quarantine and shard tables."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.parquet"))
    }


def reconciliation(summary: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["inputs"]]


MANY = [article(str(i), f"Title {i}") for i in range(1, 400)]  # past the 64 KiB head


@pytest.mark.parametrize(
    "records",
    [
        [
            *MANY,
            article("", "no id"),
            delete("3", "4"),
            article("7", "again", 2),
            article("5", "b"),
        ],
        [*MANY, "<PubmedArticle><Oops></PubmedArticle>\n", article("99", "lost")],  # broken
        [*MANY, "<!-- </PubmedArticle> -->\n", article("99", "kept")],  # a cut in a comment
    ],
    ids=["mixed", "broken", "comment"],
)
def test_parsing_in_worker_processes_writes_the_same_files(records, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "PARSE_CHUNK_BYTES", 1000)  # many chunks of a few records
    path = pubmed(tmp_path / "in.xml", *records)
    one = ingest.ingest_paths([path], str(tmp_path / "one"), 3, run_id="r")
    two = ingest.ingest_paths([path], str(tmp_path / "two"), 3, run_id="r", workers=2)
    assert reconciliation(two) == reconciliation(one)
    assert parquet_files(tmp_path / "two") == parquet_files(tmp_path / "one")
    assert_reconciles(two)


@pytest.mark.data
def test_truncated_gzip_in_worker_processes(pubmed_files, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "PARSE_CHUNK_BYTES", 1000)
    data = pubmed_files[0].read_bytes()
    cut = tmp_path / "pubmed26n1334.cut.xml.gz"
    cut.write_bytes(data[: len(data) * 6 // 10])
    one = ingest.ingest_paths([str(cut)], str(tmp_path / "one"), 2, run_id="r")
    two = ingest.ingest_paths([str(cut)], str(tmp_path / "two"), 2, run_id="r", workers=2)
    assert reconciliation(two) == reconciliation(one)
    assert parquet_files(tmp_path / "two") == parquet_files(tmp_path / "one")
