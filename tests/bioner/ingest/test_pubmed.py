"""read_pubmed on tiny inline PubMed XML files and on the real subset files."""

from __future__ import annotations

import dataclasses
import gzip
import io

import pytest

from bioner.errors import InputError
from bioner.ingest import Quarantined, Tombstone, read_pubmed, sniff_root
from bioner.ingest import pubmed as pubmed_module
from bioner.ingest.pubmed import (
    LANGUAGES,
    ROOT_TAG,
    ROOT_TAGS,
    NotSplittable,
    read_pubmed_chunk,
    split_pubmed,
)
from bioner.records import Document, OtherAbstract, Section

HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)
PUB_DATE = "<PubDate><Year>2024</Year></PubDate>"


def article(
    pmid: str | None = "111",
    *,
    version: str | None = "1",
    title: str = "A title.",
    abstract: str = "<AbstractText>One abstract.</AbstractText>",
    pub_date: str = PUB_DATE,
    article_extra: str = "",
    citation_extra: str = "",
    pubmed_data: str = "",
    language: str = "<Language>eng</Language>",
    wrapper: str = "PubmedArticle",
) -> str:
    """A PubmedArticle (or, with ``wrapper="MedlineCitation"``, a bare citation)."""
    version_attr = f' Version="{version}"' if version is not None else ""
    pmid_el = f"<PMID{version_attr}>{pmid}</PMID>" if pmid is not None else ""
    abstract_el = f"<Abstract>{abstract}</Abstract>" if abstract else ""
    citation = (
        f'<MedlineCitation Status="MEDLINE" Owner="NLM">{pmid_el}<Article PubModel="Print">'
        f"<Journal><Title>J Test</Title><JournalIssue>{pub_date}</JournalIssue></Journal>"
        f"<ArticleTitle>{title}</ArticleTitle>{abstract_el}{article_extra}{language}"
        f"</Article>{citation_extra}</MedlineCitation>"
    )
    if wrapper == "MedlineCitation":
        return citation
    return f"<PubmedArticle>{citation}{pubmed_data}</PubmedArticle>"


def xml(*records: str, root: str = "PubmedArticleSet", head: bytes = HEAD) -> io.BytesIO:
    """A file of ``records``, one per line, the first on line 4."""
    body = f"<{root}>\n" + "\n".join(records) + f"\n</{root}>\n"
    return io.BytesIO(head + body.encode())


def one(*records: str, **kwargs: str) -> Document:
    (doc,) = read_pubmed(xml(*records), **kwargs)
    assert isinstance(doc, Document)
    return doc


def assert_sections_match(doc: Document, expected: dict[str, str]) -> None:
    assert {s.label: doc.text[s.start : s.end] for s in doc.sections} == expected


# --------------------------------------------------------------------------- fields


