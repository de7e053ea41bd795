"""read_pubmed on tiny inline PubmedArticleSet files and on the real subset files."""

from __future__ import annotations

import gzip
import io

import pytest

from bioner.errors import InputError
from bioner.ingest import Tombstone, read_pubmed, sniff_root
from bioner.records import Document

HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2019//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_190101.dtd">\n'
)


def article(
    pmid: str = "111",
    *,
    version: str | None = "1",
    title: str = "A title.",
    abstract: str = "<AbstractText>One abstract.</AbstractText>",
    extra: str = "",
    pubmed_data: str = "",
) -> str:
    version_attr = f' Version="{version}"' if version is not None else ""
    pmid_el = f"<PMID{version_attr}>{pmid}</PMID>" if pmid else ""
    abstract_el = f"<Abstract>{abstract}</Abstract>" if abstract else ""
    return (
        f"<PubmedArticle><MedlineCitation>{pmid_el}<Article><Journal><Title>J Test</Title>"
        f"<JournalIssue><PubDate><Year>2024</Year></PubDate></JournalIssue></Journal>"
        f"<ArticleTitle>{title}</ArticleTitle>{abstract_el}{extra}<Language>eng</Language>"
        f"</Article></MedlineCitation>{pubmed_data}</PubmedArticle>"
    )


def xml(*records: str) -> io.BytesIO:
    return io.BytesIO(
        HEAD + ("<PubmedArticleSet>" + "\n".join(records) + "</PubmedArticleSet>").encode()
    )


def test_article_fields():
    doi = (
        '<PubmedData><ArticleIdList><ArticleId IdType="doi">10.1/x</ArticleId>'
        "</ArticleIdList></PubmedData>"
    )
    (doc,) = read_pubmed(xml(article("42", version="3", pubmed_data=doi)), source="f.xml")
    assert doc == Document(
        id="42",
        text="A title. One abstract.",
        version=3,
        title="A title.",
        language="en",
        source="f.xml",
        metadata=(("journal", "J Test"), ("year", "2024"), ("doi", "10.1/x")),
    )


def test_sections_joined_and_inline_markup_flattened():
    abstract = (
        '<AbstractText Label="BACKGROUND">CO<sub>2</sub> and  <i>E. coli</i>\n'
        " growth.</AbstractText>"
        '<AbstractText Label="RESULTS">10<sup>-3</sup> M of <b>drug</b>.</AbstractText>'
    )
    (doc,) = read_pubmed(xml(article(title="Role of <i>BRCA1</i>.", abstract=abstract)))
    assert doc.title == "Role of BRCA1."
    assert doc.text == "Role of BRCA1. CO2 and E. coli growth. 10-3 M of drug."
    assert "\n" not in doc.text


def test_defaults_without_abstract_version_and_metadata():
    (doc,) = read_pubmed(xml(article(version=None, abstract="")))
    assert (doc.version, doc.text, doc.title) == (1, "A title.", "A title.")


def test_vernacular_title_when_article_title_empty():
    record = article(title="", abstract="", extra="<VernacularTitle>Kommentar.</VernacularTitle>")
    (doc,) = read_pubmed(xml(record))
    assert doc.title == doc.text == "Kommentar."


def test_medline_date_year():
    record = article().replace(
        "<PubDate><Year>2024</Year></PubDate>",
        "<PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate>",
    )
    (doc,) = read_pubmed(xml(record))
    assert ("year", "1998") in doc.metadata


def test_delete_citation_gives_tombstones_in_order():
    delete = '<DeleteCitation><PMID Version="1">7</PMID><PMID Version="1">8</PMID></DeleteCitation>'
    records = list(read_pubmed(xml(article("1"), delete), source="u.xml"))
    assert [type(r) for r in records] == [Document, Tombstone, Tombstone]
    assert records[1:] == [Tombstone("7", "u.xml"), Tombstone("8", "u.xml")]


def test_record_without_pmid_says_which_record():
    with pytest.raises(InputError) as e:
        list(read_pubmed(xml(article("1"), article(""))))
    assert e.value.record == "#2"
    assert e.value.line == 4
    assert "without a PMID" in str(e.value)


def test_bad_version_is_input_error():
    with pytest.raises(InputError, match="Version"):
        list(read_pubmed(xml(article(version="x"))))


def test_malformed_xml_yields_records_before_the_break_then_says_where():
    data = (
        HEAD
        + b"<PubmedArticleSet>"
        + article("1").encode()
        + b"\n"
        + b"<PubmedArticle><Oops></PubmedArticle>"
    )
    reader = read_pubmed(io.BytesIO(data))
    first = next(reader)
    assert first.id == "1"
    with pytest.raises(InputError) as e:
        next(reader)
    assert e.value.line == 4
    assert "malformed XML" in str(e.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "malformed XML"),
        (b"PMID\tword\n", "malformed XML"),
        (
            b"<?xml version='1.0'?><BioCCollection></BioCCollection>",
            "root element is <BioCCollection>",
        ),
    ],
)
def test_not_pubmed(data, message):
    with pytest.raises(InputError, match=message):
        list(read_pubmed(io.BytesIO(data)))


def test_entities_are_not_expanded():
    # A billion-laughs style internal entity stays an unexpanded reference.
    data = (
        b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><PubmedArticleSet>'
        + article(title="T &b;").encode()
        + b"</PubmedArticleSet>"
    )
    (doc,) = read_pubmed(io.BytesIO(data))
    assert "aaaa" not in doc.text


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def test_streams_instead_of_reading_everything_first():
    stream = CountingStream(xml(*(article(str(i)) for i in range(1, 3001))).getvalue())
    reader = read_pubmed(stream)
    assert next(reader).id == "1"
    assert stream.consumed < len(stream.getvalue()) / 2
    assert sum(1 for _ in reader) == 2999


def test_sniff_root():
    assert sniff_root(HEAD + b"<PubmedArticleSet><PubmedArticle>") == "PubmedArticleSet"
    assert sniff_root(b"<collection/>") == "collection"
    assert sniff_root(b"not xml at all") is None


@pytest.mark.data
def test_real_baseline_subset(shared_data):
    path = shared_data / "pubmed" / "pubmed26n1334.subset.xml.gz"
    with gzip.open(path) as stream:
        records = list(read_pubmed(stream, source=path.name))
    assert len(records) == 30
    assert all(isinstance(r, Document) and r.source == path.name for r in records)
    assert len({r.id for r in records}) == 30
    first = records[0]
    assert first.id == "41576520"
    assert first.text.startswith(first.title + " Pediatric chronic kidney disease (CKD)")
    assert dict(first.metadata)["doi"] == "10.1016/j.pediatrneurol.2025.12.024"
    with_abstract = [r for r in records if len(r.text) > len(r.title)]
    assert len(with_abstract) == 27
    assert all("\n" not in r.text and "  " not in r.text for r in records)


@pytest.mark.data
def test_real_update_subset_with_deletions(shared_data):
    path = shared_data / "pubmed" / "pubmed26n1335.subset.xml.gz"
    with gzip.open(path) as stream:
        records = list(read_pubmed(stream, source=path.name))
    documents = [r for r in records if isinstance(r, Document)]
    tombstones = [r for r in records if isinstance(r, Tombstone)]
    assert len(documents) == 30
    assert [t.id for t in tombstones] == [
        "41456105",
        "41557076",
        "41616784",
        "41618748",
        "41618749",
        "41618779",
    ]
