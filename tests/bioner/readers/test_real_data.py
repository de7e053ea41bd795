"""Every annotated file of the shared data read by its reader, against the README's counts.

Counts the README does not state (relations, CMeEE V1 entities ...) are the measured ones and
say so. Each reader checks every span against the mention text its source states; the tests
re-check that independently where the source states one.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from bioner.errors import InputError
from bioner.labels import DATASETS
from bioner.readers import (
    read_bioc,
    read_brat_files,
    read_chineseblue,
    read_cmeee,
    read_genia,
    read_iob2,
    read_pubtator,
)
from bioner.records import AnnotatedDocument

pytestmark = pytest.mark.data


@cache
def pubtator(path: Path) -> list[AnnotatedDocument]:
    return read_pubtator(path.read_text("utf-8"))


def spans(docs: list[AnnotatedDocument]) -> int:
    return sum(len(d.spans) for d in docs)


def labels(docs: list[AnnotatedDocument]) -> Counter[str]:
    return Counter(s.label for d in docs for s in d.spans)


def nested_pairs(docs: list[AnnotatedDocument]) -> int:
    """Pairs of distinct spans of a document where one contains the other."""
    n = 0
    for d in docs:
        for i, a in enumerate(d.spans):
            for b in d.spans[i + 1 :]:
                if b.start >= a.end:
                    break
                n += b.end <= a.end or b.start == a.start  # spans are sorted by (start, end)
    return n


@pytest.mark.parametrize(
    ("folder", "dataset", "split", "sentences", "mentions"),
    [
        ("ncbi-disease", "ncbi", "train", 5424, 5134),
        ("ncbi-disease", "ncbi", "devel", 923, 787),
        ("ncbi-disease", "ncbi", "test", 940, 960),
        ("bc5cdr", "bc5cdr", "train", 4560, 9385),
        ("bc5cdr", "bc5cdr", "devel", 4581, 9593),
        ("bc5cdr", "bc5cdr", "test", 4797, 9809),
        ("jnlpba", "jnlpba", "devel", 1739, 4551),
        ("jnlpba", "jnlpba", "test", 3856, 8662),
    ],
)
def test_iob2_files(shared_data, folder, dataset, split, sentences, mentions):
    text = (shared_data / folder / "iob" / f"{split}.tsv").read_text("utf-8")
    docs = read_iob2(text, dataset=DATASETS[dataset])
    assert (len(docs), spans(docs)) == (sentences, mentions)
    if (folder, split) == ("bc5cdr", "train"):
        assert labels(docs) == {"Chemical": 5203, "Disease": 4182}
    if folder == "jnlpba":  # one -DOCSTART- group per abstract: 200 devel, 404 test
        assert len({d.id.split("-")[0] for d in docs}) == {"devel": 200, "test": 404}[split]


def check_pubtator_mentions(path: Path, docs: list[AnnotatedDocument]) -> None:
    """Independently of the reader: each annotation line's offsets give its mention."""
    text_of = {d.id: d.text for d in docs}
    checked = 0
    for line in path.read_text("utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 5:
            assert text_of[cols[0]][int(cols[1]) : int(cols[2])] == cols[3].strip(" "), line
            checked += 1
    assert checked == spans(docs)


@pytest.mark.parametrize(
    ("name", "docs", "mentions"),
    [
        ("NCBItrainset_corpus.txt", 593, 5145),
        ("NCBIdevelopset_corpus.txt", 100, 787),
        ("NCBItestset_corpus.txt", 100, 960),
    ],
)
def test_ncbi_pubtator(shared_data, name, docs, mentions):
    path = shared_data / "ncbi-disease" / "pubtator" / name
    read = pubtator(path)
    assert (len(read), spans(read)) == (docs, mentions)
    assert set(labels(read)) == {"SpecificDisease", "Modifier", "DiseaseClass", "CompositeMention"}
    assert set(labels(read_pubtator(path.read_text("utf-8"), dataset=DATASETS["ncbi"]))) == {
        "Disease"
    }
    check_pubtator_mentions(path, read)


def test_ncbi_duplicate_pmid(shared_data):
    path = shared_data / "ncbi-disease" / "pubtator" / "NCBItrainset_corpus.txt"
    docs = pubtator(path)
    twice = [d for d in docs if d.id.startswith("8528200")]
    assert [d.id for d in twice] == ["8528200", "8528200_2"]
    assert (twice[0].text, twice[0].document.title) == (twice[1].text, twice[1].document.title)
    assert twice[0].spans == twice[1].spans and len(twice[0].spans) == 11
    merged = read_pubtator(path.read_text("utf-8"), duplicates="merge")
    # without the copy the mentions are exactly those of the IOB2 release (5134)
    assert (len(merged), spans(merged)) == (592, 5134)


BC5CDR = [
    ("CDR_TrainingSet", 9385, 1038),
    ("CDR_DevelopmentSet", 9591, 1012),
    ("CDR_TestSet", 9809, 1066),
]


@pytest.mark.parametrize(("stem", "mentions", "relations"), BC5CDR)
def test_bc5cdr_pubtator(shared_data, stem, mentions, relations):
    path = shared_data / "bc5cdr" / "pubtator" / f"{stem}.PubTator.txt"
    docs = pubtator(path)
    # 500 docs per split; mentions sum to the README's 28,785; relation counts measured
    assert (len(docs), spans(docs)) == (500, mentions)
    assert sum(len(d.relations) for d in docs) == relations
    assert {r.type for d in docs for r in d.relations} == {"CID"}
    assert set(labels(docs)) == {"Chemical", "Disease"}
    check_pubtator_mentions(path, docs)


def test_bc5cdr_pubtator_total(shared_data):
    total = sum(
        spans(pubtator(shared_data / "bc5cdr" / "pubtator" / f"{stem}.PubTator.txt"))
        for stem, _, _ in BC5CDR
    )
    assert total == 28_785


@pytest.mark.parametrize(("stem", "mentions", "relations"), BC5CDR)
def test_bc5cdr_bioc_reads_as_its_pubtator_release(shared_data, stem, mentions, relations):
    data = (shared_data / "bc5cdr" / "bioc" / f"{stem}.BioC.xml").read_bytes()
    docs = read_bioc(data, dataset=DATASETS["bc5cdr"])
    assert (len(docs), spans(docs)) == (500, mentions)
    assert docs == pubtator(shared_data / "bc5cdr" / "pubtator" / f"{stem}.PubTator.txt")
    assert sum(len(d.relations) for d in docs) == relations


def test_bc5cdr_bioc_individual_mentions(shared_data):
    folder = shared_data / "bc5cdr" / "bioc"
    test = read_bioc((folder / "CDR_TestSet.BioC.xml").read_bytes(), individual_mentions=True)
    assert spans(test) == 9891  # measured: 82 more spans than without the composite parts
    # the source has wrong offsets on 4 IndividualMention annotations; the first is here
    with pytest.raises(InputError, match="'colorectal  cancer' but the annotation says") as e:
        read_bioc((folder / "CDR_TrainingSet.BioC.xml").read_bytes(), individual_mentions=True)
    assert e.value.record == "20722491"


def brat_folder(path: Path) -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in path.iterdir() if p.suffix in (".txt", ".ann")}


