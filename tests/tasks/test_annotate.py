"""The stage tasks, called through ``.fn`` (no Prefect run needed): where offsets are proven."""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import pytest

from bioner.generation import Generation, GenerationParams
from bioner.prompts import PROMPT_VERSION
from infra import storage
from infra.ingest_store import THROUGH, ingest_paths
from schemas import (
    DECODE_ISSUES_V1,
    DOCUMENTS_V2,
    ENTITIES_V1,
    GENERATIONS_V1,
    PASSAGES_V1,
    TOMBSTONES_V2,
)
from tasks import annotate as t

TEXT = (
    "Famotidine-associated delirium. Famotidine is an H2 blocker. "
    "It caused delirium and seizures in a patient with renal failure."
)
TITLE = "Famotidine-associated delirium."


def article(pmid: str, title: str, abstract: str) -> str:
    return (
        f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
        f"<ArticleTitle>{title}</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText>"
        "</Abstract><Language>eng</Language></Article></MedlineCitation></PubmedArticle>"
    )


@pytest.fixture
def shard(tmp_path):
    """Documents and passages of one shard, made by the real ingest engine."""
    source = tmp_path / "in.xml.gz"
    abstract = "Famotidine is an H2 blocker. It caused delirium and seizures in a patient with "
    xml = (
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n'
        + article("1", "Old title.", "Old abstract.")
        + article("2", "Nothing here.", "Plain words only.")
        + article("1", TITLE, abstract + "renal failure.")
        + '<DeleteCitation><PMID Version="1">9</PMID></DeleteCitation>'
        "</PubmedArticleSet>\n"
    )
    source.write_bytes(gzip.compress(xml.encode()))
    ingest_paths([str(source)], str(tmp_path / "out"), 1, run_id="run-1")
    return t.ShardPaths.under(str(tmp_path / "out"), 0)


def test_ingest_keeps_last_version_of_a_pmid_and_tombstones(shard):
    assert shard.documents.endswith("/out/documents/shard=0.parquet")
    documents = storage.read_table(shard.documents, DOCUMENTS_V2).to_pylist()
    assert [(d["id"], d["text"]) for d in documents] == [
        ("2", "Nothing here. Plain words only."),
        ("1", TEXT),
    ]
    assert documents[1]["source"] == "in.xml.gz"
    tombstones = storage.read_table(shard.tombstones, TOMBSTONES_V2).to_pylist()
    assert tombstones == [{"id": "9", "source": "in.xml.gz", "position": 4}]


def test_segment_writes_exact_passages(shard):
    passages = storage.read_table(shard.passages, PASSAGES_V1).to_pylist()
    assert [(p["doc_id"], p["index"], p["start"], p["end"]) for p in passages] == [
        ("2", 0, 0, 13),
        ("2", 1, 14, 31),
        ("1", 0, 0, 31),
        ("1", 1, 32, 60),
        ("1", 2, 61, 125),
    ]


def generation(doc_id: str, index: int, text: str, finish: str = "stop") -> dict[str, object]:
    return {
        "doc_id": doc_id,
        "doc_version": 1,
        "passage_index": index,
        "model_id": "hand@0",
        "prompt_version": PROMPT_VERSION,
        "run_id": "run-1",
        "text": text,
        "prompt_tokens": 10,
        "output_tokens": 5,
        "finish_reason": finish,
    }


HAND_WRITTEN = [
    generation("2", 0, "None"),
    generation("2", 1, "Drug: Plain [words] only."),
    generation(
        "1",
        0,
        "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium].",
    ),
    generation("1", 1, "Chemical: [Famotidine] is an H2 blocker."),
    generation(
        "1",
        2,
        "Disease: It caused [delirium] and [seizures] in a patient with [renal failure].\n"
        "Chemical: It caused deli",
        "length",
    ),
]


def entity(passage: int, start: int, end: int, text: str, label: str, issues=()) -> dict:
    return {
        "doc_id": "1",
        "doc_version": 1,
        "passage_index": passage,
        "start": start,
        "end": end,
        "text": text,
        "label": label,
        "model_id": "hand@0",
        "prompt_version": PROMPT_VERSION,
        "run_id": "run-2",
        "score": None,
        "selected": None,
        "issues": list(issues),
    }