FULL_RECORD = article(
    "42",
    version="3",
    title="Role of <i>BRCA1</i> in\n   repair.",
    abstract=(
        '<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">CO<sub>2</sub> and '
        "<i>E. coli</i>\n  growth.</AbstractText>"
        '<AbstractText Label="Results" NlmCategory="RESULTS">10<sup>-3</sup> M of '
        "<b>drug</b> and <u>more</u>.</AbstractText>"
        "<AbstractText/>"
        '<AbstractText Label="CONCLUSIONS">It works.</AbstractText>'
        "<CopyrightInformation>(c) 2024 The Authors.</CopyrightInformation>"
    ),
    pub_date="<PubDate><Year>2024</Year><Month>May</Month><Day>17</Day></PubDate>",
    article_extra=(
        '<ELocationID EIdType="pii" ValidYN="Y">S1</ELocationID>'
        '<ELocationID EIdType="doi" ValidYN="Y">10.9/eloc</ELocationID>'
        '<AuthorList CompleteYN="Y">'
        '<Author ValidYN="Y"><LastName>Smith</LastName><ForeName>Jane A</ForeName>'
        "<Initials>JA</Initials><AffiliationInfo><Affiliation>Lab.</Affiliation>"
        "</AffiliationInfo></Author>"
        "<Author><LastName>Doe</LastName><Initials>J</Initials></Author>"
        "<Author><LastName>Plato</LastName></Author>"
        '<Author ValidYN="N"><LastName>Wrong</LastName><ForeName>Name</ForeName></Author>'
        "<Author><CollectiveName>The <i>BRCA</i> Consortium</CollectiveName></Author>"
        "</AuthorList>"
        '<AuthorList Type="editors"><Author><LastName>Editor</LastName></Author></AuthorList>'
        "<Language>fre</Language>"
        '<PublicationTypeList><PublicationType UI="D016428">Journal Article</PublicationType>'
        '<PublicationType UI="D013485">Research Support, Non-U.S. Gov\'t</PublicationType>'
        "</PublicationTypeList>"
        "<VernacularTitle>Rôle de <i>BRCA1</i>.</VernacularTitle>"
        '<ArticleDate DateType="Electronic"><Year>2023</Year><Month>12</Month>'
        "<Day>01</Day></ArticleDate>"
    ),
    citation_extra=(
        "<MeshHeadingList>"
        '<MeshHeading><DescriptorName UI="D1" MajorTopicYN="N">Humans</DescriptorName>'
        "</MeshHeading>"
        '<MeshHeading><DescriptorName UI="D2" MajorTopicYN="Y">BRCA1 Protein</DescriptorName>'
        '<QualifierName UI="Q1" MajorTopicYN="N">genetics</QualifierName></MeshHeading>'
        '<MeshHeading><DescriptorName UI="D3" MajorTopicYN="N">DNA Repair</DescriptorName>'
        '<QualifierName UI="Q2" MajorTopicYN="Y">drug effects</QualifierName></MeshHeading>'
        "</MeshHeadingList>"
        '<KeywordList Owner="NOTNLM"><Keyword MajorTopicYN="N">BRCA1</Keyword>'
        '<Keyword MajorTopicYN="N"><i>E. coli</i>  growth</Keyword><Keyword/></KeywordList>'
        '<KeywordList Owner="NLM"><Keyword>repair</Keyword></KeywordList>'
        '<OtherAbstract Type="Publisher" Language="fre"><AbstractText Label="CONTEXTE">'
        "Le CO<sub>2</sub>.</AbstractText><AbstractText>Suite.</AbstractText></OtherAbstract>"
        '<OtherAbstract Type="plain-language-summary" Language="eng">'
        "<AbstractText>In short.</AbstractText></OtherAbstract>"
        '<OtherAbstract Type="Publisher" Language="ger"><AbstractText/></OtherAbstract>'
    ),
    pubmed_data=(
        "<PubmedData><History/><PublicationStatus>ppublish</PublicationStatus>"
        '<ArticleIdList><ArticleId IdType="pubmed">42</ArticleId>'
        '<ArticleId IdType="doi">10.9/idlist</ArticleId></ArticleIdList>'
        "<ReferenceList><Reference><Citation>Ref.</Citation><ArticleIdList>"
        '<ArticleId IdType="doi">10.9/reference</ArticleId></ArticleIdList></Reference>'
        "</ReferenceList></PubmedData>"
    ),
    language="",
)


def test_every_field_of_a_structured_record():
    doc = one(FULL_RECORD, source="f.xml")
    title = "Role of BRCA1 in repair."
    background = "CO2 and E. coli growth."
    results = "10-3 M of drug and more."
    assert doc == Document(
        id="42",
        text=f"{title} {background} {results} It works.",
        version=3,
        title=title,
        language="en",  # the tagged text is English; the article itself is French
        metadata=(("article_language", "fr"),),
        source="f.xml",
        journal="J Test",
        pub_date="2024-05-17",
        doi="10.9/eloc",
        authors=("Smith Jane A", "Doe J", "Plato", "The BRCA Consortium"),
        mesh_headings=("Humans", "BRCA1 Protein*", "DNA Repair*"),
        keywords=("BRCA1", "E. coli growth", "repair"),
        publication_types=("Journal Article", "Research Support, Non-U.S. Gov't"),
        vernacular_title="Rôle de BRCA1.",
        other_abstracts=(
            OtherAbstract("fr", "Le CO2. Suite.", "Publisher"),
            OtherAbstract("en", "In short.", "plain-language-summary"),
        ),
        sections=(
            Section("TITLE", 0, 24),
            Section("BACKGROUND", 25, 48, "BACKGROUND"),
            Section("Results", 49, 73, "RESULTS"),
            Section("CONCLUSIONS", 74, 83, ""),
        ),
    )
    assert_sections_match(
        doc,
        {"TITLE": title, "BACKGROUND": background, "Results": results, "CONCLUSIONS": "It works."},
    )


def test_unstructured_abstract_is_one_abstract_section():
    doc = one(article(abstract="<AbstractText>Plain text.</AbstractText>"))
    assert doc.text == "A title. Plain text."
    assert doc.sections == (Section("TITLE", 0, 8), Section("ABSTRACT", 9, 20))
    assert doc.metadata == (("article_language", "en"),)


def test_unlabelled_paragraphs_each_get_a_section():
    doc = one(
        article(abstract="<AbstractText>One.</AbstractText><AbstractText>Two.</AbstractText>")
    )
    assert doc.text == "A title. One. Two."
    assert [(s.label, doc.text[s.start : s.end]) for s in doc.sections] == [
        ("TITLE", "A title."),
        ("ABSTRACT", "One."),
        ("ABSTRACT", "Two."),
    ]


def test_title_only_and_defaults():
    doc = one(article(version=None, abstract="", language=""))
    assert (doc.version, doc.text, doc.title, doc.language) == (1, "A title.", "A title.", "en")
    assert doc.metadata == (("article_language", "und"),)
    assert doc.sections == (Section("TITLE", 0, 8),)
    assert (doc.doi, doc.authors, doc.mesh_headings, doc.other_abstracts) == ("", (), (), ())


