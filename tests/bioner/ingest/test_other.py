"""PubTator, BioC, JSON lines and Parquet inputs as documents, bad rows quarantined."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bioner.errors import InputError
from bioner.ingest import other
from bioner.ingest.other import (
    read_bioc_documents,
    read_jsonl_documents,
    read_parquet_documents,
    read_pubtator_documents,
)
from bioner.ingest.types import Quarantined
from bioner.records import Document, Section

TITLE = "Naloxone reverses the antihypertensive effect of clonidine."
ABSTRACT = "In rats the decrease in blood pressure produced by clonidine was reversed by naloxone."

# --- PubTator ---------------------------------------------------------------------------------

PUBTATOR = (
    f"227508|t|{TITLE}\n"
    f"227508|a|{ABSTRACT}\n"
    "227508\t0\t8\tNaloxone\tChemical\tD009270\n"
    "227508\tCID\tD009270\tD003000\n"
    "\n"
    "2234245|t|Ocular and auditory toxicity.\n"
    "2234245|a|\n"
    "\n"
    "99|t|乳腺癌的诊断\n"
    "99|a|乳腺癌是常见的恶性肿瘤。\n"
)


def test_pubtator_documents():
    first, title_only, chinese = read_pubtator_documents(PUBTATOR.encode(), source="p.txt")
    assert first == Document(
        id="227508",
        text=f"{TITLE} {ABSTRACT}",
        title=TITLE,
        language="en",
        source="p.txt",
        metadata=(("format", "pubtator"),),
        sections=(Section("TITLE", 0, 59), Section("ABSTRACT", 60, 60 + len(ABSTRACT))),
    )
    assert title_only.text == "Ocular and auditory toxicity."
    assert title_only.sections == (Section("TITLE", 0, 29),)
    assert chinese.language == "zh"
    assert chinese.sections[1] == Section("ABSTRACT", 7, 19)


def test_pubtator_bom_and_errors():
    assert len(list(read_pubtator_documents(PUBTATOR.encode("utf-8-sig")))) == 3
    (bad,) = read_pubtator_documents("227508|t|乳腺".encode("gbk")[:12] + b"\xff")
    assert isinstance(bad, Quarantined)
    assert (bad.reason, bad.line) == ("not UTF-8: undecodable byte at line 1, column 10", 1)
    (bad,) = read_pubtator_documents(b"1|t|title only\n\n")
    assert bad.reason == "expected 'PMID|a|abstract' after the title of 1 (line 1)"


def test_pubtator_broken_records_are_quarantined_and_reading_goes_on():
    data = (
        PUBTATOR.replace("2234245|a|\n", "").encode()  # a title without its abstract line
        + b"\n5|a|an abstract without a title\n5\t0\t2\tan\tX\n"
        + b"\n7|t|T\n7|a|caf\xff\n"  # not UTF-8
        + b"\n8|t|Last\n8|a|one.\n"
    )
    items = list(read_pubtator_documents(data, "p.txt"))
    kinds = [(type(i).__name__, getattr(i, "id", None) or i.record_id) for i in items]
    assert kinds == [
        ("Document", "227508"),
        ("Quarantined", "2234245"),
        ("Document", "99"),
        ("Quarantined", ""),
        ("Quarantined", "7"),
        ("Document", "8"),
    ]
    assert [i.position for i in items if isinstance(i, Quarantined)] == [2, 4, 5]
    assert (
        items[3].reason
        == "expected 'PMID|t|title' at line 11, got '5|a|an abstract without a title'"
    )
    assert items[4].reason.startswith("not UTF-8: undecodable byte at line 15")


# --- BioC -------------------------------------------------------------------------------------

BIOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<collection><source>test</source><date/><key/>
<document><id>227508</id>
<passage><infon key="type">title</infon><offset>0</offset><text>{TITLE}</text>
<annotation id="0"><infon key="type">Chemical</infon><location offset="0" length="8"/>
<text>Naloxone</text></annotation></passage>
<passage><infon key="type">abstract</infon><offset>60</offset><text>{ABSTRACT}</text></passage>
</document>
<document><id>empty</id>
<passage><infon key="type">title</infon><offset>0</offset><text>  </text></passage>
</document>
</collection>
"""


def test_bioc_documents():
    doc, empty = read_bioc_documents(BIOC.encode(), source="b.xml")
    assert doc == Document(
        id="227508",
        text=f"{TITLE} {ABSTRACT}",
        title=TITLE,
        language="en",
        source="b.xml",
        metadata=(("format", "bioc"),),
        sections=(Section("TITLE", 0, 59), Section("ABSTRACT", 60, 60 + len(ABSTRACT))),
    )
    assert (empty.position, empty.reason, empty.record_id, empty.line) == (
        2,
        "empty text",
        "empty",
        9,
    )
    assert empty.raw.startswith("<document><id>empty</id>")


