"""brat reader and writer: T lines checked against the text, relations renumbered, folders."""

from __future__ import annotations

from collections import Counter

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.brat import (
    file_stem,
    read_brat,
    read_brat_files,
    write_brat,
    write_brat_files,
)
from bioner.records import AnnotatedDocument, Document, Relation, Span

TEXT = "Anti-Ro(SSA) autoantibodies bind T cell receptors.\nTCRs and HLA class II antigens.\n"
# T ids deliberately out of span order: the reader renumbers them in span order
ANN = (
    "T2\tprotein 0 27\tAnti-Ro(SSA) autoantibodies\n"
    "T1\tprotein 33 49\tT cell receptors\n"
    "T3\tprotein 51 55\tTCRs\n"
    "T4\tprotein 60 63;73 81\tHLA antigens\n"
    "R1\tBinds Arg1:T2 Arg2:T1\n"
    "*\tEquiv T1 T3\n"
    "A1\tNegation R1\n"
    "#1\tAnnotatorNotes T4\tdiscontinuous on purpose\n"
)


def test_reads_spans_and_renumbered_relations():
    (doc,) = read_brat(TEXT, ANN, "10021369")
    assert doc.id == "10021369" and doc.text == TEXT
    assert doc.spans == (
        Span(0, 27, "protein"),
        Span(33, 49, "protein"),
        Span(51, 55, "protein"),
        Span(60, 81, "protein"),  # "HLA ... antigens" covers its pieces
    )
    assert doc.relations == (
        Relation("Binds", ("R1", "Arg1:T1", "Arg2:T2")),
        Relation("Equiv", ("*", "T2", "T3")),
        Relation("Negation", ("A1", "R1")),
        Relation("AnnotatorNotes", ("#1", "T4", "discontinuous on purpose")),
    )


def test_discontinuous_split():
    (doc,) = read_brat(TEXT, ANN, "d", discontinuous="split")
    assert Span(60, 63, "protein") in doc.spans and Span(73, 81, "protein") in doc.spans
    assert Span(60, 81, "protein") not in doc.spans


def test_dataset_maps_labels_and_rejects_unknown_ones():
    (doc,) = read_brat(TEXT, "T1\tprotein 51 55\tTCRs\n", "d", dataset=DATASETS["jnlpba"])
    assert doc.spans == (Span(51, 55, "protein"),)
    with pytest.raises(InputError, match="unknown label 'Gene' for dataset jnlpba") as e:
        read_brat(
            TEXT, "T1\tprotein 51 55\tTCRs\nT2\tGene 60 63\tHLA\n", "d", dataset=DATASETS["jnlpba"]
        )
    assert e.value.line == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("T1\tprotein 51 55\tTCRS", "offsets 51 55 give 'TCRs' but the annotation says 'TCRS'"),
        ("T1\tprotein 51 55", "expected 'T1<TAB>type start end<TAB>mention', got 2 columns"),
        ("T1\tprotein 51\tTCRs", "expected 'type start end"),
        ("T1\tprotein 51 x\tTCRs", "expected 'type start end"),
        ("T1\tprotein 80 90\tx", "not a non-empty range"),
        ("T1\tprotein 60 63;73 81\tHLAantigens", "give 'HLA antigens'"),
        ("X1\tprotein 51 55\tTCRs", "unknown brat annotation id 'X1'"),
        ("R1", "expected 'R1<TAB>type arguments...'"),
        ("R1\tBinds Arg1:T1 Arg2:T2\textra", "unexpected text column after R1"),
    ],
)
def test_bad_lines_name_their_line(line, message):
    with pytest.raises(InputError, match=message) as e:
        read_brat(TEXT, f"T9\tprotein 0 4\tAnti\n\n{line}\n", "d")
    assert e.value.line == 3


def test_folder_reading_names_the_ann_file_in_errors():
    files = {"b.txt": "x y", "b.ann": "T1\tX 2 3\ty\n", "a.txt": "alpha", "annotation.conf": "[x]"}
    docs = read_brat_files(files)
    assert [(d.id, d.spans) for d in docs] == [("a", ()), ("b", (Span(2, 3, "X"),))]
    with pytest.raises(InputError, match="give 'y' but") as e:
        read_brat_files({"b.txt": "x y", "b.ann": "T1\tX 2 3\tz\n"})
    assert (e.value.line, e.value.record) == (1, "b.ann")
    with pytest.raises(InputError, match=r"no \.txt file") as e:
        read_brat_files({"c.ann": ""})
    assert e.value.record == "c.ann"


def test_round_trip_keeps_spans_and_relations():
    docs = read_brat(TEXT, ANN, "10021369")
    ((txt, ann),) = write_brat(docs)
    assert txt == TEXT
    assert ann.splitlines()[0] == "T1\tprotein 0 27\tAnti-Ro(SSA) autoantibodies"
    assert "R1\tBinds Arg1:T1 Arg2:T2" in ann.splitlines()
    assert "#1\tAnnotatorNotes T4\tdiscontinuous on purpose" in ann.splitlines()
    assert read_brat(txt, ann, "10021369") == docs


def test_folder_round_trip_escapes_ids():
    docs = [*read_brat(TEXT, ANN, "a/b%c"), *read_brat("x", "", "MEDLINE:1-0")]
    files = write_brat_files(docs)
    assert sorted(files) == ["MEDLINE:1-0.ann", "MEDLINE:1-0.txt", "a%2Fb%25c.ann", "a%2Fb%25c.txt"]
    assert file_stem("a/b%c") == "a%2Fb%25c"
    assert sorted(read_brat_files(files), key=lambda d: d.id) == sorted(docs, key=lambda d: d.id)


def test_writer_cuts_spans_at_line_breaks_and_reports_losses():
    text = "lung\ninjury here"
    doc = AnnotatedDocument(
        Document("d", text),
        (Span(0, 11, "cell type"),),
        (Relation("CID", ("D1", "D2")),),
    )
    report: Counter[str] = Counter()
    ((txt, ann),) = write_brat([doc], report=report)
    assert ann == "T1\tcell_type 0 4;5 11\tlung injury\n"
    assert read_brat(txt, ann, "d")[0].spans == (Span(0, 11, "cell_type"),)
    assert report == {
        "brat: whitespace in labels written as underscores": 1,
        "brat: relations that do not come from brat dropped": 1,
    }
