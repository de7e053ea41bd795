"""IOB2 reader and writer: sentence documents, ids, tokenization at span boundaries, nesting."""

from __future__ import annotations

from collections import Counter

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers._tokens import SPACE_JOINED
from bioner.readers.iob2 import iob2_tokens, read_iob2, write_iob2
from bioner.records import AnnotatedDocument, Document, Span

FIXTURE = """-DOCSTART-\tO

Naloxone\tB-Chemical
reverses\tO
the\tO
anti\tO
-\tO
hypertensive\tB-Disease
effect\tO
.\tO

Lidocaine\tB-Chemical
-\tO
induced\tO
cardiac\tB-Disease
asystole\tI-Disease

-DOCSTART-\tO

Brain\tB-Disease
damage\tI-Disease
"""


def test_reads_one_document_per_sentence_with_ids():
    docs = read_iob2(FIXTURE)
    assert [d.id for d in docs] == ["0-0", "0-1", "1-0"]
    assert docs[0].text == "Naloxone reverses the anti - hypertensive effect ."
    # Naloxone 0-8; anti 22-26, "-" 27-28, hypertensive 29-41
    assert docs[0].spans == (Span(0, 8, "Chemical"), Span(29, 41, "Disease"))
    assert docs[1].text == "Lidocaine - induced cardiac asystole"
    assert docs[1].spans == (Span(0, 9, "Chemical"), Span(20, 36, "Disease"))
    assert docs[2].spans == (Span(0, 12, "Disease"),)
    assert docs[2].document.metadata == (SPACE_JOINED,)


def test_id_prefix_and_no_docstart():
    docs = read_iob2("a\tO\n\nb\tB-X\n", id_prefix="train-")
    assert [d.id for d in docs] == ["train-0-0", "train-0-1"]
    assert docs[1].spans == (Span(0, 1, "X"),)


def test_crlf_and_trailing_blank_lines():
    docs = read_iob2("Brain\tB-Disease\r\ndamage\tI-Disease\r\n\r\n\r\n")
    assert len(docs) == 1 and docs[0].spans == (Span(0, 12, "Disease"),)


def test_adjacent_b_tags_are_two_spans():
    (doc,) = read_iob2("a\tB-X\nb\tB-X\nc\tI-X\n")
    assert doc.spans == (Span(0, 1, "X"), Span(2, 5, "X"))


def test_dataset_maps_and_rejects_labels():
    (doc,) = read_iob2("tumour\tB-Modifier\n", dataset=DATASETS["ncbi"])
    assert doc.spans == (Span(0, 6, "Disease"),)
    with pytest.raises(InputError, match="unknown label 'Gene' for dataset ncbi") as e:
        read_iob2("a\tO\nBRCA1\tB-Gene\nb\tO\n", dataset=DATASETS["ncbi"])
    assert e.value.line == 2


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a\tO\nb\tO\tNN\n", 2, "expected 'token<TAB>tag', got 3 columns"),
        ("a\tO\nb\n", 2, "got 1 columns"),
        ("a\tO\nb\tE-Disease\n", 2, "expected tag 'O', 'B-TYPE' or 'I-TYPE'"),
        ("a\tB-\n", 1, "expected tag"),
        ("a b\tO\n", 1, "contains whitespace"),
        ("\tO\n", 1, "empty"),
        ("a\tO\nb\tI-Disease\n", 2, "does not continue a Disease span"),
        ("a\tB-Chemical\nb\tI-Disease\n", 2, "does not continue a Disease span"),
        ("a\tB-Disease\n\nb\tI-Disease\n", 3, "does not continue"),
    ],
)
def test_bad_lines_name_their_line(text, line, message):
    with pytest.raises(InputError, match=message) as e:
        read_iob2(text)
    assert e.value.line == line


def test_stray_inside_can_begin_a_span():
    (doc,) = read_iob2("a\tO\nb\tI-Disease\nc\tI-Disease\n", stray_inside="begin")
    assert doc.spans == (Span(2, 5, "Disease"),)


def test_round_trip_keeps_text_spans_and_ids():
    docs = read_iob2(FIXTURE)
    report: Counter[str] = Counter()
    written = write_iob2(docs, report=report)
    assert written.startswith("-DOCSTART-\tO\n\nNaloxone\tB-Chemical\n")
    assert read_iob2(written) == docs
    assert not report