@pytest.mark.parametrize(
    ("split", "docs", "mentions"), [("train", 2000, 51_301), ("test", 404, 8662)]
)
def test_jnlpba_standoff(shared_data, split, docs, mentions):
    files = brat_folder(shared_data / "jnlpba" / "standoff" / split)
    read = read_brat_files(files, dataset=DATASETS["jnlpba"])
    assert (len(read), spans(read)) == (docs, mentions)
    assert set(labels(read)) == {"protein", "DNA", "cell_type", "cell_line", "RNA"}
    text_of = {d.id: d.text for d in read}
    for name, ann in files.items():
        if name.endswith(".ann"):
            for line in ann.splitlines():
                _, where, mention = line.split("\t")
                _, start, end = where.split(" ")
                assert text_of[name[:-4]][int(start) : int(end)] == mention
    if split == "train":
        held_out = (shared_data / "jnlpba" / "mtl_devel_doc_ids.txt").read_text().split()
        assert len(held_out) == 200 and set(held_out) <= set(text_of)


def cmeee_entities_hold(path: Path, docs: list[AnnotatedDocument]) -> None:
    for rec, doc in zip(json.loads(path.read_text("utf-8")), docs, strict=True):
        for e in rec["entities"]:
            assert doc.text[e["start_idx"] : e["end_idx"] + 1] == e["entity"]