def test_abstract_without_title_starts_at_zero():
    record = article(title="", abstract='<AbstractText Label="AIM">Only this.</AbstractText>')
    doc = one(record)
    assert doc.text == "Only this."
    assert doc.sections == (Section("AIM", 0, 10),)


@pytest.mark.parametrize("title", ["", "[Not Available]."])
def test_vernacular_title_replaces_an_empty_title(title):
    record = article(
        title=title,
        abstract="",
        article_extra="<VernacularTitle>Kommentar zu <i>X</i>.</VernacularTitle>",
        language="<Language>ger</Language>",
    )
    doc = one(record)
    assert doc.title == doc.text == doc.vernacular_title == "Kommentar zu X."
    assert doc.language == "de"


def test_inline_markup_mathml_and_whitespace_are_flattened():
    mathml = (
        '<mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML"><mml:mi>x</mml:mi>'
        "<mml:mo>=</mml:mo><mml:msup><mml:mi>y</mml:mi><mml:mn>2</mml:mn></mml:msup></mml:math>"
    )
    abstract = (
        f"<AbstractText>\n  Let {mathml} hold\tfor H<sub>2</sub>O\u00a0at\u2009 10\u2028K."
        "\r\n</AbstractText>"
    )
    doc = one(article(title=" <b>Bold</b>\n<i>title</i> ", abstract=abstract))
    assert doc.text == "Bold title Let x=y2 hold for H2O at 10 K."
    assert doc.text.splitlines() == [doc.text]


def test_whitespace_fast_path_assumptions():
    # _collapse skips str.split() when a text cannot hold whitespace other than single spaces:
    # non-ASCII whitespace is unprintable, and the only ASCII whitespace XML text can carry is
    # space, tab, newline and carriage return.
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) != " "]
    assert spaces and not any(c.isprintable() for c in spaces)
    for control in (c for c in spaces if c.isascii() and c not in "\t\n\r"):
        (bad,) = read_pubmed(xml(article(title=f"a&#{ord(control)};b")))
        assert isinstance(bad, Quarantined) and "invalid xmlChar" in bad.reason
    assert one(article(title="a&#13;&#9;&#10;b")).title == "a b"


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("<PubDate><Year>2024</Year><Month>Jan</Month><Day>07</Day></PubDate>", "2024-01-07"),
        ("<PubDate><Year>2024</Year><Month>05</Month><Day>7</Day></PubDate>", "2024-05-07"),
        ("<PubDate><Year>2024</Year><Month>sept</Month></PubDate>", "2024-09"),
        ("<PubDate><Year>2024</Year><Month>December</Month></PubDate>", "2024-12"),
        ("<PubDate><Year>2024</Year></PubDate>", "2024"),
        ("<PubDate><Year>2024</Year><Season>Spring</Season></PubDate>", "2024"),
        ("<PubDate><Year>2023</Year><Month>Feb</Month><Day>30</Day></PubDate>", "2023-02"),
        ("<PubDate><Year>2024</Year><Month>13</Month><Day>1</Day></PubDate>", "2024"),
        ("<PubDate><Year>24</Year><Month>Jan</Month></PubDate>", ""),
        ("<PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate>", "1998-12"),
        ("<PubDate><MedlineDate>2001 Nov-Dec</MedlineDate></PubDate>", "2001-11"),
        ("<PubDate><MedlineDate>1999 Jun 3-10</MedlineDate></PubDate>", "1999-06-03"),
        ("<PubDate><MedlineDate>2000 Spring</MedlineDate></PubDate>", "2000"),
        ("<PubDate><MedlineDate>1975-1976</MedlineDate></PubDate>", "1975"),
        ("<PubDate><MedlineDate>Summer 1999</MedlineDate></PubDate>", "1999"),
        ("<PubDate><MedlineDate>n.d.</MedlineDate></PubDate>", ""),
        ("<PubDate/>", ""),
        ("", ""),
    ],
)
def test_publication_dates(pub_date, expected):
    assert one(article(pub_date=pub_date)).pub_date == expected


def test_article_date_is_the_fallback():
    record = article(
        pub_date="<PubDate><MedlineDate>unknown</MedlineDate></PubDate>",
        article_extra=(
            '<ArticleDate DateType="Electronic"><Year>2024</Year><Month>05</Month>'
            "<Day>17</Day></ArticleDate>"
        ),
    )
    assert one(record).pub_date == "2024-05-17"


@pytest.mark.parametrize(
    ("languages", "expected"),
    [
        ("<Language>eng</Language>", "en"),
        ("<Language>chi</Language><Language>eng</Language>", "zh"),
        ("<Language> JPN </Language>", "ja"),
        ("<Language>tlh</Language>", "tlh"),
        ("<Language/>", "und"),
        ("", "und"),
    ],
)
def test_article_language_first_and_mapped_to_iso_639_1(languages, expected):
    doc = one(article(language=languages))
    assert doc.metadata == (("article_language", expected),)
    assert doc.language == "en"  # the English title is what gets tagged