def test_bioc_in_another_declared_encoding():
    xml = BIOC.replace("UTF-8", "GBK").replace(ABSTRACT, "乳腺癌是常见的恶性肿瘤。")
    doc, _ = read_bioc_documents(xml.encode("gbk"))
    assert doc.text.endswith("乳腺癌是常见的恶性肿瘤。")


def test_bioc_malformed_is_an_input_error():
    with pytest.raises(InputError, match="XML broken"):
        list(read_bioc_documents(b"<collection><document>"))
    with pytest.raises(InputError, match="expected a BioC <collection>, got <PubmedArticleSet>"):
        read_bioc_documents(b"<PubmedArticleSet></PubmedArticleSet>")


# --- JSON lines -------------------------------------------------------------------------------


def jsonl(*rows: object) -> bytes:
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
    ).encode()


def test_jsonl_title_is_prepended_unless_text_starts_with_it():
    rows = jsonl(
        {"id": "a", "title": TITLE, "text": ABSTRACT},
        {"id": "b", "title": TITLE, "text": f"{TITLE}\n{ABSTRACT}"},
        {"id": "c", "text": ABSTRACT},
        {"id": "d", "title": "In", "text": "Insulin resistance."},  # a prefix of a word only
        {"id": "e", "title": TITLE, "text": TITLE},
    )
    a, b, c, d, e = read_jsonl_documents(rows, source="j.jsonl")
    assert a == Document(
        id="a",
        text=f"{TITLE} {ABSTRACT}",
        title=TITLE,
        language="en",
        source="j.jsonl",
        metadata=(("format", "jsonl"),),
        sections=(Section("TITLE", 0, 59), Section("ABSTRACT", 60, 60 + len(ABSTRACT))),
    )
    assert b.text == f"{TITLE}\n{ABSTRACT}"
    assert b.sections == a.sections
    assert (c.text, c.title, c.sections) == (ABSTRACT, "", ())
    assert d.text == "In Insulin resistance."
    assert (e.text, e.sections) == (TITLE, (Section("TITLE", 0, 59),))


def test_jsonl_optional_fields():
    row = {
        "id": 42,
        "title": "乳腺癌的诊断",
        "text": "乳腺癌是常见的恶性肿瘤。",
        "version": 2,
        "journal": "中华医学杂志",
        "pub_date": "2024-05",
        "doi": "10.1/x",
        "authors": ["张三", "李四"],
        "keywords": ["乳腺癌"],
        "mesh_headings": ["Breast Neoplasms"],
        "publication_types": ["Journal Article"],
        "metadata": {"origin": "test"},
        "spans": [{"start": 0, "end": 3}],  # ignored
    }
    (doc,) = read_jsonl_documents(jsonl(row))
    assert doc == Document(
        id="42",
        text="乳腺癌的诊断 乳腺癌是常见的恶性肿瘤。",
        version=2,
        title="乳腺癌的诊断",
        language="zh",
        metadata=(("format", "jsonl"), ("origin", "test")),
        journal="中华医学杂志",
        pub_date="2024-05",
        doi="10.1/x",
        authors=("张三", "李四"),
        mesh_headings=("Breast Neoplasms",),
        keywords=("乳腺癌",),
        publication_types=("Journal Article",),
        sections=(Section("TITLE", 0, 6), Section("ABSTRACT", 7, 19)),
    )
    (given,) = read_jsonl_documents(jsonl({"id": "x", "text": "乳腺癌", "language": "en"}))
    assert given.language == "en"  # a given language is kept


