"""Format detection from the first bytes: content decides, never the file name."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bioner.ingest import detect_format, xml_root
from bioner.ingest.detect import HEAD_BYTES

PUBMED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2019//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_190101.dtd">\n'
    b"<PubmedArticleSet>\n<PubmedArticle><MedlineCitation>"
)


def parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["1"], "text": ["x"]}), sink)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PUBMED, "pubmed"),
        (PUBMED[:120], "pubmed"),  # cut inside the DOCTYPE: not enough to see the root
        (b"\xef\xbb\xbf<MedlineCitationSet><MedlineCitation>", "pubmed"),
        (b"<?xml version='1.0'?><!DOCTYPE collection SYSTEM 'BioC.dtd'>\n<collection>", "bioc"),
        (b"227508|t|Naloxone reverses the antihypertensive effect.\n227508|a|In", "pubtator"),
        (b"\n\n10021369|a|Only an abstract line first\n", "pubtator"),
        (b'{"id": "1", "text": "Aspirin."}\n{"id": "2"', "jsonl"),
        ("DataType: 1\nTitle-题名: 病例分析\nAuthor-作者: 柯洪琴;".encode(), "cnki"),
        ("{Reference Type}: Journal Article\n{Title}: 软组织肉瘤\n".encode(), "cnki"),
        ("{Reference Type}: Journal Article\n{Title}: 软组织肉瘤\n".encode("gbk"), "cnki"),
        ("\ufeffDataType: 1\nTitle-题名: 病例分析\n".encode(), "cnki"),
        (b"\x1f\x8b\x08\x00rest", "gzip"),
        (b"PAR1\x15\x04", "parquet"),
        (b"", None),
        (b"   \n", None),
        (b"# README\n\nThese files are PubMed updates.\n", None),
        (b'[{"text": "a JSON array, not JSON lines"}]', None),
        (b"<article><front><journal-meta>", None),  # JATS full text: not read
        (b"<html><body>", None),
        (bytes(range(256)), None),
    ],
)
def test_detect_format(head, expected):
    assert detect_format(head) == expected


def test_a_head_cut_inside_a_multibyte_character_still_reads():
    head = "DataType: 1\nTitle-题名: 病例".encode()
    assert detect_format(head[:-1]) == "cnki"


def test_a_cnki_export_with_a_bad_byte_in_its_head_is_still_cnki():
    good = "%0 Journal Article\r\n%A 吴敏\r\n%T 降钙素原\r\n".encode()
    bad = good.replace("吴".encode(), b"\xff\xfe\xfd")
    assert detect_format(bad) == "cnki"
    assert detect_format(good.decode().encode("gbk").replace(b"%T", b"\xff%T")) == "cnki"
    assert detect_format(b"\xff\xfe\xfd" + bytes(range(128, 256))) is None


def test_parquet_and_gzip_files_from_their_real_bytes():
    assert detect_format(parquet_bytes()[:HEAD_BYTES]) == "parquet"
    packed = gzip.compress(PUBMED)
    assert detect_format(packed[:HEAD_BYTES]) == "gzip"
    assert detect_format(gzip.decompress(packed)[:HEAD_BYTES]) == "pubmed"


def test_xml_root_ignores_namespaces_and_reports_non_xml():
    assert xml_root(b'<a:collection xmlns:a="urn:x"><a:document/>') == "collection"
    assert xml_root(b"not xml at all") is None


@pytest.mark.data
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pubmed/pubmed26n1334.subset.xml.gz", "gzip"),
        ("bc5cdr/bioc/CDR_TestSet.BioC.xml", "bioc"),
        ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt", "pubtator"),
        ("ncbi-disease/pubtator/NCBItestset_corpus.txt", "pubtator"),
        ("cnki/estudy/demo_cnki_202101.txt", "cnki"),
        ("cnki/noteexpress/ChineseColon.net", "cnki"),
        ("cnki/noteexpress/mixed.net", "cnki"),
        ("chineseblue/cMedQANER/train.json", "jsonl"),
        ("cmeee/v2/CMeEE-V2_dev.json", None),  # one JSON array
        ("pubmed/pmc-oa-jats/pone.0046493.nxml", None),
        ("README.md", None),
    ],
)
def test_real_files(shared_data, path, expected):
    file = shared_data / path
    if not file.exists():
        pytest.skip(f"{path} not in this copy of the data")
    assert detect_format(file.read_bytes()[:HEAD_BYTES]) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?>\n<PubmedArticleSet>\n<PubmedArticle>Sj\xf6gren', "pubmed"),
        (
            '<?xml version="1.0"?>\n<PubmedArticleSet><T>中文'.encode() + "摘要".encode("gbk"),
            "pubmed",
        ),
        (b'<?xml version="1.0"?>\n<!-- \xff\xfe -->\n<PubmedArticleSet>\n', "pubmed"),
        (b"<?xml version='1.0'?><collection><document><id>1</id>\x80\x81", "bioc"),
        (b"123|t|Title \xe9\n123|a|abstract\xff\n", "pubtator"),
        (b"\x00\x01\x02binary\xff\xfe", None),
    ],
    ids=["latin-1", "gbk-in-utf-8", "before-root", "bioc", "pubtator", "binary"],
)
def test_bad_bytes_in_the_head_do_not_hide_the_format(head, expected):
    # Stray bytes or a second encoding in a record near the start: the reader quarantines
    # that record, so the file must not be refused as unrecognised.
    assert detect_format(head) == expected
