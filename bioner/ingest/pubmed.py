"""Streaming reader of PubMed XML: ``PubmedArticleSet`` and older ``MedlineCitationSet`` files.

Yields, in file order and in constant memory, one :class:`~bioner.records.Document` per
citation, one :class:`Tombstone` per PMID of a ``DeleteCitation``, and a :class:`Quarantined`
for each record that cannot be used (no PMID, bad ``Version``, no text ...), so nothing is lost
and one bad record does not stop a file of 30,000.

Document text is the title, a space, and the abstract's parts joined by spaces; inline markup
(``<i>``, ``<sub>``, MathML ...) is flattened and every whitespace run becomes one space, so a
passage never holds a line break (the symbolic format is line-based). ``sections`` locate the
title (``TITLE``) and each abstract part (its ``Label``, or ``ABSTRACT`` when unlabelled, with
its ``NlmCategory``) in that text.

Field rules:

- ``pub_date``: ``PubDate`` Year[-Month[-Day]] (month names or numbers; an impossible day or
  month is dropped, not guessed); else the start of a ``MedlineDate`` ("1998 Dec-1999 Jan" ->
  "1998-12", "2000 Spring" -> "2000"); else the first ``ArticleDate``; else "".
- ``language``: the language of the text that is tagged, because PubMed's ``Language`` names
  the full text's language while ``ArticleTitle`` is English and abstracts mostly are: a
  Chinese article usually has an English title and abstract. So it is detected from the text
  (zh or en), except when the title had to come from ``VernacularTitle``: then it is the
  article's. The first ``Language``, ISO 639-2 mapped to ISO 639-1 by :data:`LANGUAGES` where
  one exists ("und" when absent), is kept in ``metadata`` as ``article_language``.
- ``authors``: "LastName ForeName" (Initials when no ForeName) or the ``CollectiveName``;
  authors marked ``ValidYN="N"`` and editor lists are skipped.
- ``mesh_headings``: descriptor names, with a ``*`` suffix when the descriptor or one of its
  qualifiers is a major topic (PubMed's own display and ``[majr]`` rule); qualifiers dropped.
- ``doi``: the first valid ``ELocationID EIdType="doi"``, else ``ArticleIdList``'s
  ``IdType="doi"`` (the two agree in practice; the first is read on the way, for free).
- An empty ``ArticleTitle`` (or PubMed's "[Not Available].") falls back to ``VernacularTitle``.

Security: no DTD is loaded, nothing is fetched, no entity is expanded. A file whose DOCTYPE
declares entities (XXE, billion laughs) is refused with :class:`InputError` before any record;
a record whose text still holds an entity reference (possible only under an external DOCTYPE,
which is never read) is quarantined.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

from lxml import etree

from bioner.errors import InputError
from bioner.ingest.lang import detect_language
from bioner.ingest.types import IngestItem, Quarantined, Tombstone, id_problem, printable
from bioner.ingest.xmlstream import (
    LINE_LIMIT,
    RAW_CHARS,
    RecordSyntax,
    restart_prologue,
    xml_records,
)
from bioner.records import Document, OtherAbstract, Section

#: Root elements read: current baseline/update files, then older MEDLINE files.
ROOT_TAGS = ("PubmedArticleSet", "MedlineCitationSet")
#: The root of current PubMed files (kept for callers that check one root).
ROOT_TAG = ROOT_TAGS[0]

_ARTICLE = "PubmedArticle"
_CITATION = "MedlineCitation"  # a record only directly under MedlineCitationSet
_BOOK = "PubmedBookArticle"
_DELETE = "DeleteCitation"
_RECORD_TAGS = (_ARTICLE, _CITATION, _BOOK, _DELETE)
# Record elements by root, so a PubmedArticleSet file raises no event for its inner citations.
_RECORDS_OF = {ROOT_TAGS[0]: (_ARTICLE, _BOOK, _DELETE), ROOT_TAGS[1]: (_CITATION, _DELETE)}

_HEAD_BYTES = 1 << 16  # read to find the root and any DOCTYPE entity declarations
_NOT_AVAILABLE = "[Not Available]."

#: PubMed's ISO 639-2 codes (bibliographic and terminologic forms) to ISO 639-1.
LANGUAGES = {
    "afr": "af", "alb": "sq", "sqi": "sq", "amh": "am", "ara": "ar", "arm": "hy", "hye": "hy",
    "aze": "az", "bel": "be", "ben": "bn", "bos": "bs", "bul": "bg", "cat": "ca", "chi": "zh",
    "zho": "zh", "cze": "cs", "ces": "cs", "dan": "da", "dut": "nl", "nld": "nl", "eng": "en",
    "epo": "eo", "est": "et", "fin": "fi", "fre": "fr", "fra": "fr", "geo": "ka", "kat": "ka",
    "ger": "de", "deu": "de", "gla": "gd", "gle": "ga", "glg": "gl", "gre": "el", "ell": "el",
    "heb": "he", "hin": "hi", "hrv": "hr", "scr": "hr", "hun": "hu", "ice": "is", "isl": "is",
    "ind": "id", "ita": "it", "jpn": "ja", "kin": "rw", "kor": "ko", "lat": "la", "lav": "lv",
    "lit": "lt", "mac": "mk", "mkd": "mk", "mal": "ml", "mao": "mi", "mri": "mi", "may": "ms",
    "msa": "ms", "mlt": "mt", "mon": "mn", "nep": "ne", "nor": "no", "nob": "nb", "nno": "nn",
    "per": "fa", "fas": "fa", "pol": "pl", "por": "pt", "pus": "ps", "rum": "ro", "ron": "ro",
    "rus": "ru", "san": "sa", "slo": "sk", "slk": "sk", "slv": "sl", "som": "so", "spa": "es",
    "srp": "sr", "scc": "sr", "swa": "sw", "swe": "sv", "tam": "ta", "tha": "th", "tur": "tr",
    "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "wel": "cy", "cym": "cy", "yid": "yi",
}  # fmt: skip

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_MEDLINE_DATE = re.compile(r"(\d{4})(?:\s+([A-Za-z]{3})[A-Za-z]*\.?(?:\s+(\d{1,2})(?!\d))?)?")
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[")
_ROOT_START = re.compile(rb"<(" + b"|".join(t.encode() for t in ROOT_TAGS) + rb")[\s>]")


def read_pubmed(stream: BinaryIO, source: str = "") -> Iterator[Document | Tombstone | Quarantined]:
    """Documents, tombstones and quarantined records of a PubMed XML stream, in file order.

    ``stream`` holds the XML bytes (decompress first); ``source`` (the file name) is copied into
    every item. A record the XML breaks in (a tag mismatch, bytes not in the file's encoding)
    is quarantined with where and why, and reading resumes at the next record's start tag.
    Raises :class:`InputError` for an empty file, a root other than :data:`ROOT_TAGS`, entity
    declarations, and XML that breaks where no record follows (a cut file, after yielding
    every record before the cut). Errors of ``stream`` itself (a cut gzip) propagate after
    every record before them.
    """
    for _, item in _records(stream, source):
        yield item


def _is_record(elem: etree._Element) -> bool:
    """A record element: not the citation inside a ``PubmedArticle`` (read at the article's end)."""
    if elem.tag != _CITATION:
        return True
    parent = elem.getparent()
    return parent is not None and parent.tag == ROOT_TAGS[1]


def _syntax(tags: tuple[str, ...]) -> RecordSyntax:
    return RecordSyntax(
        tags=tags,
        starts=re.compile(rb"<(?:" + b"|".join(t.encode() for t in tags) + rb")[\s>/]"),
        id_pattern=re.compile(rb"<PMID[^>]*>\s*([^<\s]{1,40})"),
        id_name="PMID",
        is_record=_is_record if _CITATION in tags else None,
        check=_check_tree,
    )


def _records(
    stream: BinaryIO, source: str, line_offset: int = 0
) -> Iterator[tuple[int, IngestItem]]:
    """The items of :func:`read_pubmed`, each with the position of its record.

    Read by :func:`~bioner.ingest.xmlstream.xml_records`; ``line_offset`` is added to every
    line (the lines of a chunk in its file).
    """
    head = stream.read(_HEAD_BYTES)
    root = _check_head(head)
    syntax = _syntax(_RECORDS_OF.get(root, _RECORD_TAGS))  # type: ignore[arg-type]
    restart = restart_prologue(head, root) if root is not None else None
    for position, record, shift in xml_records(stream, head, source, syntax, restart, line_offset):
        if isinstance(record, Quarantined):
            yield position, record
            continue
        for item in _items(record, position, source):
            yield position, _shifted(item, shift)


def _shifted(item: IngestItem, shift: int) -> IngestItem:
    """``item`` with its line (a quarantined record's) moved by ``shift``."""
    if shift and isinstance(item, Quarantined) and item.line is not None:
        line = item.line + shift
        return dataclasses.replace(item, line=line if line < LINE_LIMIT else None)
    return item


def _items(elem: etree._Element, position: int, source: str) -> Iterator[IngestItem]:
    """What one record element gives: a document, tombstones, or a quarantined record."""
    tag = elem.tag
    if tag == _ARTICLE:
        yield _article(elem, next(elem.iterchildren(_CITATION), None), position, source)
    elif tag == _CITATION:
        yield _article(elem, elem, position, source)
    elif tag == _DELETE:
        yield from _tombstones(elem, position, source)
    else:
        yield _book(elem, position, source)


class NotSplittable(Exception):
    """A file :func:`split_pubmed` does not cut into chunks: read it with :func:`read_pubmed`."""


@dataclass(frozen=True)
class PubmedChunk:
    """Whole records of a PubMed file as an XML document of their own (see :func:`split_pubmed`).

    ``xml`` is the file's prologue and root start tag, the records, and the root end tag;
    ``line_offset`` is what to add to a line in ``xml`` to get the line in the file.
    """

    xml: bytes
    line_offset: int


#: The prologue a file must have to be cut: optional BOM, XML declaration and an external
#: DOCTYPE (no internal subset), then the root start tag.
_PROLOGUE = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml\s[^<>]*\?>)?\s*(?:<!DOCTYPE\s[^\[<>]*>)?\s*"
    rb"<(PubmedArticleSet|MedlineCitationSet)(?:\s[^<>]*)?>"
)
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([^\"']*)[\"']")
#: The record elements of each root, whose end tags are where a file may be cut.
_RECORD_ENDS = {
    ROOT_TAGS[0]: (b"PubmedArticle", b"PubmedBookArticle", b"DeleteCitation"),
    ROOT_TAGS[1]: (b"MedlineCitation", b"DeleteCitation"),
}
_CHUNK_BYTES = 4 << 20
_MAX_RECORD_BYTES = 64 << 20  # bytes held looking for a record end before giving up


def split_pubmed(stream: BinaryIO, chunk_bytes: int = _CHUNK_BYTES) -> Iterator[PubmedChunk]:
    """Cut a PubMed XML stream after record end tags into chunks that parse on their own.

    For parsing a file in several processes: :func:`read_pubmed_chunk` of each chunk, in
    order, gives what :func:`read_pubmed` yields for the file. Only plain files are cut: a
    UTF-8 prologue without an internal DTD subset, and nothing but the root end tag after the
    last record; anything else raises :class:`NotSplittable`, possibly after some chunks. A cut
    where the split was wrong (an end tag inside a comment or CDATA section) leaves a chunk
    that ends inside it, so :func:`read_pubmed_chunk` raises, as it does for a chunk the XML
    breaks in where no record follows. In both cases the file must be read with
    :func:`read_pubmed` from its start, which reports the exact problem. A record the XML
    breaks in is quarantined in its chunk as in the file. ``EOFError`` and decompression
    errors of ``stream`` propagate.
    """
    buffer = stream.read(_HEAD_BYTES)
    found = _PROLOGUE.match(buffer)
    if found is None or found.group(0).endswith(b"/>"):
        raise NotSplittable("no plain prologue and root start tag")
    declared = _ENCODING.search(found.group(0))
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
        raise NotSplittable("not UTF-8")
    prologue = found.group(0)
    root = found.group(1).decode()
    closing = f"</{root}>".encode()
    ends = [b"</" + tag + b">" for tag in _RECORD_ENDS[root]]
    buffer = buffer[found.end() :]
    lines = 0  # of the file between the prologue and ``buffer``
    more = True
    while more:
        block = stream.read(chunk_bytes)
        more = bool(block)
        buffer += block
        cut = max((i + len(end) for end in ends if (i := buffer.rfind(end)) >= 0), default=0)
        if not cut:  # no record end yet
            if len(buffer) > _MAX_RECORD_BYTES:
                raise NotSplittable("no record end tag in a long stretch of the file")
            if more:
                continue
            break
        body = buffer[:cut]
        yield PubmedChunk(prologue + body + closing, lines)
        lines += body.count(b"\n")
        buffer = buffer[cut:]
    if buffer.strip() != closing:
        raise NotSplittable("something other than the root end tag after the last record")


def read_pubmed_chunk(
    chunk: PubmedChunk, source: str = ""
) -> tuple[list[Document | Tombstone | Quarantined], int]:
    """The items of one chunk of :func:`split_pubmed` and the number of records in it.

    Lines are the file's; positions count from 1 in the chunk: add the records of the chunks
    before it. Raises what :func:`read_pubmed` raises.
    """
    items: list[Document | Tombstone | Quarantined] = []
    records = 0
    for position, item in _records(io.BytesIO(chunk.xml), source, chunk.line_offset):
        records = position
        items.append(item)
    return items, records


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


def _check_head(head: bytes) -> str | None:
    """The root element's name; refuses at once what is not a PubMed file."""
    if not head.strip():
        raise InputError("empty file")
    if head.startswith(b"\x1f\x8b"):
        raise InputError("gzip-compressed data: decompress the file before reading it")
    doctype = _DOCTYPE_SUBSET.search(head)
    if doctype is not None and b"<!ENTITY" in head[doctype.end() :]:
        raise _entities_refused(line=head.count(b"\n", 0, doctype.start()) + 1)
    root = sniff_root(head)
    if root is None and (found := _ROOT_START.search(head)) is not None:
        root = found.group(1).decode()  # bytes the parser stops at come before the root
    if root is not None and root not in ROOT_TAGS:
        raise _wrong_root(root)
    return root  # None: an unreadable head, where the parser will say what breaks


def _check_tree(tree: etree._ElementTree) -> None:
    """The same checks on the parsed tree, for heads too long or odd for the byte sniff."""
    dtd = tree.docinfo.internalDTD
    if dtd is not None and next(iter(dtd.iterentities()), None) is not None:
        raise _entities_refused(line=None)
    root = tree.getroot()
    if root is None or root.tag not in ROOT_TAGS:
        raise _wrong_root(None if root is None else str(root.tag))


def _entities_refused(line: int | None) -> InputError:
    return InputError(
        "the DOCTYPE declares entities: refused (PubMed files declare none; "
        "entities are never expanded, to prevent XXE and entity-expansion attacks)",
        line=line,
    )


def _wrong_root(root: str | None) -> InputError:
    found = "nothing" if root is None else f"<{root}>"
    expected = " or ".join(f"<{t}>" for t in ROOT_TAGS)
    return InputError(f"not a PubMed file: root element is {found}, expected {expected}")


def _collapse(text: str | None) -> str:
    """``text`` with every whitespace run one space and no space at either end."""
    if not text:
        return ""
    # Fast path, skipping the split for most texts. XML text can hold no ASCII whitespace but
    # " ", tab, newline and carriage return (libxml2 rejects the other controls even as
    # character references); any other whitespace character is unprintable.
    if (
        ("\n" not in text and "\t" not in text and "\r" not in text)
        if text.isascii()
        else text.isprintable()
    ) and ("  " not in text and text[0] != " " and text[-1] != " "):
        return text
    return " ".join(text.split())


def _text(elem: etree._Element) -> str:
    """Text content with inline markup flattened and whitespace runs collapsed."""
    if len(elem):
        return _collapse("".join(elem.itertext()))
    return _collapse(elem.text)


def _quarantine(
    elem: etree._Element, position: int, source: str, reason: str, record_id: str = ""
) -> Quarantined:
    raw = etree.tostring(elem, encoding="unicode", with_tail=False)[:RAW_CHARS]
    line = elem.sourceline
    if line is not None and line >= LINE_LIMIT:
        line = None  # libxml2 may report LINE_LIMIT for any line past it: not known
    return Quarantined(source, position, reason, record_id, line, raw)


def _book(elem: etree._Element, position: int, source: str) -> Quarantined:
    """Books and chapters (NCBI Bookshelf records) are kept aside, not read as abstracts."""
    pmid = _collapse(elem.findtext("BookDocument/PMID"))
    reason = f"PMID {pmid or '?'}: book record (PubmedBookArticle), not read"
    return _quarantine(elem, position, source, reason, pmid)


def _article(
    record: etree._Element, citation: etree._Element | None, position: int, source: str
) -> Document | Quarantined:
    """One citation (a ``PubmedArticle`` or a bare ``MedlineCitation``) as a document."""
    if citation is None:
        return _quarantine(record, position, source, "no MedlineCitation element")
    # One pass over the children of each level with a tag switch: lxml's find() with a path
    # runs Python-level ElementPath code per call, several times slower than this.
    pmid_el = article = None
    mesh: tuple[str, ...] = ()
    keywords: list[str] = []
    other_abstracts: list[OtherAbstract] = []
    for child in citation:
        tag = child.tag
        if tag == "PMID":
            if pmid_el is None:
                pmid_el = child
        elif tag == "Article":
            article = child
        elif tag == "MeshHeadingList":
            mesh = _mesh(child)
        elif tag == "KeywordList":
            for keyword in child:
                if k := _text(keyword):
                    keywords.append(k)
        elif tag == "OtherAbstract":
            other = _other_abstract(child)
            if other is not None:
                other_abstracts.append(other)
    if pmid_el is None:
        return _quarantine(record, position, source, "no PMID")
    pmid = _collapse(pmid_el.text)
    if not pmid:
        return _quarantine(record, position, source, "empty PMID")
    if problem := id_problem(pmid):
        return _quarantine(record, position, source, f"PMID: {problem}", printable(pmid))
    version_text = pmid_el.get("Version")
    version = _version(version_text)
    if version is None:
        reason = f"PMID {pmid}: Version {version_text!r} is not a positive integer"
        return _quarantine(record, position, source, reason, pmid)

    title = vernacular = journal = pub_date = doi = ""
    article_date = None
    language = "und"
    abstract: list[etree._Element] = []
    authors: list[str] = []
    publication_types: list[str] = []
    if article is not None:
        for child in article:
            tag = child.tag
            if tag == "ArticleTitle":
                title = _text(child)
            elif tag == "Abstract":
                abstract = [a for a in child if a.tag == "AbstractText"]
            elif tag == "AuthorList":
                if child.get("Type") != "editors":
                    authors = _authors(child)
            elif tag == "Journal":
                journal, pub_date = _journal(child)
            elif tag == "Language":
                if language == "und":
                    code = _collapse(child.text).lower()
                    language = LANGUAGES.get(code, code or "und")
            elif tag == "PublicationTypeList":
                publication_types = [p for p in map(_text, child) if p]
            elif tag == "ELocationID":
                if not doi and child.get("EIdType") == "doi" and child.get("ValidYN") != "N":
                    doi = _collapse(child.text)
            elif tag == "VernacularTitle":
                vernacular = _text(child)
            elif tag == "ArticleDate" and article_date is None:
                article_date = child
    if not doi and citation is not record:
        doi = _article_id_doi(record)
    from_vernacular = not title or title == _NOT_AVAILABLE
    if from_vernacular:
        title = vernacular

    # Text and sections: the title, then each abstract part, one space apart.
    pieces = [title] if title else []
    sections = [Section("TITLE", 0, len(title))] if title else []
    end = len(title)
    for part in abstract:
        text = _text(part)
        if text:
            start = end + 1 if pieces else 0
            end = start + len(text)
            pieces.append(text)
            sections.append(
                Section(part.get("Label") or "ABSTRACT", start, end, part.get("NlmCategory") or "")
            )
    if not pieces:
        return _quarantine(record, position, source, f"PMID {pmid}: no title and no abstract", pmid)
    text = " ".join(pieces)
    if "&" in text and (entity := next(record.iter(etree.Entity), None)) is not None:
        reason = f"PMID {pmid}: entity reference {entity.text} left unexpanded (no DTD is read)"
        return _quarantine(record, position, source, reason, pmid)
    return Document(
        id=pmid,
        text=text,
        version=version,
        title=title,
        language=language if from_vernacular and language != "und" else detect_language(text),
        metadata=(("article_language", language),),
        source=source,
        journal=journal,
        pub_date=pub_date or (_date_of(article_date) if article_date is not None else ""),
        doi=doi,
        authors=tuple(authors),
        mesh_headings=mesh,
        keywords=tuple(keywords),
        publication_types=tuple(publication_types),
        vernacular_title=vernacular,
        other_abstracts=tuple(other_abstracts),
        sections=tuple(sections),
    )


def _version(value: str | None) -> int | None:
    """The PMID ``Version`` (1 when absent); None when it is not a positive integer."""
    if value is None or not (value := value.strip()):
        return 1
    if not (value.isascii() and value.isdigit()):
        return None
    version = int(value)
    return version if version >= 1 else None


def _article_id_doi(record: etree._Element) -> str:
    """The DOI in ``PubmedData/ArticleIdList``, or ""."""
    for data in reversed(record):  # PubmedData is the last child
        if data.tag == "PubmedData":
            for ids in data:
                if ids.tag == "ArticleIdList":
                    for article_id in ids:
                        if article_id.get("IdType") == "doi":
                            return _collapse(article_id.text)
            break
    return ""


def _journal(journal: etree._Element) -> tuple[str, str]:
    """(journal title, ISO publication date) of a ``Journal``."""
    title = pub_date = ""
    for child in journal:
        tag = child.tag
        if tag == "Title":
            title = _text(child)
        elif tag == "JournalIssue":
            for issue_part in child:
                if issue_part.tag == "PubDate":
                    pub_date = _pub_date(issue_part)
    return title, pub_date


def _authors(author_list: etree._Element) -> list[str]:
    """ "LastName ForeName" (Initials without a ForeName) or CollectiveName of each valid author."""
    authors = []
    for author in author_list:
        if author.get("ValidYN") == "N" or author.tag != "Author":
            continue
        # The DTD orders an author's names first: (LastName, ForeName?, Initials?, Suffix?) or
        # CollectiveName. Reading at most two children skips the affiliations; element proxies
        # are what this loop costs.
        children = iter(author)
        first = next(children, None)
        if first is None:
            continue
        tag = first.tag
        if tag == "LastName":
            last = first.text
            second = next(children, None)
            given = None
            if second is not None and second.tag in ("ForeName", "Initials"):
                given = second.text
            name = _collapse(f"{last} {given}" if last and given else last)
        elif tag == "CollectiveName":
            name = _text(first)
        else:
            continue
        if name:
            authors.append(name)
    return authors


def _mesh(heading_list: etree._Element) -> tuple[str, ...]:
    """Descriptor names, ``*``-suffixed when the descriptor or a qualifier is a major topic."""
    names = []
    for heading in heading_list:
        name = ""
        major = False
        for part in heading:  # DescriptorName, then its QualifierNames
            if part.tag == "DescriptorName":
                name = _text(part)
            if part.get("MajorTopicYN") == "Y":
                major = True
        if name:
            names.append(name + "*" if major else name)
    return tuple(names)


def _other_abstract(elem: etree._Element) -> OtherAbstract | None:
    text = " ".join(t for t in map(_text, elem.iterchildren("AbstractText")) if t)
    if not text:
        return None
    code = _collapse(elem.get("Language")).lower()
    return OtherAbstract(LANGUAGES.get(code, code), text, elem.get("Type") or "")


def _pub_date(pub_date: etree._Element) -> str:
    """ISO date of a ``PubDate``: Year[-Month[-Day]], or the start of its MedlineDate."""
    year = month = day = medline = None
    for part in pub_date:
        tag = part.tag
        if tag == "Year":
            year = part.text
        elif tag == "Month":
            month = part.text
        elif tag == "Day":
            day = part.text
        elif tag == "MedlineDate":
            medline = part.text
    if year:
        return _ymd(year, month, day)
    found = _MEDLINE_DATE.search(medline or "")
    return _ymd(*found.groups()) if found else ""


def _date_of(elem: etree._Element) -> str:
    """ISO date of an element with Year, Month and Day children (``ArticleDate``)."""
    parts = {part.tag: part.text for part in elem}
    return _ymd(parts.get("Year"), parts.get("Month"), parts.get("Day"))


def _ymd(year: str | None, month: str | None, day: str | None) -> str:
    """ISO 8601 as precise as the parts allow; an invalid month or day is dropped."""
    year = (year or "").strip()
    if len(year) != 4 or not year.isdigit():
        return ""
    m = _month(month)
    if m is None:
        return year
    d = (day or "").strip()
    if d.isdigit():
        try:
            return date(int(year), m, int(d)).isoformat()
        except ValueError:
            pass
    return f"{year}-{m:02d}"


def _month(value: str | None) -> int | None:
    value = (value or "").strip()
    if value.isdigit():
        m = int(value)
        return m if 1 <= m <= 12 else None
    return _MONTHS.get(value[:3].lower())


def _tombstones(
    elem: etree._Element, position: int, source: str
) -> Iterator[Tombstone | Quarantined]:
    """One tombstone per PMID of a ``DeleteCitation``; a quarantined entry for a bad one."""
    pmids = [child for child in elem if child.tag == "PMID"]
    if not pmids:
        yield _quarantine(elem, position, source, "DeleteCitation without a PMID")
    for pmid in pmids:
        pmid_text = _collapse(pmid.text)
        if not pmid_text:
            yield _quarantine(elem, position, source, "DeleteCitation with an empty PMID")
        elif problem := id_problem(pmid_text):
            reason = f"DeleteCitation PMID: {problem}"
            yield _quarantine(elem, position, source, reason, printable(pmid_text))
        else:
            yield Tombstone(pmid_text, source, position)
