"""The training data builder on the real benchmark data: counts against the data README."""

from __future__ import annotations

import json

import pytest

from bioner.training.data import BuildOptions, Example, cmeee_part
from infra.datasets import load_split
from infra.training.data import (
    CMEEE_EVAL_DOCS,
    build_training_data,
    read_examples,
    sources_for,
    write_training_data,
)

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def built(shared_data):
    return build_training_data(shared_data, BuildOptions())


def test_documents_and_entities_per_dataset_match_the_readme(built):
    stats = built.stats["datasets"]
    assert list(stats) == [
        "ncbi",
        "bc5cdr",
        "jnlpba",
        "bionlp13cg",
        "bionlp11id",
        "cmedqaner",
        "cehrner",
        "cmeee",
    ]
    docs = {name: s["documents"] for name, s in stats.items()}
    assert docs == {
        "ncbi": 593,  # PubTator train
        "bc5cdr": 500,
        "jnlpba": 1800,  # standoff/train 2000 minus the 200 devel ids
        "bionlp13cg": 3033,  # sentences
        "bionlp11id": 2496,
        "cmedqaner": 1673,
        "cehrner": 914,
        "cmeee": docs["cmeee"],
    }
    assert docs["cmeee"] + built.stats["eval"]["cmeee-eval"]["documents"] == 5000
    # BC5CDR train: 9385 mentions (Chemical 5203, Disease 4182), none lost.
    assert stats["bc5cdr"]["entities_per_type"] == {"Chemical": 5203, "Disease": 4182}
    # NCBI: 5145 PubTator mentions with PMID 8528200 twice; the duplicate's passages are
    # dropped, leaving the corpus's 5134 (the IOB count).
    assert stats["ncbi"]["entities"] == 5134 and stats["ncbi"]["duplicates_dropped"] > 0
    for s in stats.values():
        assert s["examples"] == s["passages"] - s["duplicates_dropped"] - s["eval_overlap_dropped"]
        assert s["dropped_passages"] == 0 and s["spans_outside"] == 0


def test_jnlpba_leaves_out_the_devel_documents(built, shared_data):
    devel = set((shared_data / "jnlpba/mtl_devel_doc_ids.txt").read_text().split())
    assert len(devel) == 200
    assert not {e.doc_id for e in built.train if e.dataset == "jnlpba"} & devel


def test_cmeee_split_is_deterministic_and_disjoint(built, shared_data):
    train_ids = {e.doc_id for e in built.train if e.dataset == "cmeee"}
    eval_ids = {d.id for d in built.eval_docs}
    assert not train_ids & eval_ids
    assert all(cmeee_part(i) == "eval" for i in eval_ids)
    docs = load_split("cmeee/v2/dev", shared_data)
    assert len(eval_ids) == sum(cmeee_part(d.id) == "eval" for d in docs)
    assert 0.18 < len(eval_ids) / len(docs) < 0.22
    eval_texts = {e.text for e in built.eval}
    assert not any(e.text in eval_texts for e in built.train if e.dataset == "cmeee")
    entities = sum(len(d.spans) for d in built.eval_docs)
    assert entities == built.stats["eval"]["cmeee-eval"]["entities"]


def test_written_folder_is_deterministic(shared_data, tmp_path):
    options = BuildOptions()
    sets = ["cehrner"]
    a = write_training_data(build_training_data(shared_data, options, sets), tmp_path / "a")
    b = write_training_data(build_training_data(shared_data, options, sets), tmp_path / "b")
    for name in ("train.jsonl", "eval.jsonl", "stats.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert len(read_examples(a)) == json.loads((a / "stats.json").read_text())["total_examples"]
    assert not (a / CMEEE_EVAL_DOCS).read_text()  # no CMeEE asked for


def test_unknown_set_is_refused():
    with pytest.raises(ValueError, match="unknown training set"):
        sources_for(["ncbi", "bc2gm"])


def test_both_views_ask_each_passage_its_datasets_schema_and_its_unified_types(shared_data):
    built = build_training_data(shared_data, BuildOptions(views=("dataset", "unified")))
    schemas: dict[str, set[str]] = {}
    for e in built.train:
        schemas.setdefault(e.dataset, set()).add(e.schema)
    # The same request in both views is one example (NCBI's Disease, BC5CDR's, CMeEE's).
    assert schemas["ncbi"] == {"ncbi"} and schemas["bc5cdr"] == {"bc5cdr"}
    assert schemas["jnlpba"] == {"jnlpba", "general[Gene,Cell]"}
    assert schemas["bionlp13cg"] == {"general"}  # all six types: the full unified request
    assert schemas["bionlp11id"] == {"general[Chemical,Gene,Species]"}
    assert "general-zh[Disease,Symptom,Chemical,Anatomy,Department]" in schemas["cmedqaner"]
    stats = built.stats["datasets"]
    assert stats["bionlp13cg"]["completed"] > 100  # its diseases beyond cancers, filled in
    assert stats["bionlp13cg"]["entities_per_type"]["Gene"] == 4028  # the README count
    unified = [e for e in built.train if e.schema.startswith("general[")]
    assert all(
        {label for _, _, label in e.spans} <= set(e.schema[8:-1].split(",")) for e in unified
    )


def test_the_full_view_asks_every_unified_type_and_answers_the_annotated_ones(shared_data):
    options = BuildOptions(views=("unified", "full"))
    built = build_training_data(shared_data, options, ["ncbi", "jnlpba", "bionlp13cg"])
    full = [e for e in built.train if e.annotated]
    annotated = {e.dataset: e.annotated for e in full}
    # BioNLP13CG's unified view asks all six types already: no full view of its own.
    assert annotated == {"ncbi": ("Disease",), "jnlpba": ("Gene", "Cell")}
    assert {e.schema for e in full} == {"general"}
    assert all(e.spans and {lb for _, _, lb in e.spans} <= set(e.annotated) for e in full)
    # The same passage under its dataset's request is still there, and the JSON keeps the field.
    partial = {e.text for e in built.train if e.schema == "general[Gene,Cell]"}
    assert {e.text for e in full if e.dataset == "jnlpba"} <= partial
    assert Example.from_json(json.loads(json.dumps(full[0].to_json()))) == full[0]