@pytest.mark.parametrize(
    ("path", "entities", "nested"),
    [("v2/CMeEE-V2_dev.json", 26_081, 4522), ("v1/CMeEE_dev.json", 20_300, 1225)],
)
def test_cmeee(shared_data, path, entities, nested):
    file = shared_data / "cmeee" / path
    docs = read_cmeee(file.read_text("utf-8"), dataset=DATASETS["cmeee"])
    # V1 entity and nesting counts are not in the README: measured
    assert (len(docs), spans(docs), nested_pairs(docs)) == (5000, entities, nested)
    assert len(labels(docs)) == 9
    assert len(labels(read_cmeee(file.read_text("utf-8")))) == 9
    cmeee_entities_hold(file, docs)


@pytest.mark.parametrize(
    ("corpus", "dataset", "counts", "types"),
    [
        ("cMedQANER", "cmedqaner", {"train": 1673, "dev": 175, "test": 215}, 11),
        ("cEHRNER", "cehrner", {"train": 914, "dev": 44, "test": 41}, 7),
    ],
)
def test_chineseblue(shared_data, corpus, dataset, counts, types):
    all_labels: Counter[str] = Counter()
    for split, records in counts.items():
        path = shared_data / "chineseblue" / corpus / f"{split}.json"
        source = path.read_text("utf-8")
        misaligned = "nearest" if (corpus, split) == ("cMedQANER", "train") else "error"
        docs = read_chineseblue(source, dataset=DATASETS[dataset], misaligned=misaligned)
        assert len(docs) == records
        all_labels += labels(docs)
        moved = 0
        for line, doc in zip(source.splitlines(), docs, strict=True):
            stated = sorted(
                (int(m["offset"]), m["mention"]) for m in json.loads(line)["mention_data"]
            )
            for (offset, mention), span in zip(stated, sorted(doc.spans), strict=True):
                assert span.text(doc.text).lower() == mention.lower()
                moved += span.start != offset
        assert moved == (15 if misaligned == "nearest" else 0)
    assert len(all_labels) == types


def test_cmedqaner_train_has_misaligned_mentions(shared_data):
    source = (shared_data / "chineseblue" / "cMedQANER" / "train.json").read_text("utf-8")
    with pytest.raises(
        InputError, match="offset 11 gives '颌关节功' but the mention is '颞颌关节'"
    ) as e:
        read_chineseblue(source)
    assert e.value.line == 367


def test_genia_nested(shared_data):
    source = (shared_data / "genia-nested" / "dev.jsonlines").read_text("utf-8")
    docs = read_genia(source, dataset=DATASETS["genia"])
    assert (len(docs), spans(docs), nested_pairs(docs)) == (1765, 4714, 449)
    for line, doc in zip(source.splitlines(), docs, strict=True):
        rec = json.loads(line)
        assert doc.id == rec["sent_id"]
        found = sorted((s.start, s.end, s.label) for s in doc.spans)
        assert len(found) == len(rec["entity_mentions"])
        for m in rec["entity_mentions"]:
            assert any(doc.text[a:b] == m["text"] for a, b, _ in found)
