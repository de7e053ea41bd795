"""Streaming reader of PubMed ``PubmedArticleSet`` XML (baseline and update files).

One :class:`~bioner.records.Document` per ``PubmedArticle`` and one :class:`Tombstone` per PMID
of a ``DeleteCitation``, in file order, in constant memory: each record's element is freed once
read. Text is the title, a space, and the abstract sections joined by spaces, with inline
markup (``<i>``, ``<sub>`` ...) flattened and every run of whitespace turned into one space, so
that a passage never holds a line break (the symbolic format is line-based).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from lxml import etree

from bioner.errors import InputError
from bioner.ingest.types import Tombstone
from bioner.records import Document

ROOT_TAG = "PubmedArticleSet"
_ARTICLE = "PubmedArticle"
_DELETE = "DeleteCitation"

# PubMed writes ISO 639-2/B codes; documents use ISO 639-1 where there is one.
_LANGUAGES = {
    "eng": "en",
    "chi": "zh",
    "ger": "de",
    "fre": "fr",
    "spa": "es",
    "ita": "it",
    "jpn": "ja",
    "kor": "ko",
    "rus": "ru",
    "por": "pt",
    "dut": "nl",
    "pol": "pl",
    "tur": "tr",
}
_YEAR = re.compile(r"\b(\d{4})\b")


def read_pubmed(stream: BinaryIO, source: str = "") -> Iterator[Document | Tombstone]:
    """Documents and tombstones of a PubmedArticleSet stream, in order, in constant memory.

    ``source`` (the file name) is copied into every record. Raises :class:`InputError` with the
    line for malformed XML (after yielding the records before the break), for a file whose
    root is not ``PubmedArticleSet``, and with the record position for a record without PMID.
    """
    # Secure parsing: no entity expansion, no DTD fetch, no network (XXE, billion laughs).
    context = etree.iterparse(
        stream,
        events=("end",),
        tag=(_ARTICLE, _DELETE),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )
    position = 0
    try:
        for _, elem in context:
            if position == 0:
                _check_root(elem.getroottree().getroot())
            position += 1
            if elem.tag == _ARTICLE:
                records: list[Document | Tombstone] = [_document(elem, position, source)]
            else:
                records = list(_tombstones(elem, position, source))
            _release(elem)
            yield from records
    except etree.XMLSyntaxError as e:
        # libxml2 reports line 0 when the stream ends before any element.
        line = e.lineno if e.lineno and e.lineno > 0 else None
        raise InputError(f"malformed XML: {_reason(e)}", line=line) from None
    if position == 0:
        _check_root(context.root)


def sniff_root(head: bytes) -> str | None:
    """The root element name of an XML document from its first bytes; None if not XML.

    Lets a caller reject a wrong file in milliseconds instead of after starting a pipeline.
    """
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False
    )
    try:
        parser.feed(head)
        parser.close()  # a whole document shorter than the parser's look-ahead
    except etree.XMLSyntaxError:
        pass  # a cut-off head, or an error after the root: the root's start event is kept
    for _, elem in parser.read_events():
        return str(elem.tag)
    return None


def _check_root(root: etree._Element | None) -> None:
    if root is None or root.tag != ROOT_TAG:
        found = "nothing" if root is None else f"<{root.tag}>"
        raise InputError(f"not a PubMed file: root element is {found}, expected <{ROOT_TAG}>")


def _reason(error: etree.XMLSyntaxError) -> str:
    # libxml2 appends ", line N, column M" to its messages; the line is reported separately.
    message = re.sub(r",? line \d+, column \d+$", "", error.msg or str(error))
    return message.strip() or "syntax error"


def _release(elem: etree._Element) -> None:
    """Free a parsed record and the already-processed siblings before it."""
    elem.clear(keep_tail=True)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _text(elem: etree._Element | None) -> str:
    """Text content with inline markup flattened and whitespace runs collapsed."""
    if elem is None:
        return ""
    return " ".join("".join(elem.itertext()).split())


def _document(elem: etree._Element, position: int, source: str) -> Document:
    where = {"line": elem.sourceline, "record": f"#{position}"}
    pmid = elem.find("MedlineCitation/PMID")
    pmid_text = _text(pmid)
    if pmid is None or not pmid_text:
        raise InputError("PubmedArticle without a PMID", **where)
    where["record"] = f"#{position} (PMID {pmid_text})"
    version = _version(pmid.get("Version"), where)
    article = elem.find("MedlineCitation/Article")
    if article is None:
        raise InputError("PubmedArticle without an Article element", **where)
    # Non-English articles may carry only the original-language title.
    title = _text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle"))
    sections = (_text(t) for t in article.iterfind("Abstract/AbstractText"))
    abstract = " ".join(s for s in sections if s)
    text = f"{title} {abstract}" if title and abstract else title or abstract
    language = (article.findtext("Language") or "").strip().lower()
    return Document(
        id=pmid_text,
        text=text,
        version=version,
        title=title,
        language=_LANGUAGES.get(language, language or "und"),
        source=source,
        metadata=_metadata(elem, article),
    )


def _version(value: str | None, where: dict) -> int:
    if value is None or not value.strip():
        return 1
    try:
        version = int(value)
    except ValueError:
        version = 0
    if version < 1:
        raise InputError(f"PMID Version must be a positive integer, got {value!r}", **where)
    return version


def _metadata(elem: etree._Element, article: etree._Element) -> tuple[tuple[str, str], ...]:
    pairs = []
    journal = _text(article.find("Journal/Title"))
    if journal:
        pairs.append(("journal", journal))
    year = _year(article)
    if year:
        pairs.append(("year", year))
    doi = _text(elem.find("PubmedData/ArticleIdList/ArticleId[@IdType='doi']")) or _text(
        article.find("ELocationID[@EIdType='doi']")
    )
    if doi:
        pairs.append(("doi", doi))
    return tuple(pairs)


def _year(article: etree._Element) -> str:
    pub_date = article.find("Journal/JournalIssue/PubDate")
    if pub_date is not None:
        year = _text(pub_date.find("Year"))
        if year:
            return year
        found = _YEAR.search(_text(pub_date.find("MedlineDate")))
        if found:
            return found.group(1)
    return _text(article.find("ArticleDate/Year"))


def _tombstones(elem: etree._Element, position: int, source: str) -> Iterator[Tombstone]:
    pmids = elem.findall("PMID")
    if not pmids:
        raise InputError(
            "DeleteCitation without a PMID", line=elem.sourceline, record=f"#{position}"
        )
    for pmid in pmids:
        pmid_text = _text(pmid)
        if not pmid_text:
            raise InputError(
                "DeleteCitation with an empty PMID", line=pmid.sourceline, record=f"#{position}"
            )
        yield Tombstone(pmid_text, source)
