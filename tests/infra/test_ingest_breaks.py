"""Nothing lost at a break: every complete record before a gzip cut, stray bytes, an XML error,
bad bytes or a bad id is kept or quarantined, and the reconciliation counts it.

Each case states what a person can count in the fixture: ``expected`` complete records, of
which ``bad`` cannot be used; the ingest must keep ``expected - bad`` and quarantine ``bad``,
so ``lost = expected - documents - tombstones - quarantined = 0``.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra import ingest_store as ingest


def article(pmid: str, title: str = "Aspirin in asthma", words: int = 40) -> bytes:
    """A PubmedArticle whose abstract is ``words`` random words (gzip cannot squeeze it away)."""
    rng = random.Random(pmid)
    abstract = " ".join("".join(rng.choices("abcdefghijklmnop", k=7)) for _ in range(words))
    return (
        f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
        f"<ArticleTitle>{title}.</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText>"
        "</Abstract><Language>eng</Language></Article></MedlineCitation></PubmedArticle>\n"
    ).encode()


def pubmed(*records: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n'
        + b"".join(records)
        + b"</PubmedArticleSet>\n"
    )


def bioc_document(doc_id: str, text: str = "Aspirin in asthma.") -> bytes:
    return (
        f'<document><id>{doc_id}</id><passage><infon key="type">title</infon>'
        f"<offset>0</offset><text>{text}</text></passage></document>\n"
    ).encode()


def bioc(*documents: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<collection><source>t</source><date/><key/>\n'
        + b"".join(documents)
        + b"</collection>\n"
    )


def run(tmp_path: Path, name: str, data: bytes) -> tuple[dict, list[dict], dict]:
    """Ingest one file; its reconciliation entry, its quarantine rows and the run summary."""
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    summary = ingest.ingest_paths([str(path)], str(out), 2)
    rows = [
        r
        for f in sorted((out / "quarantine").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    (entry,) = summary["inputs"]
    return entry, rows, summary


def assert_nothing_lost(entry: dict, expected: int, bad: int = 0) -> None:
    assert entry["status"] == "ingested", entry
    counted = entry["documents"] + entry["tombstones"] + entry["quarantined"]
    assert entry["records_read"] == counted, entry
    assert (entry["documents"], entry["quarantined"]) == (expected - bad, bad), entry


# --------------------------------------------------------------------------- gzip


def complete_records(compressed: bytes) -> int:
    """Complete records in what a cut gzip still holds (plain zlib, not the code under test)."""
    data = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(compressed)
    return data.count(b"</PubmedArticle>")


@pytest.mark.parametrize("fraction", [0.02, 0.05, 0.1, 0.3, 0.6, 0.9, 0.999])
def test_truncated_gzip_keeps_every_complete_record_before_the_cut(fraction, tmp_path):
    data = gzip.compress(pubmed(*(article(str(i), words=200) for i in range(1, 301))))
    assert len(data) > 4 * 65_536  # cuts inside and past the first 64 KiB
    cut = data[: int(len(data) * fraction)]
    expected = complete_records(cut)
    entry, rows, summary = run(tmp_path, "cut.xml.gz", cut)
    assert_nothing_lost(entry, expected)
    assert entry["complete"] is False
    assert entry["reason"].startswith("truncated gzip: Compressed file ended")
    (row,) = rows  # the cut itself, after the records kept
    assert (row["position"], row["reason"]) == (expected + 1, entry["reason"])
    assert ingest.exit_status(summary) == 1


def test_gzip_cut_inside_the_first_64_kib_keeps_its_three_records(tmp_path):
    data = gzip.compress(pubmed(*(article(str(i), words=2000) for i in range(1, 5))))
    cut = data[: len(data) * 4 // 5]
    assert complete_records(cut) == 3 and len(gzip.decompress(data)) < 65_536 * 2
    entry, _, _ = run(tmp_path, "cut.xml.gz", cut)
    assert_nothing_lost(entry, 3)


@pytest.mark.parametrize(
    "stray", [b"garbage after the data\n", b"\x00\x01", b"\x1f", b"x" * 70_000]
)
def test_stray_bytes_after_the_gzip_data_lose_nothing(stray, tmp_path):
    data = gzip.compress(pubmed(*(article(str(i)) for i in range(1, 201))))
    entry, rows, summary = run(tmp_path, "stray.xml.gz", data + stray)
    assert_nothing_lost(entry, 200)
    assert entry["complete"] is True and ingest.exit_status(summary) == 0
    assert "truncated" not in entry["reason"]
    assert entry["reason"] == (
        f"{len(stray):,} stray trailing byte{'s' if len(stray) > 1 else ''} after the end of the gzip "
        f"data (at byte {len(data):,}) ignored"
    )
    (row,) = rows
    assert row["reason"] == entry["reason"]


def test_several_gzip_members_are_read_and_trailing_zeros_ignored(tmp_path):
    first = gzip.compress(pubmed(*(article(str(i)) for i in range(1, 3)))[:-20])
    second = gzip.compress(b"</PubmedArticleSet>\n")
    entry, rows, _ = run(tmp_path, "members.xml.gz", first + second + b"\0" * 8)
    assert_nothing_lost(entry, 2)
    assert entry["complete"] is True and rows == []


def test_bioc_gzip_cut_keeps_the_documents_before_it(tmp_path):
    data = gzip.compress(bioc(*(bioc_document(str(i), f"Text {i} " * 30) for i in range(1, 400))))
    cut = data[: len(data) // 2]
    expected = zlib.decompressobj(31).decompress(cut).count(b"</document>")
    entry, _, _ = run(tmp_path, "cut.bioc.xml.gz", cut)
    assert_nothing_lost(entry, expected)
    assert entry["reason"].startswith("truncated gzip")


# --------------------------------------------------------------------------- XML errors


@pytest.mark.parametrize(
    "broken",
    [
        b"<PubmedArticle><MedlineCitation><PMID>50</PMID><Oops></MedlineCitation></PubmedArticle>\n",
        b"<PubmedArticle><MedlineCitation><PMID>50</PMID><Article a=1></Article>"
        b"</MedlineCitation></PubmedArticle>\n",
        b"<PubmedArticle><MedlineCitation><PMID>50</PMID>&undefined;</MedlineCitation>"
        b"</PubmedArticle>\n",
        article("50", "Sjögren").replace("ö".encode(), "ö".encode("latin-1")),
        b"<PubmedArticle><MedlineCitation><PMID>50</PMID><ArticleTitle>a &#0; b</ArticleTitle>"
        b"</MedlineCitation></PubmedArticle>\n",
    ],
    ids=["mismatch", "attribute", "entity", "latin-1", "char-ref-nul"],
)
@pytest.mark.parametrize("gzipped", [False, True])
def test_xml_error_quarantines_the_record_and_reading_resumes(broken, gzipped, tmp_path):
    data = pubmed(
        *(article(str(i)) for i in range(1, 301)),
        broken,
        *(article(str(i)) for i in range(301, 601)),
    )
    name = "broken.xml"
    if gzipped:
        data, name = gzip.compress(data), "broken.xml.gz"
    entry, rows, summary = run(tmp_path, name, data)
    assert_nothing_lost(entry, 601, bad=1)
    assert entry["complete"] is True and ingest.exit_status(summary) == 0
    (row,) = rows
    assert row["position"] == 301 and row["line"] == 303 and row["record_id"] == "50"
    assert row["reason"].startswith("XML broken at line 303")
    assert row["reason"].endswith(
        "the record at line 303 (PMID 50) of " + name + " quarantined, reading resumed at line 304"
    )
    assert "\n" not in row["reason"]


def test_many_broken_records_each_quarantined_once(tmp_path):
    records = []
    for i in range(1, 201):
        records.append(article(str(i)) if i % 7 else b"<PubmedArticle><Oops></PubmedArticle>\n")
    entry, rows, _ = run(tmp_path, "many.xml", pubmed(*records))
    assert_nothing_lost(entry, 200, bad=200 // 7)
    assert [r["position"] for r in rows] == list(range(7, 201, 7))


def test_xml_error_in_a_bioc_document_quarantines_it_and_reading_resumes(tmp_path):
    documents = [bioc_document(str(i)) for i in range(1, 101)]
    documents[49] = b"<document><id>50</id><passage><text>x</passage></document>\n"
    entry, rows, _ = run(tmp_path, "broken.bioc.xml", bioc(*documents))
    assert_nothing_lost(entry, 100, bad=1)
    (row,) = rows
    assert (row["position"], row["record_id"], row["line"]) == (50, "50", 52)
    assert row["reason"].endswith(
        "the record at line 52 (id 50) of broken.bioc.xml quarantined, reading resumed at line 53"
    )


def test_junk_after_the_last_record_breaks_the_file_but_keeps_every_record(tmp_path):
    data = pubmed(*(article(str(i)) for i in range(1, 11)))[: -len(b"</PubmedArticleSet>\n")]
    entry, rows, _ = run(tmp_path, "junk.xml", data + b"<<<\n")
    assert_nothing_lost(entry, 10)
    assert entry["complete"] is False and entry["reason"].startswith("XML broken at line 13")
    assert len(rows) == 1


# --------------------------------------------------------------------------- bad bytes in the head


@pytest.mark.parametrize(
    "bad",
    ["Sjögren".encode("latin-1"), "中文摘要".encode("gbk"), b"\xff\xfe\x80", b"\xc3"],
    ids=["latin-1", "gbk", "invalid", "cut-utf-8"],
)
def test_bad_bytes_in_the_first_8_kib_are_quarantined_not_the_whole_file(bad, tmp_path):
    first = article("1").replace(b"Aspirin in asthma", b"Aspirin " + bad + b" asthma")
    data = pubmed(first, *(article(str(i)) for i in range(2, 21)))
    assert data.index(bad) < 8192
    entry, rows, _ = run(tmp_path, "head.xml", data)
    assert_nothing_lost(entry, 20, bad=1)
    assert entry["format"] == "pubmed"
    (row,) = rows
    assert (row["position"], row["record_id"]) == (1, "1")
    assert "declared encoding" in row["reason"]


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "nul.xml",
            pubmed(article("1"), article("2\u009f3"), article("4")),
            "PMID: id '2\\x9f3' holds a control character (U+009F",
        ),
        (
            "nul.xml",
            pubmed(article("1"), article("2&#0;3"), article("4")),
            "XML broken at line 4",
        ),
        (
            "nul.pubtator",
            b"1|t|One\n1|a|text\n\n2\x003|t|Two\n2\x003|a|text\n\n4|t|Four\n4|a|text\n",
            "id '2\\x003' holds a control character (U+0000",
        ),
        (
            "nul.jsonl",
            b'{"id": "1", "text": "a"}\n{"id": "2\\u00003", "text": "b"}\n{"id": "4", "text": "c"}\n',
            "field 'id': id '2\\x003' holds a control character (U+0000",
        ),
        (
            "nul.bioc.xml",
            bioc(bioc_document("1"), bioc_document("2&#x85;3"), bioc_document("4")),
            "id '2\\x853' holds a control character (U+0085",
        ),
        (
            "empty.jsonl",
            b'{"id": "1", "text": "a"}\n{"id": " ", "text": "b"}\n{"id": "4", "text": "c"}\n',
            "field 'id' must be a non-blank string",
        ),
    ],
    ids=["pubmed-c1", "pubmed-nul-ref", "pubtator-nul", "jsonl-nul", "bioc-c1", "jsonl-blank"],
)
def test_a_bad_document_id_is_quarantined(name, data, expected, tmp_path):
    entry, rows, _ = run(tmp_path, name, data)
    assert_nothing_lost(entry, 3, bad=1)
    (row,) = rows
    assert row["position"] == 2 and row["reason"].startswith(expected), row["reason"]
    assert "\x00" not in json.dumps(row) and "\x85" not in row["record_id"]
    documents = [
        r
        for f in (tmp_path / "out" / "documents").glob("*.parquet")
        for r in pq.read_table(f).to_pylist()
    ]
    assert sorted(d["id"] for d in documents) == ["1", "4"]


@pytest.mark.parametrize("junk", [b"</Stray>", b"<<", b"\xff\xfe"], ids=["end-tag", "lt", "bytes"])
def test_junk_between_records_is_quarantined_and_the_next_record_kept(junk, tmp_path):
    data = pubmed(article("1"), article("2").rstrip(b"\n") + junk + article("3"), article("4"))
    entry, rows, _ = run(tmp_path, "junk.xml", data)
    assert_nothing_lost(entry, 5, bad=1)  # the junk counts as the one record it breaks
    (row,) = rows
    assert row["position"] == 3 and row["record_id"] == "" and "reading resumed" in row["reason"]
    documents = (tmp_path / "out" / "documents").glob("*.parquet")
    assert sorted(r["id"] for f in documents for r in pq.read_table(f).to_pylist()) == [
        "1",
        "2",
        "3",
        "4",
    ]


def test_gzip_cut_before_any_data_is_an_error_that_says_so(tmp_path):
    data = gzip.compress(pubmed(article("1")))[:6]
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(data)
    summary = ingest.ingest_paths([str(path)], str(tmp_path / "out"), 2)
    (entry,) = summary["inputs"]
    assert entry["status"] == "error"
    assert entry["reason"].startswith("truncated gzip: Compressed file ended")
