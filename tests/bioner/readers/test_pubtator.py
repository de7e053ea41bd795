"""PubTator reader and writer: offsets into title + " " + abstract, relations, duplicates."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.pubtator import read_pubtator, write_pubtator
from bioner.records import AnnotatedDocument, Document, Relation, Span

TITLE = "Naloxone reverses the antihypertensive effect of clonidine."
ABSTRACT = "In rats the decrease in blood pressure produced by clonidine was reversed by naloxone."
# title: 59 characters, so the abstract starts at 60; "clonidine" at 60 + 51 = 111.
CDR = (
    f"227508|t|{TITLE}\n"
    f"227508|a|{ABSTRACT}\n"
    "227508\t0\t8\tNaloxone\tChemical\tD009270\n"
    "227508\t49\t58\tclonidine\tChemical\tD003000\n"
    "227508\t111\t120\tclonidine\tChemical\tD003000\n"
    "227508\t137\t145\tnaloxone\tChemical\tD009270\n"
    "227508\tCID\tD009270\tD003000\n"
    "\n"
    "2234245|t|Ocular and auditory toxicity.\n"
    "2234245|a|\n"
    "2234245\t0\t28\tOcular and auditory toxicity\tDisease\tD014786|D006311\t"
    "Ocular toxicity|auditory toxicity\n"
    "\n"
)


def test_reads_documents_spans_and_relations():
    docs = read_pubtator(CDR)
    assert [d.id for d in docs] == ["227508", "2234245"]
    first = docs[0]
    assert first.text == TITLE + " " + ABSTRACT
    assert first.document.title == TITLE
    assert first.spans == (
        Span(0, 8, "Chemical"),
        Span(49, 58, "Chemical"),
        Span(111, 120, "Chemical"),
        Span(137, 145, "Chemical"),
    )
    assert [s.text(first.text) for s in first.spans] == [
        "Naloxone",
        "clonidine",
        "clonidine",
        "naloxone",
    ]
    assert first.relations == (Relation("CID", ("D009270", "D003000")),)
    # an empty abstract adds no separator; the 7-column composite line is read
    assert docs[1].text == "Ocular and auditory toxicity."
    assert docs[1].spans == (Span(0, 28, "Disease"),)


def test_dataset_maps_ncbi_types_to_disease():
    text = (
        "1|t|Colon cancer and a BRCA1 tumour.\n1|a|\n1\t0\t12\tColon cancer\tSpecificDisease\tD1\n"
    )
    text += "1\t25\t31\ttumour\tModifier\tD2\n"
    (doc,) = read_pubtator(text, dataset=DATASETS["ncbi"])
    assert doc.spans == (Span(0, 12, "Disease"), Span(25, 31, "Disease"))
    (raw,) = read_pubtator(text)
    assert {s.label for s in raw.spans} == {"SpecificDisease", "Modifier"}


def test_stray_spaces_around_stated_mention_are_tolerated():
    # NCBI-disease train line 3249 states its mention with two trailing spaces
    (doc,) = read_pubtator("7|t|a fever b\n7|a|\n7\t2\t7\tfever  \tDisease\tD1\n")
    assert doc.spans == (Span(2, 7, "Disease"),)


DUPLICATE = "9|t|Huntington disease.\n9|a|HD.\n9\t0\t18\tHuntington disease\tDisease\tD1\n\n"


def test_duplicate_pmid_kept_with_suffix_by_default():
    docs = read_pubtator(DUPLICATE + DUPLICATE + DUPLICATE)
    assert [d.id for d in docs] == ["9", "9_2", "9_3"]
    assert docs[0].text == docs[1].text == "Huntington disease. HD."


def test_duplicate_pmid_merged_when_identical():
    assert [d.id for d in read_pubtator(DUPLICATE * 2, duplicates="merge")] == ["9"]
    different = DUPLICATE + DUPLICATE.replace("\tDisease\t", "\tModifier\t")
    with pytest.raises(InputError, match="PMID 9 occurs again") as e:
        read_pubtator(different, duplicates="merge")
    assert e.value.line == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "227508\t0\t8\tNaloxona\tChemical\tD1",
            "offsets 0-8 give 'Naloxone' but the annotation says 'Naloxona'",
        ),
        ("227508\t0\t8\tNaloxone", "got 4 columns"),
        ("227508\t0\t8\tNaloxone\tChemical\tD1\tparts\textra", "got 8 columns"),
        ("227508\t0\tx\tNaloxone\tChemical\tD1", "end offset 'x' is not a number"),
        ("227508\t140\t150\tnaloxone\tChemical\tD1", "not a non-empty range"),
        ("227508\t8\t8\t\tChemical\tD1", "not a non-empty range"),
        ("999\t0\t8\tNaloxone\tChemical\tD1", "PMID '999' does not match the document 227508"),
        ("227508\t0", "got 2 columns"),
        ("227508\t\tD1\tD2", "empty type"),
    ],
)
def test_bad_annotation_lines_name_their_line(line, message):
    text = f"227508|t|{TITLE}\n227508|a|{ABSTRACT}\n{line}\n"
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as e:
        read_pubtator(text)
    assert e.value.line == 3


def test_structure_errors():
    with pytest.raises(InputError, match=re.escape("expected 'PMID|t|title'")) as e:
        read_pubtator("227508\t0\t8\tNaloxone\tChemical\tD1\n")
    assert e.value.line == 1
    with pytest.raises(InputError, match=r"expected 'PMID\|a\|abstract' after the title") as e:
        read_pubtator(f"1|t|{TITLE}\n\n2|t|x\n2|a|y\n")
    assert e.value.line == 2
    with pytest.raises(InputError, match=re.escape("before 2|a|")) as e:
        read_pubtator(f"1|t|{TITLE}\n2|a|x\n")
    assert e.value.line == 2
    with pytest.raises(InputError, match=re.escape("expected 'PMID|a|abstract'")) as e:
        read_pubtator(f"1|t|{TITLE}\n1\t0\t8\tNaloxone\tChemical\tD1\n")
    assert e.value.line == 2


def test_unknown_label_with_dataset():
    text = f"227508|t|{TITLE}\n227508|a|{ABSTRACT}\n227508\t0\t8\tNaloxone\tGene\tD1\n"
    with pytest.raises(InputError, match="unknown label 'Gene' for dataset bc5cdr") as e:
        read_pubtator(text, dataset=DATASETS["bc5cdr"])
    assert e.value.line == 3


def test_round_trip():
    docs = read_pubtator(CDR)
    report: Counter[str] = Counter()
    again = read_pubtator(write_pubtator(docs, report=report))
    assert again == docs
    assert not report


def test_writer_splits_title_at_a_line_break_and_flattens_other_breaks():
    text = "A title\nFirst line.\nSecond\tline."
    doc = AnnotatedDocument(Document("d1", text), (Span(8, 13, "X"), Span(20, 26, "Y")))
    report: Counter[str] = Counter()
    out = write_pubtator([doc], report=report)
    assert out.splitlines()[:2] == ["d1|t|A title", "d1|a|First line. Second line."]
    (back,) = read_pubtator(out)
    assert back.text == "A title First line. Second line."
    assert [s.text(back.text) for s in back.spans] == ["First", "Second"]
    assert report == {"pubtator: tabs and line breaks in text written as spaces": 2}


def test_writer_rejects_ids_that_cannot_be_pmids():
    doc = AnnotatedDocument(Document("a|b", "text"))
    with pytest.raises(ValueError, match="PubTator PMID"):
        write_pubtator([doc])


def test_a_mention_ending_in_a_space_reads_back():
    from bioner.readers.pubtator import read_pubtator

    text = "1|t|TNF is high\n1|a|x\n1\t0\t4\tTNF \tChemical\n\n"
    (doc,) = read_pubtator(text)
    assert [(s.start, s.end) for s in doc.spans] == [(0, 4)]