def test_decode_hand_written_generations_to_exact_entity_rows(shard):
    storage.write_rows(HAND_WRITTEN, shard.generations, GENERATIONS_V1)
    result = t.decode.fn(
        shard.generations,
        shard.passages,
        shard.documents,
        shard.entities,
        shard.decode_issues,
        "bc5cdr",
        "run-2",
    )
    assert result == (shard.entities, shard.decode_issues)
    entities = storage.read_table(shard.entities, ENTITIES_V1).to_pylist()
    assert entities == [
        entity(0, 0, 10, "Famotidine", "Chemical"),
        entity(0, 22, 30, "delirium", "Disease"),
        entity(1, 32, 42, "Famotidine", "Chemical"),
        entity(2, 71, 79, "delirium", "Disease", ["truncated"]),
        entity(2, 84, 92, "seizures", "Disease", ["truncated"]),
        entity(2, 111, 124, "renal failure", "Disease", ["truncated"]),
    ]
    for e in entities:
        assert TEXT[e["start"] : e["end"]] == e["text"]
    issues = storage.read_table(shard.decode_issues, DECODE_ISSUES_V1).to_pylist()
    assert [
        (i["doc_id"], i["passage_index"], i["kind"], i["line"], i["lossy"]) for i in issues
    ] == [
        ("2", 1, "unknown_type", 1, True),
        ("1", 2, "truncated", 2, True),
    ]
    summary = t.shard_summary(shard)
    assert summary | {"issues": None} == {
        "documents": 2,
        "tombstones": 1,
        "passages": 5,
        "generations": 5,
        "prompt_tokens": 50,
        "output_tokens": 25,
        "truncated": 1,
        "spans": 6,
        "entities": 6,
        "issues": None,
    }
    assert summary["issues"] == {"unknown_type": 1, "truncated": 1}


def test_offsets_that_do_not_map_are_a_bug_not_a_model_error(shard):
    passages = {
        (p.doc_id, p.index): p
        for p in map(t.passage_of, storage.read_table(shard.passages).to_pylist())
    }
    wrong_document = "X" * len(TEXT)
    with pytest.raises(AssertionError, match="does not map"):
        t.entities_of(passages["1", 1], wrong_document, HAND_WRITTEN[3], t.schema_of("bc5cdr"), "r")


class EchoEngine:
    """Answers every prompt with ``None`` and records what it was asked."""

    model_id = "echo@1"

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.params: list[GenerationParams] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x.split()) for x in texts]

    def generate(
        self, prompts: Sequence[str], params: Sequence[GenerationParams]
    ) -> list[Generation]:
        self.prompts += prompts
        self.params += params
        return [Generation("None", len(p), 1, "stop") for p in prompts]


def test_generate_writes_one_row_per_passage_with_per_passage_limits(shard, monkeypatch):
    engine = EchoEngine()
    monkeypatch.setattr(t, "engine_for", lambda *args: engine)
    reports = []
    monkeypatch.setattr(t, "report", lambda *args: reports.append(args))
    uri = t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1", chunk_size=2)
    rows = storage.read_table(uri, GENERATIONS_V1).to_pylist()
    assert [(r["doc_id"], r["passage_index"], r["text"]) for r in rows] == [
        ("2", 0, "None"),
        ("2", 1, "None"),
        ("1", 0, "None"),
        ("1", 1, "None"),
        ("1", 2, "None"),
    ]
    assert {(r["model_id"], r["prompt_version"], r["run_id"]) for r in rows} == {
        ("echo@1", PROMPT_VERSION, "run-1")
    }
    # NCBI: one type, header "Disease" = 1 echo token; passages of n = 2, 3, 2, 5, 11 words:
    # 1 type x (header 1 + ": " 2 + n + (n + 1) // 2 + newline 1) + 4
    assert [p.max_new_tokens for p in engine.params] == [11, 13, 11, 16, 25]
    assert "Passage: It caused delirium" in engine.prompts[4]
    assert reports == [
        ("generate", 0, 5),
        ("generate", 2, 5),
        ("generate", 4, 5),
        ("generate", 5, 5),
    ]
    assert storage.read_metadata(uri)["bioner.model_id"] == "echo@1"


def test_generation_settings_follow_the_passages_and_mark_stale_shards(shard, monkeypatch):
    monkeypatch.setattr(t, "engine_for", lambda *args: EchoEngine())
    out = shard.passages.removesuffix("/passages/shard=0.parquet")
    assert t.stale_shards(out, 2, "m", "ncbi", None) == [0]  # shard 1 has no passages
    t.generate.fn(shard.passages, shard.generations, "m", "ncbi", "run-1")
    t.decode.fn(
        shard.generations,
        shard.passages,
        shard.documents,
        shard.entities,
        shard.decode_issues,
        "ncbi",
        "run-1",
    )
    meta = storage.read_metadata(shard.entities)
    assert meta[THROUGH] == storage.read_metadata(shard.passages)[THROUGH] == "1"
    assert (meta["bioner.model"], meta["bioner.schema_name"]) == ("m", "ncbi")
    assert t.stale_shards(out, 2, "m", "ncbi", None) == []
    assert t.stale_shards(out, 2, "m", "bc5cdr", None) == [0]  # another request
    assert t.stale_shards(out, 2, "other", "ncbi", None) == [0]
    assert t.stale_shards(out, 2, "m", "ncbi", 8) == [0]


def test_unknown_schema():
    with pytest.raises(ValueError, match="known: bc5cdr"):
        t.schema_of("nope")