def test_language_of_the_text_not_of_the_article():
    chinese = article(
        title="",
        language="<Language>chi</Language>",
        abstract="<AbstractText>目的 探讨乳腺癌患者的预后因素。</AbstractText>",
        article_extra="<VernacularTitle>乳腺癌预后因素分析</VernacularTitle>",
    )
    assert one(chinese).language == "zh"
    english_abstract = article(
        language="<Language>chi</Language>",
        abstract="<AbstractText>We studied breast cancer.</AbstractText>",
    )
    assert one(english_abstract).language == "en"


def test_language_table_maps_three_letters_to_two():
    assert all(len(k) == 3 and len(v) == 2 for k, v in LANGUAGES.items())


def test_doi_from_elocation_id():
    record = article(
        article_extra='<ELocationID EIdType="doi" ValidYN="Y"> 10.1/eloc </ELocationID>',
        pubmed_data='<PubmedData><ArticleIdList><ArticleId IdType="pubmed">111</ArticleId>'
        "</ArticleIdList></PubmedData>",
    )
    assert one(record).doi == "10.1/eloc"


@pytest.mark.parametrize(
    "elocation", ["", '<ELocationID EIdType="doi" ValidYN="N">10.1/invalid</ELocationID>']
)
def test_doi_from_article_id_list_without_a_valid_elocation_id(elocation):
    record = article(
        article_extra=elocation,
        pubmed_data="<PubmedData><History/><ArticleIdList>"
        '<ArticleId IdType="pubmed">111</ArticleId><ArticleId IdType="doi">10.1/ids</ArticleId>'
        "</ArticleIdList><ReferenceList><Reference><ArticleIdList>"
        '<ArticleId IdType="doi">10.1/ref</ArticleId></ArticleIdList></Reference>'
        "</ReferenceList></PubmedData>",
    )
    assert one(record).doi == "10.1/ids"


def test_invalid_elocation_doi_is_ignored():
    record = article(article_extra='<ELocationID EIdType="doi" ValidYN="N">10.1/x</ELocationID>')
    assert one(record).doi == ""


@pytest.mark.parametrize(("version", "expected"), [("2", 2), (" 4 ", 4), ("", 1), (None, 1)])
def test_version_attribute(version, expected):
    assert one(article(version=version)).version == expected


def test_documents_keep_file_order_and_source():
    records = list(read_pubmed(xml(article("3"), article("1"), article("2")), source="s.xml"))
    assert [(r.id, r.source) for r in records] == [("3", "s.xml"), ("1", "s.xml"), ("2", "s.xml")]


# --------------------------------------------------------------------------- both roots


def test_medline_citation_set():
    records = [
        article("5", wrapper="MedlineCitation"),
        article(
            "6",
            version=None,
            wrapper="MedlineCitation",
            article_extra='<ELocationID EIdType="doi">10.1/m</ELocationID>',
        ),
        '<DeleteCitation><PMID Version="1">7</PMID><PMID>8</PMID></DeleteCitation>',
    ]
    items = list(read_pubmed(xml(*records, root="MedlineCitationSet", head=b""), source="m"))
    assert [type(i) for i in items] == [Document, Document, Tombstone, Tombstone]
    assert items[0] == next(read_pubmed(xml(article("5")), source="m"))  # same fields as PubMed
    assert (items[0].id, items[0].text, items[0].pub_date) == (
        "5",
        "A title. One abstract.",
        "2024",
    )
    assert (items[1].id, items[1].version, items[1].doi) == ("6", 1, "10.1/m")
    assert items[2:] == [Tombstone("7", "m", 3), Tombstone("8", "m", 3)]


@pytest.mark.parametrize("head_bytes", [1 << 16, 16])
def test_each_citation_is_read_once_whether_or_not_the_head_showed_the_root(
    head_bytes, monkeypatch
):
    # With a head too short to show the root, every record tag is watched, inner citations too.
    monkeypatch.setattr(pubmed_module, "_HEAD_BYTES", head_bytes)
    items = list(read_pubmed(xml(article("1"), article("2"))))
    assert [(type(i), i.id) for i in items] == [(Document, "1"), (Document, "2")]
    bare = [article(p, wrapper="MedlineCitation") for p in ("3", "4")]
    items = list(read_pubmed(xml(*bare, root="MedlineCitationSet")))
    assert [(type(i), i.id) for i in items] == [(Document, "3"), (Document, "4")]


def test_roots():
    assert ROOT_TAGS == ("PubmedArticleSet", "MedlineCitationSet")
    assert ROOT_TAG == "PubmedArticleSet"


def test_sniff_root():
    assert sniff_root(HEAD + b"<PubmedArticleSet><PubmedArticle>") == "PubmedArticleSet"
    assert sniff_root(b"<?xml version='1.0'?>\n<MedlineCitationSet>\n<Medline") == (
        "MedlineCitationSet"
    )
    assert sniff_root(b"<collection/>") == "collection"
    assert sniff_root(b"not xml at all") is None