def test_round_trip_without_docstart_writes_none():
    docs = read_iob2("a\tO\n\nb\tB-X\n")
    written = write_iob2(docs)
    assert "-DOCSTART-" not in written
    assert read_iob2(written) == docs


def test_round_trip_keeps_tokens_with_punctuation_from_token_formats():
    # JNLPBA-style tokens: a token format's text is split on whitespace only
    docs = read_iob2("NF-kappaB\tB-protein\nbinds\tO\nIL-2\tB-DNA\n")
    assert read_iob2(write_iob2(docs)) == docs


def test_writer_tokenizes_at_punctuation_and_span_boundaries():
    text = "(APC), a betacatenin gene."
    doc = AnnotatedDocument(Document("d", text), (Span(1, 4, "Gene"), Span(9, 13, "Gene")))
    assert iob2_tokens(doc) == [
        ("(", "O"),
        ("APC", "B-Gene"),
        (")", "O"),
        (",", "O"),
        ("a", "O"),
        ("beta", "B-Gene"),
        ("catenin", "O"),
        ("gene", "O"),
        (".", "O"),
    ]
    assert [t for t, _ in iob2_tokens(doc, split_punctuation=False)] == [
        "(",
        "APC",
        "),",
        "a",
        "beta",
        "catenin",
        "gene.",
    ]


def test_writer_gives_cjk_characters_their_own_tokens():
    doc = AnnotatedDocument(Document("c", "头痛3天", language="zh"), (Span(0, 2, "sym"),))
    assert iob2_tokens(doc) == [("头", "B-sym"), ("痛", "I-sym"), ("3", "O"), ("天", "O")]


def test_writer_keeps_outermost_of_nested_spans_and_reports_the_rest():
    text = "acute lung injury and fever"
    spans = (Span(0, 17, "Disease"), Span(6, 10, "Body"), Span(22, 27, "Symptom"))
    doc = AnnotatedDocument(Document("n", text), spans)
    report: Counter[str] = Counter()
    out = write_iob2([doc], report=report)
    assert out == (
        "acute\tB-Disease\nlung\tI-Disease\ninjury\tI-Disease\nand\tO\nfever\tB-Symptom\n\n"
    )
    assert report == {"iob2: nested or crossing spans dropped (outermost kept)": 1}


def test_writer_reports_spans_moved_or_lost_on_whitespace():
    doc = AnnotatedDocument(Document("w", "a  b c"), (Span(1, 4, "X"), Span(4, 5, "Y")))
    report: Counter[str] = Counter()
    assert write_iob2([doc], report=report) == "a\tO\nb\tB-X\nc\tO\n\n"
    assert report == {
        "iob2: span edges on whitespace moved to the nearest token": 1,
        "iob2: spans over whitespace only dropped": 1,
    }


def test_writer_skips_and_reports_empty_documents():
    report: Counter[str] = Counter()
    assert write_iob2([AnnotatedDocument(Document("e", "  "))], report=report) == ""
    assert report == {"iob2: documents without tokens skipped": 1}


BIONLP = (
    "The\tO\nTGF\tB-Gene_or_gene_product\n-\tI-Gene_or_gene_product\nbeta\tI-Gene_or_gene_product\n"
    "RII\tI-Gene_or_gene_product\n(\tO\nRER\tO\n+\tO\n)\tO\nin\tO\n63\tO\n.\tO\n8\tO\n%\tO\n"
    "of\tO\ntumors\tB-Pathological_formation\n,\tO\nblood\tB-Organism_substance\n.\tO\n\n"
)


def test_tokens_read_back_as_running_text_with_the_same_spans():
    [doc] = read_iob2(BIONLP, dataset=DATASETS["bionlp13cg"], join="natural")
    assert doc.text == "The TGF-beta RII (RER+) in 63.8% of tumors, blood."
    assert SPACE_JOINED not in doc.document.metadata
    # Pathological_formation has no unified type: left out; the others in unified labels.
    assert [(s.text(doc.text), s.label) for s in doc.spans] == [
        ("TGF-beta RII", "Gene"),
        ("blood", "Anatomy"),
    ]
    [spaced] = read_iob2(BIONLP, dataset=DATASETS["bionlp13cg"])
    assert [s.text(spaced.text) for s in spaced.spans] == ["TGF - beta RII", "blood"]
    with pytest.raises(ValueError, match="join must be"):
        read_iob2(BIONLP, join="tight")  # type: ignore[arg-type]
