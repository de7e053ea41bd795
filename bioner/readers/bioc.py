"""BioC XML: ``collection/document/passage`` with ``annotation/location`` offsets.

The document text is its passages placed at their (document-level) offsets, gaps filled with
spaces; annotation offsets are document-level too, and each annotation's ``<text>`` is checked.
An annotation with several locations (a discontinuous mention, e.g. BC5CDR's "Ocular ...
toxicity" parts of "Ocular and auditory toxicity") becomes by default one span covering them all
(``discontinuous="cover"``; its ``<text>`` must equal the located pieces joined by spaces), or one
span per location with ``discontinuous="split"``. Annotations marked
``CompositeRole=IndividualMention`` (BC5CDR's parts of a composite mention, which its PubTator
release leaves out; 4 of the 486 in the real files have wrong offsets) are skipped unless
``individual_mentions=True``, so BC5CDR reads the same from BioC as from PubTator. Relations
(``relation`` elements) are kept: type from the ``relation`` (or ``type``) infon, arguments
the other infon values in order, then ``role:refid`` of each node.

Parsing is safe against hostile XML: no DTD is loaded, no network is used, entities are not
expanded (an entity reference is an error) and huge trees are refused.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Literal

from lxml import etree

from bioner.errors import InputError
from bioner.labels import DatasetSpec
from bioner.readers._common import WriteReport, check_offsets, map_label, parse_int
from bioner.records import AnnotatedDocument, Document, Relation, Span, sorted_unique

DOCTYPE = "<!DOCTYPE collection SYSTEM 'BioC.dtd'>"


def _parser(encoding: str | None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding=encoding,
    )


def _infons(el: etree._Element) -> dict[str, str]:
    return {i.get("key", ""): i.text or "" for i in el.iterfind("infon")}


def parse_xml(source: str | bytes) -> etree._Element:
    """The root of an XML text, parsed safely; malformed XML is an InputError with its line."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        root = etree.fromstring(data, _parser("utf-8" if isinstance(source, str) else None))
    except etree.XMLSyntaxError as e:
        what = re.sub(r", line \d+, column \d+$", "", e.msg or "syntax error")
        raise InputError(f"malformed XML: {what}", line=e.lineno or None) from None
    if root is None:
        raise InputError("empty XML document", line=1)
    for entity in root.iter(etree.Entity):
        raise InputError(
            f"entity reference {entity.text} is not allowed (entities are never expanded)",
            line=entity.sourceline,
        )
    return root


def document_text(doc_el: etree._Element, doc_id: str) -> tuple[str, str]:
    """The document text built from its passages, and the text of its title passage."""
    parts: list[str] = []
    length = 0
    title = ""
    for p in doc_el.iterfind("passage"):
        offset = parse_int(p.findtext("offset"), "passage offset", line=p.sourceline, record=doc_id)
        body = p.findtext("text") or ""
        if offset < length:
            raise InputError(
                f"passage at offset {offset} overlaps the text before it (length {length})",
                line=p.sourceline,
                record=doc_id,
            )
        parts.append(" " * (offset - length))
        parts.append(body)
        length = offset + len(body)
        if not title and _infons(p).get("type") == "title":
            title = body
    return "".join(parts), title


def _relation(el: etree._Element, doc_id: str) -> Relation:
    infons = _infons(el)
    kind = infons.pop("relation", None) or infons.pop("type", None)
    if not kind:
        raise InputError(
            "relation without a 'relation' or 'type' infon", line=el.sourceline, record=doc_id
        )
    nodes = [f"{n.get('role', '')}:{n.get('refid', '')}" for n in el.iterfind("node")]
    return Relation(kind, (*infons.values(), *nodes))