# --------------------------------------------------------------------------- deletions


def test_delete_citation_gives_one_tombstone_per_pmid_at_its_position():
    delete = (
        '<DeleteCitation><PMID Version="1">7</PMID><PMID Version="1">8</PMID>'
        "<PMID>9</PMID></DeleteCitation>"
    )
    records = list(read_pubmed(xml(article("1"), article("2"), delete), source="u.xml"))
    assert [type(r) for r in records] == [Document, Document, Tombstone, Tombstone, Tombstone]
    assert records[2:] == [Tombstone(p, "u.xml", 3) for p in ("7", "8", "9")]


def test_delete_citation_with_an_empty_pmid_keeps_the_others():
    records = list(read_pubmed(xml("<DeleteCitation><PMID/><PMID>8</PMID></DeleteCitation>")))
    assert isinstance(records[0], Quarantined)
    assert records[0].reason == "DeleteCitation with an empty PMID"
    assert records[1] == Tombstone("8", "", 1)


# --------------------------------------------------------------------------- quarantine


@pytest.mark.parametrize(
    ("record", "reason", "record_id"),
    [
        (article(None), "no PMID", ""),
        (article(""), "empty PMID", ""),
        (article("  "), "empty PMID", ""),
        (article("9", version="x"), "PMID 9: Version 'x' is not a positive integer", "9"),
        (article("9", version="0"), "PMID 9: Version '0' is not a positive integer", "9"),
        (article("9", version="-2"), "PMID 9: Version '-2' is not a positive integer", "9"),
        (article("9", version="1_0"), "PMID 9: Version '1_0' is not a positive integer", "9"),
        (article("9", title="", abstract=""), "PMID 9: no title and no abstract", "9"),
        (
            article("9", title=" ", abstract="<AbstractText> </AbstractText>"),
            "PMID 9: no title and no abstract",
            "9",
        ),
        ("<PubmedArticle><PubmedData/></PubmedArticle>", "no MedlineCitation element", ""),
        (
            "<PubmedBookArticle><BookDocument><PMID>9</PMID></BookDocument></PubmedBookArticle>",
            "PMID 9: book record (PubmedBookArticle), not read",
            "9",
        ),
        ("<DeleteCitation/>", "DeleteCitation without a PMID", ""),
    ],
)
def test_unusable_records_are_quarantined_and_reading_goes_on(record, reason, record_id):
    items = list(read_pubmed(xml(article("1"), record, article("3")), source="q.xml"))
    assert [type(i) for i in items] == [Document, Quarantined, Document]
    bad = items[1]
    assert (bad.source, bad.position, bad.line) == ("q.xml", 2, 5)
    assert (bad.reason, bad.record_id) == (reason, record_id)
    assert "\n" not in bad.reason
    assert bad.raw.startswith(record[:30])
    assert bad.raw.endswith(record[-30:])


def test_quarantined_raw_is_bounded():
    record = article("9", version="x", abstract=f"<AbstractText>{'word ' * 2000}</AbstractText>")
    (bad,) = read_pubmed(xml(record))
    assert isinstance(bad, Quarantined)
    assert len(bad.raw) == 2000
    assert bad.raw.startswith("<PubmedArticle><MedlineCitation")


def test_positions_count_every_record_kind():
    delete = "<DeleteCitation><PMID>50</PMID></DeleteCitation>"
    items = list(read_pubmed(xml(article("1"), article(None), article("3"), delete)))
    assert [i.position for i in items if not isinstance(i, Document)] == [2, 4]


# --------------------------------------------------------------------------- broken files


def test_malformed_record_is_quarantined_and_reading_resumes_at_the_next():
    data = (
        HEAD
        + b"<PubmedArticleSet>\n"
        + article("1").encode()
        + b"\n"
        + article("2").encode()
        + b"\n<PubmedArticle><Oops></PubmedArticle>\n"
        + article("4").encode()
    )
    reader = read_pubmed(io.BytesIO(data), "f.xml")
    assert [next(reader).id, next(reader).id] == ["1", "2"]
    bad = next(reader)
    assert isinstance(bad, Quarantined)
    assert (bad.position, bad.line, bad.source) == (3, 6, "f.xml")
    assert bad.reason.startswith("XML broken at line 6, column ")
    assert "Opening and ending tag mismatch: Oops" in bad.reason
    assert bad.reason.endswith(
        "the record at line 6 of f.xml quarantined, reading resumed at line 7"
    )
    assert bad.raw == "<PubmedArticle><Oops></PubmedArticle>\n"
    assert next(reader).id == "4"
    # The file then ends without its root end tag: a break no record follows.
    with pytest.raises(InputError) as e:
        next(reader)
    assert e.value.line == 7 and "Premature end of data" in str(e.value)
    assert e.value.located("f.xml").startswith("f.xml: line 7: XML broken")