def test_jsonl_bad_lines_are_quarantined_with_their_line():
    data = (
        jsonl(
            {"id": "ok", "text": "fine"},
            "",
            "{not json",
            {"text": "no id"},
            {"id": "", "text": "empty id"},
            {"id": "empty", "text": "  "},
            {"id": "none", "title": "title only"},
            ["a", "list"],
            {"id": "v", "text": "t", "version": 0},
            {"id": "t", "text": 5},
            {"id": "k", "text": "t", "keywords": "a;b"},
            {"id": "d", "text": "t", "pub_date": "May 2024"},
            {"id": "m", "text": "t", "metadata": {"n": 1}},
            {"id": True, "text": "t"},
        )
        + b'{"id": "u", "text": "\xff"}\n'
        + jsonl({"id": "last", "text": "fine"})
    )
    items = list(read_jsonl_documents(data, source="j"))
    assert [i.id for i in items if isinstance(i, Document)] == ["ok", "last"]
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert [(q.position, q.line, q.record_id, q.reason) for q in bad] == [
        (2, 3, "", "invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
        (3, 4, "", "missing id"),
        (4, 5, "", "missing id"),
        (5, 6, "empty", "empty text"),
        (6, 7, "none", "empty text"),
        (7, 8, "", "expected a JSON object, got list"),
        (8, 9, "v", "field 'version' must be a positive integer, got 0"),
        (9, 10, "t", "field 'text' must be a string, got int"),
        (10, 11, "k", "field 'keywords' must be a list of strings"),
        (
            11,
            12,
            "d",
            "field 'pub_date' must be an ISO date (2024, 2024-05, 2024-05-17), got 'May 2024'",
        ),
        (12, 13, "m", "field 'metadata' must be an object of strings"),
        (13, 14, "", "field 'id' must be a non-blank string, got True"),
        (14, 15, "", "not UTF-8: undecodable byte at column 22"),
    ]
    assert bad[0].raw == "{not json"
    assert json.loads(bad[1].raw) == {"text": "no id"}


def test_jsonl_bom_and_crlf():
    data = b"\xef\xbb\xbf" + jsonl({"id": "a", "text": "x"}).replace(b"\n", b"\r\n") * 2
    assert [d.id for d in read_jsonl_documents(data)] == ["a", "a"]


@pytest.mark.parametrize("block", [1, 7, 1 << 20])
def test_jsonl_stream_reads_as_the_bytes_do(monkeypatch: pytest.MonkeyPatch, block: int):
    # A stream is read in blocks; lines cut across blocks must come out whole, numbered alike.
    monkeypatch.setattr(other, "_READ_BYTES", block)
    data = (
        b"\xef\xbb\xbf"
        + jsonl({"id": "a", "text": "x"}, "", "{bad").replace(b"\n", b"\r\n")
        + jsonl({"id": "b", "text": "乳腺癌。"})
        + b'{"id": "c", "text": "no final newline"}'
    )
    from_bytes = list(read_jsonl_documents(data, "j"))
    from_stream = list(read_jsonl_documents(io.BytesIO(data), "j"))
    assert from_stream == from_bytes
    assert [getattr(i, "id", None) or i.reason for i in from_stream] == [
        "a",
        "invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "b",
        "c",
    ]
    assert [i.line for i in from_stream if isinstance(i, Quarantined)] == [3]


# --- Parquet ----------------------------------------------------------------------------------


def parquet(table: pa.Table, **kwargs: object) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


def test_parquet_rows_streamed_over_row_groups():
    n = 5
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "title": [f"Title {i}" for i in range(n)],
            "text": [f"Text {i}." for i in range(n)],
            "pub_date": pa.array([dt.date(2024, 5, i + 1) for i in range(n)], pa.date32()),
            "authors": [["A", "B"]] * n,
            "metadata": pa.array([[("k", "v")]] * n, pa.map_(pa.string(), pa.string())),
            "extra": list(range(n)),
        }
    )
    data = parquet(table, row_group_size=2)
    assert pq.ParquetFile(pa.BufferReader(data)).num_row_groups == 3
    docs = list(read_parquet_documents(data, source="t.parquet"))
    assert list(read_parquet_documents(io.BytesIO(data), source="t.parquet")) == docs
    assert [d.id for d in docs] == ["0", "1", "2", "3", "4"]
    assert docs[4] == Document(
        id="4",
        text="Title 4 Text 4.",
        title="Title 4",
        language="en",
        source="t.parquet",
        metadata=(("format", "parquet"), ("k", "v")),
        pub_date="2024-05-05",
        authors=("A", "B"),
        sections=(Section("TITLE", 0, 7), Section("ABSTRACT", 8, 15)),
    )


def test_parquet_without_title_column_and_bad_rows():
    table = pa.table({"id": ["a", None, "c", "d"], "text": ["乳腺癌。", "x", "", None]})
    items = list(read_parquet_documents(parquet(table)))
    assert isinstance(items[0], Document) and items[0].language == "zh"
    assert [(q.position, q.line, q.reason) for q in items[1:]] == [
        (2, None, "missing id"),
        (3, None, "empty text"),
        (4, None, "empty text"),
    ]
    assert json.loads(items[1].raw) == {"id": None, "text": "x"}


def test_parquet_file_errors():
    with pytest.raises(InputError, match="not a Parquet file"):
        read_parquet_documents(b'{"id": "a", "text": "x"}\n')
    with pytest.raises(InputError, match=r"no column 'text' \(columns: id, body\)"):
        read_parquet_documents(parquet(pa.table({"id": ["a"], "body": ["x"]})))
