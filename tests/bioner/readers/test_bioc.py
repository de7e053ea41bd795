"""BioC reader and writer: passages at offsets, discontinuous annotations, safe XML parsing."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers.bioc import read_bioc, write_bioc
from bioner.records import AnnotatedDocument, Document, Relation, Span

TITLE = "Ocular and auditory toxicity in patients receiving desferrioxamine."  # 67 characters
ABSTRACT = "Visual toxicity was seen."  # placed at 70: three spaces of gap after the title
BIOC = f"""<?xml version='1.0' encoding='UTF-8'?><!DOCTYPE collection SYSTEM 'BioC.dtd'>
<collection><source>PubTator</source><date>0/0/0</date><key>PubTator.key</key>
<document><id>2234245</id>
<passage><infon key="type">title</infon><offset>0</offset><text>{TITLE}</text>
<annotation id='0'><infon key="type">Disease</infon>
<infon key="CompositeRole">CompositeMention</infon>
<location offset='0' length='28' /><text>Ocular and auditory toxicity</text></annotation>
<annotation id='1'><infon key="type">Disease</infon>
<infon key="CompositeRole">IndividualMention</infon>
<location offset='0' length='6' /><location offset='20' length='8' />
<text>Ocular toxicity</text></annotation>
<annotation id='2'><infon key="type">Disease</infon>
<infon key="CompositeRole">IndividualMention</infon>
<location offset='11' length='17' /><text>auditory toxicity</text></annotation>
<annotation id='3'><infon key="type">Chemical</infon><infon key="MESH">D003676</infon>
<location offset='51' length='15' /><text>desferrioxamine</text></annotation>
</passage>
<passage><infon key="type">abstract</infon><offset>70</offset><text>{ABSTRACT}</text>
<annotation id='4'><infon key="type">Disease</infon>
<location offset='70' length='15' /><text>Visual toxicity</text></annotation>
</passage>
<relation id='R0'><infon key="relation">CID</infon><infon key="Chemical">D003676</infon>
<infon key="Disease">D014786</infon></relation>
</document>
</collection>
"""


def test_reads_passages_at_offsets_spans_and_relations():
    (doc,) = read_bioc(BIOC.encode("utf-8"))
    assert doc.id == "2234245"
    assert doc.text == TITLE + "   " + ABSTRACT
    assert doc.document.title == TITLE
    # IndividualMention parts are skipped by default, as in BC5CDR's PubTator release
    assert doc.spans == (Span(0, 28, "Disease"), Span(51, 66, "Chemical"), Span(70, 85, "Disease"))
    assert doc.relations == (Relation("CID", ("D003676", "D014786")),)


def test_str_input_with_encoding_declaration():
    assert read_bioc(BIOC) == read_bioc(BIOC.encode("utf-8"))


def test_discontinuous_annotation_covers_or_splits():
    (cover,) = read_bioc(BIOC, individual_mentions=True)
    # "Ocular ... toxicity" (0-6 + 20-28) covers 0-28, the same span as the composite mention
    assert cover.spans == (
        Span(0, 28, "Disease"),
        Span(11, 28, "Disease"),
        Span(51, 66, "Chemical"),
        Span(70, 85, "Disease"),
    )
    (split,) = read_bioc(BIOC, individual_mentions=True, discontinuous="split")
    assert Span(0, 6, "Disease") in split.spans and Span(20, 28, "Disease") in split.spans


def test_dataset_labels():
    (doc,) = read_bioc(BIOC, dataset=DATASETS["bc5cdr"])
    assert {s.label for s in doc.spans} == {"Disease", "Chemical"}
    with pytest.raises(InputError, match="unknown label 'Chemical' for dataset ncbi") as e:
        read_bioc(BIOC, dataset=DATASETS["ncbi"])
    assert (e.value.line, e.value.record) == (15, "2234245")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "<text>desferrioxamine</text>",
            "<text>desferoxamine</text>",
            15,
            "offsets 51-66 give 'desferrioxamine' but the annotation says 'desferoxamine'",
        ),
        (
            "<text>Ocular toxicity</text>",
            "<text>Ocular  toxicity</text>",
            8,
            "give 'Ocular toxicity'",
        ),
        ("offset='51' length='15'", "offset='90' length='15'", 16, "not a non-empty range"),
        (
            "offset='51' length='15'",
            "offset='51' length='x'",
            15,
            "location length must be an integer",
        ),
        ("<offset>70</offset>", "<offset>60</offset>", 18, "overlaps the text before it"),
        ('<infon key="type">Chemical</infon>', "", 15, "without a 'type' infon"),
        ("<location offset='51' length='15' />", "", 15, "without a <location>"),
        ('<infon key="relation">CID</infon>', "", 22, "relation without"),
    ],
)
def test_bad_annotations_name_line_and_document(old, new, line, message):
    assert old in BIOC
    with pytest.raises(InputError, match=message) as e:
        read_bioc(BIOC.replace(old, new), individual_mentions=True)
    assert (e.value.line, e.value.record) == (line, "2234245")


def test_truncated_xml_is_an_input_error_with_its_line():
    with pytest.raises(InputError, match="malformed XML: Premature end of data") as e:
        read_bioc(BIOC[: BIOC.index('<passage><infon key="type">abstract')])
    assert e.value.line == 18
    assert "column" not in e.value.message


def test_not_a_collection_and_missing_id():
    with pytest.raises(InputError, match="expected a BioC <collection>, got <html>"):
        read_bioc("<html/>")
    with pytest.raises(InputError, match="document without an <id>") as e:
        read_bioc("<collection>\n<document></document></collection>")
    assert e.value.line == 2


def test_external_entity_is_never_expanded():
    hostile = (
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        "<collection><document><id>1</id><passage><offset>0</offset>"
        "<text>&e;</text></passage></document></collection>"
    )
    with pytest.raises(InputError, match="entity reference &e; is not allowed") as e:
        read_bioc(hostile)
    assert "root:" not in str(e.value)
    assert e.value.line == 3


def test_internal_entities_are_not_expanded_either():
    laughs = (
        '<!DOCTYPE x [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        "<collection><document><id>1</id><passage><offset>0</offset>"
        "<text>&b;</text></passage></document></collection>"
    )
    with pytest.raises(InputError, match="entity reference &b;"):
        read_bioc(laughs)


def test_round_trip():
    docs = read_bioc(BIOC, individual_mentions=True)
    written = write_bioc(docs)
    assert written.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<!DOCTYPE collection")
    again = read_bioc(written)
    assert again[0].spans == docs[0].spans
    assert again[0].relations == (Relation("CID", ("D003676", "D014786")),)
    assert again[0].document.title == TITLE
    # the writer joins title and abstract with one space: the 3-space gap is not kept
    assert read_bioc(write_bioc(again)) == again


def test_writer_keeps_text_with_line_breaks_and_spans_on_separators():
    text = "Title line\r\nbody & <more>\n"
    doc = AnnotatedDocument(Document("x", text, title="Title"), (Span(5, 12, "X"),))
    (back,) = read_bioc(write_bioc([doc]))
    assert back.text == text
    assert back.spans == doc.spans


def test_real_size_collection_parses_quickly():
    doc = BIOC[BIOC.index("<document>") : BIOC.index("</collection>")]
    big = BIOC.replace(doc, "".join(doc.replace("2234245", str(i)) for i in range(500)))
    started = time.perf_counter()
    docs = read_bioc(big)
    assert len(docs) == 500
    assert time.perf_counter() - started < 2.0


def test_writer_reports_nothing():
    report: Counter[str] = Counter()
    write_bioc(read_bioc(BIOC), report=report)
    assert not report
