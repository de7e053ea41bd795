"""Which corpus format a file holds, from its first bytes, never from its name.

Names lie (``.txt`` PubTator, ``.net`` NoteExpress, ``.xml`` BioC, gzip without ``.gz``), and a
directory of inputs mixes formats with READMEs; the content decides. ``gzip`` is reported as such:
the caller decompresses and sniffs again.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from bioner.ingest.cnki import detect_cnki_dialect

GZIP = "gzip"
#: The formats an ingest can read, by the name this module reports.
FORMATS = ("pubmed", "bioc", "pubtator", "jsonl", "parquet", "cnki")
#: Bytes worth reading for :func:`detect_format`: past an XML prolog and DOCTYPE.
HEAD_BYTES = 8192

_ENCODINGS = ("utf-8-sig", "utf-16", "gb18030")
_XML_ROOTS = {"PubmedArticleSet": "pubmed", "MedlineCitationSet": "pubmed", "collection": "bioc"}
_PUBTATOR = re.compile(r"\d+\|[ta]\|")
_DOCTYPE = re.compile(r"<!DOCTYPE\s+([\w.:-]+)")
_START_TAG = re.compile(r"<([A-Za-z_][\w.:-]*)")


def detect_format(head: bytes) -> str | None:
    """The format of a file starting with ``head`` (one of :data:`FORMATS`, or ``"gzip"``).

    None when nothing fits: an empty or unrelated file (a README, a JSON array, a spreadsheet).
    """
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head.startswith(b"PAR1"):
        return "parquet"
    text = _decode_head(head)
    if text is None:
        # A CNKI export with a bad byte near its start is one still (its markers are ASCII):
        # its reader quarantines the record that holds the byte and reads the others.
        lenient = head.decode("utf-8", "replace")
        return "cnki" if detect_cnki_dialect(lenient) is not None else None
    stripped = text.lstrip()
    if stripped.startswith("<"):
        # A DOCTYPE names the root too, for a head that ends before the root element; the
        # first start tag does when bytes the parser rejects come before the root's.
        doctype = _DOCTYPE.search(stripped)
        first = _START_TAG.search(stripped)
        root = (
            xml_root(head)
            or (doctype.group(1) if doctype else "")
            or (first.group(1) if first else "")
        )
        return _XML_ROOTS.get(root)
    if detect_cnki_dialect(text) is not None:
        return "cnki"  # before JSON lines: NoteExpress records start with "{Reference Type}:"
    if _PUBTATOR.match(stripped):
        return "pubtator"
    if stripped.startswith("{"):
        return "jsonl"
    return None


def xml_root(head: bytes) -> str | None:
    """The root element name of an XML document from its first bytes; None if not XML."""
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False
    )
    try:
        parser.feed(head)
        parser.close()  # a whole document shorter than the head
    except etree.XMLSyntaxError:
        pass  # a cut-off head, or an error after the root: the root's start event is kept
    for _, elem in parser.read_events():
        return etree.QName(elem).localname
    return None


def _decode_head(head: bytes) -> str | None:
    """The head as text in the first encoding that fits (a cut last character is fine).

    A head that fits none (stray bytes, a second encoding in part of it) is read in the
    ASCII-compatible encoding (UTF-8 or GB 18030) it breaks least, bad bytes replaced: its
    markers still tell the format, and the reader quarantines the records they are in. None
    for binary data (NUL bytes).
    """
    for encoding in _ENCODINGS:
        if encoding == "utf-16" and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            continue
        try:
            return codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
    if b"\0" in head:
        return None
    readings = [
        codecs.getincrementaldecoder(encoding)("replace").decode(head, final=False)
        for encoding in ("utf-8-sig", "gb18030")
    ]
    return min(readings, key=lambda text: text.count("\ufffd"))