def read_bioc(
    source: str | bytes,
    *,
    dataset: DatasetSpec | None = None,
    discontinuous: Literal["cover", "split"] = "cover",
    individual_mentions: bool = False,
) -> list[AnnotatedDocument]:
    """Documents of a BioC XML collection with verified spans and their relations."""
    root = parse_xml(source)
    if root.tag != "collection":
        raise InputError(f"expected a BioC <collection>, got <{root.tag}>", line=root.sourceline)
    docs: list[AnnotatedDocument] = []
    for doc_el in root.iterfind("document"):
        doc_id = (doc_el.findtext("id") or "").strip()
        if not doc_id:
            raise InputError("document without an <id>", line=doc_el.sourceline)
        text, title = document_text(doc_el, doc_id)
        spans: list[Span] = []
        for a in doc_el.iterfind("passage/annotation"):
            line = a.sourceline
            infons = _infons(a)
            if not individual_mentions and infons.get("CompositeRole") == "IndividualMention":
                continue
            if "type" not in infons:
                raise InputError("annotation without a 'type' infon", line=line, record=doc_id)
            label = map_label(infons["type"], dataset, line=line, record=doc_id)
            pieces: list[tuple[int, int]] = []
            for loc in a.iterfind("location"):
                start = parse_int(loc.get("offset"), "location offset", line=line, record=doc_id)
                size = parse_int(loc.get("length"), "location length", line=line, record=doc_id)
                check_offsets(text, start, start + size, line=loc.sourceline, record=doc_id)
                pieces.append((start, start + size))
            if not pieces:
                raise InputError("annotation without a <location>", line=line, record=doc_id)
            stated = a.findtext("text")
            found = " ".join(text[s:e] for s, e in pieces)
            if stated is not None and stated != found:
                where = ",".join(f"{s}-{e}" for s, e in pieces)
                raise InputError(
                    f"offsets {where} give {found!r} but the annotation says {stated!r}",
                    line=line,
                    record=doc_id,
                )
            if discontinuous == "cover":
                pieces = [(min(s for s, _ in pieces), max(e for _, e in pieces))]
            spans.extend(Span(s, e, label) for s, e in pieces)
        relations = tuple(_relation(r, doc_id) for r in doc_el.iter("relation"))
        document = Document(id=doc_id, text=text, title=title)
        docs.append(AnnotatedDocument(document, sorted_unique(spans), relations))
    return docs


def _passages(doc: Document) -> list[tuple[str, int, str]]:
    """``(type, offset, text)`` of the passages to write: title and abstract, or one text."""
    text, title = doc.text, doc.title
    if title and len(text) > len(title) + 1 and text.startswith(title + " "):
        return [("title", 0, title), ("abstract", len(title) + 1, text[len(title) + 1 :])]
    if title and text == title:
        return [("title", 0, title)]
    return [("text", 0, text)]


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrib: str
) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def write_bioc(
    docs: Iterable[AnnotatedDocument],
    *,
    report: WriteReport | None = None,
    infons: Mapping[tuple[str, Span], Mapping[str, str]] | None = None,
) -> str:
    """BioC XML text of ``docs`` (a title and an abstract passage where the title is known).

    ``infons``: more ``infon`` elements of an annotation, by (document id, span), after its
    ``type`` (an export writes what found each entity as ``source``).
    """
    del report  # BioC can represent every span and relation: nothing to report
    infons = infons or {}
    root = etree.Element("collection")
    _sub(root, "source", "bioner")
    _sub(root, "date", "")
    _sub(root, "key", "bioner.key")
    for doc in docs:
        doc_el = _sub(root, "document")
        _sub(doc_el, "id", doc.id)
        passages = _passages(doc.document)
        elements = []
        for kind, offset, body in passages:
            p = _sub(doc_el, "passage")
            _sub(p, "infon", kind, key="type")
            _sub(p, "offset", str(offset))
            _sub(p, "text", body)
            elements.append(p)
        offsets = [offset for _, offset, _ in passages]
        for n, s in enumerate(doc.spans):
            # the passage the span starts in (or the one before, if it starts on a separator)
            p = elements[max(0, bisect_right(offsets, s.start) - 1)]
            a = _sub(p, "annotation", id=str(n))
            _sub(a, "infon", s.label, key="type")
            for key, value in infons.get((doc.id, s), {}).items():
                _sub(a, "infon", value, key=key)
            _sub(a, "location", offset=str(s.start), length=str(s.end - s.start))
            _sub(a, "text", s.text(doc.text))
        for i, r in enumerate(doc.relations):
            rel = _sub(doc_el, "relation", id=f"R{i}")
            _sub(rel, "infon", r.type, key="relation")
            for k, arg in enumerate(r.args, start=1):
                _sub(rel, "infon", arg, key=f"arg{k}")
    xml = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", pretty_print=True, doctype=DOCTYPE
    )
    return xml.decode("utf-8")