def test_truncated_file_says_where():
    data = xml(article("1"), article("2")).getvalue()[:-200]
    items = []
    with pytest.raises(InputError, match=r"XML broken.*(Premature end|expected)") as e:
        items.extend(read_pubmed(io.BytesIO(data)))
    assert [i.id for i in items] == ["1"]
    assert e.value.line == 5


@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_file_cut_right_after_a_record_keeps_that_record(tail):
    # The parser is fed block by block: the last record's end tag is in the data, so the record
    # is read; only the root is left open (lxml 6.2's close() would end it, and the record cut
    # off in the next test, by itself).
    data = xml(article("1"), article("2")).getvalue()
    cut = data.rindex(b"</PubmedArticle>") + len(b"</PubmedArticle>")
    items = []
    with pytest.raises(InputError, match="Premature end of data in tag PubmedArticleSet"):
        items.extend(read_pubmed(io.BytesIO(data[:cut] + tail)))
    assert [i.id for i in items] == ["1", "2"]


def test_file_cut_inside_a_record_end_tag_drops_that_record():
    data = xml(article("1"), article("2")).getvalue()
    cut = data.rindex(b"</PubmedArticle>") + len(b"</PubmedArticle>") - 1
    items = []
    with pytest.raises(InputError, match="expected '>'") as e:
        items.extend(read_pubmed(io.BytesIO(data[:cut])))
    assert [i.id for i in items] == ["1"]
    assert e.value.line == 5


def test_break_far_into_a_file_yields_every_record_before_it():
    # Many feed blocks of good records, then a break: each block's records come out first.
    records = [
        article(str(i), abstract=f"<AbstractText>{'word ' * 200}</AbstractText>")
        for i in range(1, 301)
    ]
    data = xml(*records).getvalue()
    assert len(data) > 4 * (1 << 16)
    end = data.rindex(b"</PubmedArticle>")
    *items, bad = read_pubmed(io.BytesIO(data[:end] + b"</Oops>" + data[end:]))
    assert [i.id for i in items] == [str(i) for i in range(1, 300)]
    assert isinstance(bad, Quarantined) and bad.record_id == "300" and bad.position == 300
    assert "PMID 300" in bad.reason and "reading resumed" not in bad.reason


def test_undefined_entity_without_doctype_is_broken_xml_at_its_line():
    data = xml(article("1"), article("2", title="T &nbsp; x"), head=b"")
    good, bad = read_pubmed(data)
    assert good.id == "1"
    assert isinstance(bad, Quarantined) and (bad.line, bad.record_id) == (3, "2")
    assert "Entity 'nbsp' not defined" in bad.reason


@pytest.mark.parametrize(
    ("encoding", "text"), [("latin-1", "Café crème"), ("gbk", "中文摘要"), ("utf-16-le", "ok")]
)
def test_bytes_not_in_the_declared_encoding(encoding, text):
    data = (
        HEAD
        + b"<PubmedArticleSet>\n"
        + article("1").encode()
        + b"\n"
        + article("2", title=text).encode(encoding)
        + b"\n</PubmedArticleSet>"
    )
    items = []
    if encoding == "utf-16-le":  # no record start tag left: the file's end is what breaks
        with pytest.raises(InputError, match="XML broken") as e:
            items.extend(read_pubmed(io.BytesIO(data)))
        assert [i.id for i in items] == ["1"] and e.value.line == 5
        return
    good, bad = read_pubmed(io.BytesIO(data))
    assert good.id == "1"
    assert isinstance(bad, Quarantined) and (bad.position, bad.line) == (2, 5)
    assert bad.reason.startswith("XML broken at line 5")
    assert "declared encoding" in bad.reason and bad.record_id == "2"


@pytest.mark.parametrize(
    ("encoding", "declaration", "title"),
    [
        ("gbk", ' encoding="GBK"', "中文 Café"),
        ("latin-1", ' encoding="ISO-8859-1"', "Café"),
        ("utf-16", "", "中文 Café"),  # with a byte order mark
    ],
)
def test_other_encodings_read_when_declared_or_marked(encoding, declaration, title):
    data = f'<?xml version="1.0"{declaration}?>\n<PubmedArticleSet>\n{article(title=title)}\n'
    data += "</PubmedArticleSet>\n"
    (doc,) = read_pubmed(io.BytesIO(data.encode(encoding)))
    assert doc.title == title


def test_unsupported_declared_encoding():
    data = b'<?xml version="1.0" encoding="FOO"?>\n<PubmedArticleSet/>'
    with pytest.raises(
        InputError, match=r"^line 1: XML broken at column \d+: Unsupported encoding"
    ):
        list(read_pubmed(io.BytesIO(data)))


