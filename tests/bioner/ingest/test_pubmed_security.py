"""read_pubmed never loads a DTD, never fetches, never expands an entity (XXE, billion laughs)."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest

from bioner.errors import InputError
from bioner.ingest import Quarantined, read_pubmed, sniff_root
from bioner.ingest import pubmed as pubmed_module

PASSWD = Path("/etc/passwd")


def record(title: str, pmid: str = "1") -> bytes:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}"
        "</ArticleTitle><Abstract><AbstractText>Text.</AbstractText></Abstract></Article>"
        "</MedlineCitation></PubmedArticle>"
    ).encode()


def document(doctype: bytes, *records: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + doctype
        + b"\n<PubmedArticleSet>\n"
        + b"\n".join(records)
        + b"\n</PubmedArticleSet>\n"
    )


XXE = document(
    b'<!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    record("Leak: &xxe;"),
)
PARAMETER_XXE = document(
    b'<!DOCTYPE PubmedArticleSet [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>',
    record("T"),
)
LAUGHS = document(
    b"<!DOCTYPE PubmedArticleSet [\n"
    + b'<!ENTITY lol0 "lol">\n'
    + b"".join(b'<!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    + b"]>",
    record("&lol9;"),
)


@pytest.fixture(params=["head check", "tree check"])
def head_bytes(request, monkeypatch) -> str:
    """Run each case twice: refused by the byte sniff, and (head too short) by the tree check."""
    if request.param == "tree check":
        monkeypatch.setattr(pubmed_module, "_HEAD_BYTES", 16)
    return request.param


def read_all(data: bytes) -> list:
    return list(read_pubmed(io.BytesIO(data)))


def everything_said(items: list, error: BaseException | None) -> str:
    parts = [repr(dataclasses.astuple(i)) for i in items]
    return "\n".join([*parts, str(error)])


@pytest.mark.parametrize("data", [XXE, PARAMETER_XXE], ids=["general", "parameter"])
def test_external_entity_file_is_refused_without_reading_it(data, head_bytes):
    with pytest.raises(InputError, match="DOCTYPE declares entities: refused") as e:
        read_all(data)
    if head_bytes == "head check":
        assert e.value.line == 2
    if PASSWD.is_file():
        first_line = PASSWD.read_text().splitlines()[0]
        assert first_line not in str(e.value)


def test_billion_laughs_is_refused_fast(head_bytes):
    started = time.perf_counter()
    with pytest.raises(InputError) as e:
        read_all(LAUGHS)
    assert time.perf_counter() - started < 1.0
    assert "lollollol" not in str(e.value)
    # Refused by our check, or (tree check) by libxml2's amplification limit before any record.
    assert "entit" in str(e.value).lower()


def test_sniff_root_does_not_expand_either():
    started = time.perf_counter()
    assert sniff_root(LAUGHS) == "PubmedArticleSet"
    assert sniff_root(XXE) == "PubmedArticleSet"
    assert time.perf_counter() - started < 1.0


def test_external_dtd_is_never_loaded(tmp_path):
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "LEAKED">\n<!ENTITY ok "fine">\n')
    data = document(
        f'<!DOCTYPE PubmedArticleSet SYSTEM "{dtd.as_uri()}">'.encode(),
        record("Clean title.", "1"),
        record("Title &leak; here.", "2"),
        record("Clean again.", "3"),
    )
    items = read_all(data)
    assert [type(i).__name__ for i in items] == ["Document", "Quarantined", "Document"]
    bad = items[1]
    assert isinstance(bad, Quarantined)
    assert bad.reason == "PMID 2: entity reference &leak; left unexpanded (no DTD is read)"
    assert "&leak;" in bad.raw
    assert "LEAKED" not in everything_said(items, None)


def test_public_pubmed_doctype_is_not_fetched():
    # The real files name an https DTD; fetching it would hang or fail offline, and its
    # entities are not needed: the record reads at once, with no network.
    data = document(
        b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
        b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">',
        record("T &amp; &#233; &lt;ok&gt;."),
    )
    started = time.perf_counter()
    (doc,) = read_all(data)
    assert time.perf_counter() - started < 1.0
    assert doc.title == "T & é <ok>."