@pytest.mark.parametrize("data", [b"", b"  \n\t\n"])
def test_empty_file(data):
    with pytest.raises(InputError, match=r"^empty file$"):
        list(read_pubmed(io.BytesIO(data)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"<?xml version='1.0'?><BioCCollection></BioCCollection>",
            "not a PubMed file: root element is <BioCCollection>, expected <PubmedArticleSet> "
            "or <MedlineCitationSet>",
        ),
        (HEAD + b"<PubmedArticle><MedlineCitation/></PubmedArticle>", "root element is <Pub"),
        (b"PMID\tword\n", r"^line 1: XML broken at column 1: Start tag expected"),
        (gzip.compress(HEAD + b"<PubmedArticleSet/>"), "gzip-compressed data: decompress"),
    ],
)
def test_not_a_pubmed_file(data, message):
    with pytest.raises(InputError, match=message):
        list(read_pubmed(io.BytesIO(data)))


def test_empty_set_is_fine():
    assert list(read_pubmed(xml())) == []
    assert list(read_pubmed(xml(root="MedlineCitationSet"))) == []


# --------------------------------------------------------------------------- streaming


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def test_streams_instead_of_reading_everything_first():
    stream = CountingStream(xml(*(article(str(i)) for i in range(1, 3001))).getvalue())
    reader = read_pubmed(stream)
    assert next(reader).id == "1"
    assert stream.consumed < len(stream.getvalue()) / 2
    assert sum(1 for _ in reader) == 2999


# --------------------------------------------------------------------------- real files


@pytest.mark.data
def test_real_baseline_subset(shared_data):
    path = shared_data / "pubmed" / "pubmed26n1334.subset.xml.gz"
    with gzip.open(path) as stream:
        records = list(read_pubmed(stream, source=path.name))
    assert len(records) == 30
    assert all(isinstance(r, Document) and r.source == path.name for r in records)
    assert len({r.id for r in records}) == 30
    for r in records:
        assert "\n" not in r.text and "  " not in r.text and r.text == r.text.strip()
        assert r.sections[0].start == 0 and r.sections[-1].end == len(r.text)
        for s in r.sections:
            part = r.text[s.start : s.end]
            assert part and part == part.strip()
    # README: 27 with abstracts, 9 structured (AbstractText with a Label).
    with_abstract = [r for r in records if any(s.label != "TITLE" for s in r.sections)]
    assert len(with_abstract) == 27
    structured = [
        r for r in records if any(s.label not in ("TITLE", "ABSTRACT") for s in r.sections)
    ]
    assert len(structured) == 9

    first = records[0]
    assert first.id == "41576520"
    assert first.text.startswith(first.title + " Pediatric chronic kidney disease (CKD)")
    assert [s.label for s in first.sections] == [
        "TITLE",
        "BACKGROUND",
        "METHODS",
        "RESULTS",
        "CONCLUSIONS",
    ]
    conclusions = first.sections[-1]
    assert first.text[conclusions.start : conclusions.end].startswith("In one of the first")
    assert (first.doi, first.journal, first.pub_date, first.language) == (
        "10.1016/j.pediatrneurol.2025.12.024",
        "Pediatric neurology",
        "2026-01-07",
        "en",
    )
    assert first.authors[0] == "Hooper Stephen R"
    assert first.authors[-1] == "Chronic Kidney Disease in Children (CKiD) Study Investigators"
    assert first.keywords == ("CKiD", "Cognition in CKD", "Mild to moderate CKD", "Pediatric CKD")
    assert first.publication_types == ("Journal Article",)

    german = next(r for r in records if r.id == "41605226")  # empty ArticleTitle
    assert german.language == "de"
    assert german.title == german.vernacular_title == german.text
    assert german.text.startswith("Kommentar zu „ABDOMEN BECKEN")

    others = [(r.id, o.language, o.type) for r in records for o in r.other_abstracts]
    assert others == [
        ("41583336", "pt", "Publisher"),
        ("41588158", "en", "plain-language-summary"),
    ]
    elife = next(r for r in records if r.id == "41603352")
    assert "Mast Cells*" in elife.mesh_headings and "Humans" in elife.mesh_headings
    assert "Mycobacterium tuberculosis (Mtb), infects" in elife.text  # <i> flattened


@pytest.mark.data
def test_real_update_subset_with_deletions(shared_data):
    path = shared_data / "pubmed" / "pubmed26n1335.subset.xml.gz"
    with gzip.open(path) as stream:
        records = list(read_pubmed(stream, source=path.name))
    documents = [r for r in records if isinstance(r, Document)]
    tombstones = [r for r in records if isinstance(r, Tombstone)]
    assert len(records) == len(documents) + len(tombstones)
    assert len(documents) == 30
    assert tombstones == [
        Tombstone(pmid, path.name, 31)
        for pmid in ("41456105", "41557076", "41616784", "41618748", "41618749", "41618779")
    ]


# --------------------------------------------------------------------------- parallel chunks


def read_split(data: bytes, chunk_bytes: int) -> list[Document | Tombstone | Quarantined]:
    """What the chunks of ``data`` give, positions made the file's, as a caller does."""
    items: list[Document | Tombstone | Quarantined] = []
    before = 0
    for chunk in split_pubmed(io.BytesIO(data), chunk_bytes):
        got, records = read_pubmed_chunk(chunk, "f.xml")
        items += [
            i if isinstance(i, Document) else dataclasses.replace(i, position=i.position + before)
            for i in got
        ]
        before += records
    return items


MIXED = [
    article("1"),
    article("2", title="Two.").replace("<Article ", "\n  <Article "),  # lines inside a record
    article(None),
    "<DeleteCitation><PMID>5</PMID><PMID>6</PMID></DeleteCitation>",
    article("3", version="x"),
    "<PubmedBookArticle><BookDocument><PMID>8</PMID></BookDocument></PubmedBookArticle>",
    article("4", title="", abstract=""),
    article("7", version="2"),
]


@pytest.mark.parametrize("chunk_bytes", [1, 300, 1 << 20])
def test_split_chunks_give_what_the_whole_file_gives(chunk_bytes):
    data = xml(*MIXED).getvalue()
    expected = list(read_pubmed(io.BytesIO(data), "f.xml"))
    assert any(isinstance(i, Quarantined) and i.line and i.line > 5 for i in expected)
    assert read_split(data, chunk_bytes) == expected
    citations = xml(
        article("1", wrapper="MedlineCitation"),
        article("2", wrapper="MedlineCitation"),
        root="MedlineCitationSet",
        head=b"",
    ).getvalue()
    assert read_split(citations, chunk_bytes) == list(read_pubmed(io.BytesIO(citations), "f.xml"))


@pytest.mark.parametrize(
    "data",
    [
        xml(article("1"), head=b'<?xml version="1.0" encoding="ISO-8859-1"?>\n').getvalue(),
        xml(article("1"), head=b"<!DOCTYPE PubmedArticleSet [<!ELEMENT a ANY>]>\n").getvalue(),
        xml(article("1")).getvalue() + b"<!-- after the root -->\n",
        xml(article("1")).getvalue()[:-30],  # cut short
        b"<PubmedArticleSet/>",
    ],
    ids=["latin-1", "internal-subset", "comment-after-root", "cut-short", "empty-root"],
)
def test_files_that_are_not_split(data):
    with pytest.raises(NotSplittable):
        read_split(data, 1)


def test_a_cut_inside_a_comment_fails_when_read():
    many = [article(str(i)) for i in range(1, 300)]  # past the head the split reads first
    data = xml(*many, "<!-- </PubmedArticle> -->", article("300")).getvalue()
    assert len(list(read_pubmed(io.BytesIO(data)))) == 300
    with pytest.raises(InputError):
        read_split(data, 1)


def test_lines_past_the_16_bit_limit_are_unknown_whole_or_split():
    # libxml2 may give any record past line 65,535 the line 65,535: no line is better.
    many = [article(str(i)) for i in range(1, 300)]
    data = xml(*many, "\n" * 70_000 + article(None), article("5")).getvalue()
    expected = list(read_pubmed(io.BytesIO(data), "f.xml"))
    (quarantined,) = [i for i in expected if isinstance(i, Quarantined)]
    assert quarantined.line is None
    assert read_split(data, 1000) == expected


@pytest.mark.parametrize("newline", ["\n", ""], ids=["lines", "one-line"])
def test_break_far_into_a_file_resumes_at_the_next_record_once(newline):
    # Past the bytes kept to find a break (256 KiB), with characters of several bytes before
    # it on the same line: the record is found from libxml2's character column.
    records = [article(str(i), title="中文 Café " * 40) + newline for i in range(1, 2001)]
    records[1499] = "<PubmedArticle><MedlineCitation><PMID>1500</PMID><x></PubmedArticle>" + newline
    data = b'<?xml version="1.0"?><PubmedArticleSet>' + "".join(records).encode()
    items = list(read_pubmed(io.BytesIO(data + b"</PubmedArticleSet>")))
    assert len(data) > 1 << 20
    assert [i.id for i in items if isinstance(i, Document)] == [
        str(i) for i in range(1, 2001) if i != 1500
    ]
    (bad,) = [i for i in items if isinstance(i, Quarantined)]
    assert (bad.position, bad.record_id) == (1500, "1500")
    assert bad.raw.startswith("<PubmedArticle><MedlineCitation><PMID>1500</PMID><x>")
    assert "<PMID>1501<" not in bad.raw


def test_bad_bytes_before_the_root_are_quarantined_and_every_record_read():
    data = (
        b'<?xml version="1.0"?>\n<!-- caf\xe9 -->\n<PubmedArticleSet>\n'
        + article("1").encode()
        + article("2").encode()
        + b"</PubmedArticleSet>\n"
    )
    bad, *docs = read_pubmed(io.BytesIO(data), "p.xml")
    assert [d.id for d in docs] == ["1", "2"]
    assert isinstance(bad, Quarantined) and (bad.position, bad.line) == (1, 2)
    assert "declared encoding" in bad.reason and "reading resumed at line 4" in bad.reason
